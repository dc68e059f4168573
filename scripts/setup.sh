#!/bin/sh
# Installs and builds everything qemu-warden needs on a Debian/Ubuntu machine.
# Idempotent and quick when nothing changed: apt packages (as root), npm packages,
# the native addon, the TypeScript build. `--quiet` prints only what it does.
set -eu
cd "$(dirname "$0")/.."
quiet=false; [ "${1:-}" = "--quiet" ] && quiet=true
say() { echo "setup: $*" >&2; }

# Debian packages the tests and the demo use (Debian 12 names).
PKGS="qemu-utils qemu-system-x86 qemu-system-data ovmf bubblewrap util-linux busybox-static \
iproute2 openvswitch-switch cpio gzip kmod python3 make g++ openssl chromium \
containerd golang-github-containerd-containerd-dev \
debootstrap fdisk e2fsprogs dosfstools mtools grub-pc-bin grub-efi-amd64-bin xorriso openssh-client \
passt strace curl"
# (build-guest.sh also needs apt-get and dpkg, present on every Debian system.)
# passt serves user networking (without it a user NIC is refused); strace and curl are used by tests.
# openssl makes the HTTPS listener's self-signed certificate; chromium runs the browser tests (test/browser).
# debootstrap ... grub-efi-amd64-bin build the Debian image, xorriso makes cloud-init seeds, openssh-client is warden ssh.
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing Debian packages:$missing (run as root, or: sudo apt-get install$missing)"; exit 1
  fi
  say "installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  # once more after a pause if a mirror hiccups
  for try in 1 2; do
    if apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $missing >/dev/null; then break; fi
    [ "$try" -eq 2 ] && { say "installing$missing failed"; exit 1; }
    say "apt-get failed, retrying in 5 s"; sleep 5
  done
fi

# The daemon's socket groups: members of warden use their own VMs, warden-admin all of them.
if [ "$(id -u)" -eq 0 ]; then
  for g in warden warden-admin; do getent group "$g" >/dev/null || { say "creating group $g"; groupadd --system "$g"; }; done
fi

# npm packages: reinstall when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Native addon (TAP fds, SCM_RIGHTS): rebuild when its source is newer than the build.
addon=native/build/Release/warden_native.node
if [ ! -f "$addon" ] || [ -n "$(find native/warden_native.c native/warden_image.c native/warden_mount.c native/warden_spawn.c native/binding.gyp -newer "$addon")" ]; then
  say "building the native addon"
  npm run --silent build:native >/dev/null
fi

# The jailer's exec helper: static, so it runs inside any jail view (no libc needed there).
helper=native/build/warden-exec
if [ ! -f "$helper" ] || [ native/warden-exec.c -nt "$helper" ]; then
  say "building the jail exec helper"
  mkdir -p native/build
  cc -static -O2 -Wall -Wextra -o "$helper" native/warden-exec.c
fi
# Each VM's log writer (serial console log, QEMU's stderr), capped and rotated; static for the same reason.
logd=native/build/warden-logd
if [ ! -f "$logd" ] || [ native/warden-logd.c -nt "$logd" ]; then
  say "building the log writer"
  mkdir -p native/build
  cc -static -O2 -Wall -Wextra -o "$logd" native/warden-logd.c
fi
# The test and demo guest (cloud kernel + busybox initramfs), cached in .cache/guest/.
if $quiet; then sh scripts/build-guest.sh --quiet; else sh scripts/build-guest.sh; fi

# The Debian OS image for the boot tests and the benchmark (scripts/build-image.sh): cached
# host-wide, so this is instant after the first build (a few minutes). Needs root; a failed
# build does not fail setup: the tests that need the image try once more, then skip.
if [ "$(id -u)" -eq 0 ]; then
  [ -f "$(sh scripts/build-image.sh --print)" ] || say "building the Debian image (first time on this host: about 3 minutes)"
  sh scripts/build-image.sh --quiet >/dev/null || say "building the Debian image failed; its tests will skip"
fi

# TypeScript: rebuild when any source is newer than the last build.
stamp=dist/.built
if [ ! -f "$stamp" ] || [ -n "$(find src test bench tsconfig.json package.json -newer "$stamp" -print -quit 2>/dev/null)" ]; then
  $quiet || say "compiling TypeScript"
  npm run --silent build
  touch "$stamp"
fi
# The bundles of the CLI (warden.cjs; wardend.cjs for `warden daemon`) with primed V8 code
# caches, which bin/warden starts (scripts/bundle-cli.mjs); bin/warden runs the unbundled CLI
# while they are older than the build.
if [ ! -f dist/src/cli/warden.cjs ] || [ ! -f dist/src/cli/wardend.cjs ] || [ dist/src/cli/bin.js -nt dist/src/cli/warden.cjs ]; then
  $quiet || say "bundling the CLI"
  node scripts/bundle-cli.mjs
fi
$quiet || say "ready: ./bin/warden --help"

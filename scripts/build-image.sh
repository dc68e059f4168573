#!/bin/sh
# Builds a Debian 12 (bookworm) qcow2 disk image from Debian packages only: debootstrap,
# the cloud kernel, systemd, cloud-init (NoCloud), openssh-server, qemu-guest-agent, and
# GRUB that boots under both BIOS (SeaBIOS) and UEFI (OVMF). No loop device and no mount:
# the root file system is made from a directory tree (mkfs.ext4 -d), the ESP with mtools,
# the GPT with sfdisk on the image file, and GRUB's BIOS stages are written by hand.
#
# Cached host-wide, keyed by this script's content: a second run (any checkout on this
# machine) prints the cached image at once. Progress goes to stderr; the image path is
# the last line of stdout. `--quiet` keeps stderr to what it does; `--print` only prints
# the path of the image this script would build (it may not exist yet).
#
# Cache: $WARDEN_IMAGE_CACHE, else /var/cache/qemu-warden as root, else
# ${XDG_CACHE_HOME:-~/.cache}/qemu-warden (building needs root: debootstrap chroots).
# The checkout's .cache/debian-12.qcow2 is a symlink to the cached image.
set -eu
script=$(readlink -f "$0")
cd "$(dirname "$script")/.."
quiet=false; print_only=false
for a in "$@"; do
  case "$a" in
    --quiet) quiet=true ;;
    --print) print_only=true ;;
    *) echo "usage: $0 [--quiet] [--print]" >&2; exit 2 ;;
  esac
done
say() { echo "build-image: $*" >&2; }
progress() { $quiet || say "$*"; }

if [ -n "${WARDEN_IMAGE_CACHE:-}" ]; then cache=$WARDEN_IMAGE_CACHE
elif [ "$(id -u)" -eq 0 ]; then cache=/var/cache/qemu-warden
else cache=${XDG_CACHE_HOME:-$HOME/.cache}/qemu-warden
fi
key=$(sha256sum < "$script" | cut -c1-12)
image="$cache/debian-12-$key.qcow2"
link=.cache/debian-12.qcow2

finish() {
  mkdir -p .cache
  [ "$(readlink "$link" 2>/dev/null)" = "$image" ] || ln -sfn "$image" "$link"
  touch -c "$image" # marks it in use (pruning below removes images unused for 30 days)
  echo "$image"
  exit 0
}
$print_only && { echo "$image"; exit 0; }
[ -f "$image" ] && { progress "cached image is current: $image"; finish; }

if [ "$(id -u)" -ne 0 ]; then
  say "building the image needs root (debootstrap chroots); run: sudo sh $0"; exit 1
fi
for tool in debootstrap sfdisk mkfs.ext4 mkfs.vfat mmd mcopy grub-mkimage grub-mkstandalone qemu-img flock; do
  command -v "$tool" >/dev/null || { say "missing $tool (scripts/setup.sh installs it)"; exit 1; }
done
for dir in /usr/lib/grub/i386-pc /usr/lib/grub/x86_64-efi; do
  [ -d "$dir" ] || { say "missing $dir (packages grub-pc-bin and grub-efi-amd64-bin)"; exit 1; }
done

mkdir -p "$cache/debs"
# One build at a time on this host: a second caller waits, then finds the image cached.
exec 9>"$cache/.build.lock"
flock 9
[ -f "$image" ] && { progress "built meanwhile by another run: $image"; finish; }
# Holding the lock, no other build runs: a work directory still here is from a killed one.
find "$cache" -maxdepth 1 -name 'build.*' -type d -exec rm -rf {} + 2>/dev/null || true

started=$(date +%s)
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
tree="$work/root"

# --- 1. the root file system as a directory ---------------------------------------
# debootstrap mounts /proc and /sys inside its chroot while configuring packages; a
# private mount namespace keeps those from the host and ends them with the process.
# python3-cffi-backend: debootstrap does not resolve virtual packages (cryptography needs one).
pkgs=linux-image-cloud-amd64,initramfs-tools,systemd,systemd-sysv,systemd-resolved,udev,dbus,\
cloud-init,python3-cffi-backend,openssh-server,qemu-guest-agent,sudo,cloud-guest-utils,\
iproute2,netbase,e2fsprogs,procps
mirror=${WARDEN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
progress "debootstrap bookworm into $tree (packages cached in $cache/debs)"
ok=false
for try in 1 2 3; do
  if unshare --mount --propagation private debootstrap --variant=minbase --cache-dir="$cache/debs" \
      --include="$pkgs" bookworm "$tree" "$mirror" > "$work/debootstrap.log" 2>&1; then ok=true; break; fi
  say "debootstrap failed (try $try of 3): $(tail -n 3 "$work/debootstrap.log" | tr '\n' ' ')"
  [ -f "$tree/debootstrap/debootstrap.log" ] && tail -n 20 "$tree/debootstrap/debootstrap.log" >&2
  rm -rf "$tree"; sleep $((try * 5))
done
$ok || { say "debootstrap failed 3 times"; exit 1; }

# --- 2. configuration ------------------------------------------------------------
progress "configuring the guest"
root_uuid=$(cat /proc/sys/kernel/random/uuid)
kver=$(ls "$tree/boot" | sed -n 's/^vmlinuz-//p' | head -n1)
[ -n "$kver" ] && [ -e "$tree/vmlinuz" ] && [ -e "$tree/initrd.img" ] || { say "no kernel or initrd in the tree"; exit 1; }

echo debian > "$tree/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$tree/etc/hosts"
printf 'UUID=%s\t/\text4\tdefaults,errors=remount-ro\t0\t1\n' "$root_uuid" > "$tree/etc/fstab"
cat > "$tree/etc/apt/sources.list" <<EOF
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
# Every VM gets its own machine id (systemd makes one at first boot) and its own SSH
# host keys (cloud-init makes them; the drop-in below covers a boot without it). Only
# ed25519 and ECDSA: an RSA key takes half a minute to make under TCG.
: > "$tree/etc/machine-id"
rm -f "$tree/var/lib/dbus/machine-id" "$tree"/etc/ssh/ssh_host_*
printf 'HostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_ecdsa_key\n' > "$tree/etc/ssh/sshd_config.d/10-warden-host-keys.conf"
mkdir -p "$tree/etc/systemd/system/ssh.service.d"
cat > "$tree/etc/systemd/system/ssh.service.d/warden-host-keys.conf" <<'EOF'
[Service]
ExecStartPre=
ExecStartPre=/bin/sh -c 'for t in ed25519 ecdsa; do [ -e /etc/ssh/ssh_host_$${t}_key ] || ssh-keygen -q -t $$t -N "" -f /etc/ssh/ssh_host_$${t}_key; done'
ExecStartPre=/usr/sbin/sshd -t
EOF
# cloud-init: only NoCloud (a cidata volume) is looked for; probing clouds' metadata
# services would take minutes under TCG. Networking is rendered for systemd-networkd.
cat > "$tree/etc/cloud/cloud.cfg.d/90-warden.cfg" <<'EOF'
datasource_list: [ NoCloud, None ]
ssh_genkeytypes: [ ed25519, ecdsa ]
# C.UTF-8 is built into libc; cloud-init's default (en_US.UTF-8) needs the locales package.
locale: C.UTF-8
system_info:
  network:
    renderers: [ networkd ]
EOF
# A VM with no network (or no DHCP answer) must not wait two minutes at boot.
mkdir -p "$tree/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat > "$tree/etc/systemd/system/systemd-networkd-wait-online.service.d/warden.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=20
EOF
chroot "$tree" systemctl enable --quiet systemd-networkd systemd-resolved >/dev/null 2>&1 \
  || { say "systemctl enable in the chroot failed"; exit 1; }
# apt's daily timers would refresh package lists at first boot, stealing a TCG guest's CPU.
chroot "$tree" systemctl disable --quiet apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1 || true
rm -f "$tree/etc/resolv.conf"
ln -s ../run/systemd/resolve/stub-resolv.conf "$tree/etc/resolv.conf"

# Small: no package caches, lists, documentation (copyright files stay), manuals or translations;
# dpkg keeps them out of later installs too.
cat > "$tree/etc/dpkg/dpkg.cfg.d/01-warden-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
find "$tree/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
find "$tree/usr/share/doc" -mindepth 1 -type d -empty -delete
find "$tree/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
rm -rf "$tree/usr/share/man" "$tree/usr/share/info" "$tree/debootstrap" "$tree/var/lib/apt/lists"/* \
  "$tree/var/cache/apt"/*.bin "$tree/var/cache/apt/archives"/*.deb "$tree"/vmlinuz.old "$tree"/initrd.img.old
find "$tree/var/log" -type f -exec truncate -s 0 {} +

# GRUB's menu lives on the root file system (editable in the guest); the loaders only find it.
mkdir -p "$tree/boot/grub"
cat > "$tree/boot/grub/grub.cfg" <<EOF
# Written by qemu-warden's build-image.sh. The console is ttyS0 (warden logs it) and the screen.
set timeout=0
if [ "\$grub_platform" = pc ]; then
  serial --unit=0 --speed=115200
  terminal_input serial console
  terminal_output serial console
fi
menuentry 'Debian GNU/Linux 12' {
  linux /vmlinuz root=UUID=$root_uuid ro console=tty0 console=ttyS0,115200n8
  initrd /initrd.img
}
EOF

# --- 3. the disk: GPT, BIOS boot partition, ESP, root ------------------------------
# 512-byte sectors. p1 BIOS boot (GRUB's core.img) at 1 MiB, p2 ESP (32 MiB), p3 root
# to the end (cloud-init grows it when the disk is made larger).
disk_mib=2048
bios_start=2048; bios_sectors=2048
esp_start=4096; esp_sectors=65536
root_start=$((esp_start + esp_sectors))
raw="$work/disk.raw"
truncate -s "${disk_mib}M" "$raw"
sfdisk --quiet --no-reread --no-tell-kernel "$raw" <<EOF
label: gpt
start=$bios_start, size=$bios_sectors, type=21686148-6449-6E6F-744E-656564454649, name="bios"
start=$esp_start, size=$esp_sectors, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="esp"
start=$root_start, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="root"
EOF
root_sectors=$(sfdisk --dump "$raw" | sed -n 's/.*start= *'"$root_start"', size= *\([0-9]*\).*/\1/p')
[ -n "$root_sectors" ] || { say "cannot read the root partition's size back from the GPT"; exit 1; }
# place FILE START_SECTOR: copies FILE into the disk at that sector (holes stay holes)
place() { dd if="$1" of="$raw" bs=1M oflag=seek_bytes seek=$(($2 * 512)) conv=notrunc,sparse status=none; }

progress "making the root file system ($((root_sectors / 2048)) MiB, ext4 from the tree)"
truncate -s $((root_sectors * 512)) "$work/root.ext4"
mkfs.ext4 -q -F -L debian-root -U "$root_uuid" -d "$tree" "$work/root.ext4"
place "$work/root.ext4" "$root_start"
rm -f "$work/root.ext4"

# --- 4. GRUB for both firmwares -----------------------------------------------------
# Both loaders carry the same tiny config: find the root file system by UUID, read its grub.cfg.
cat > "$work/early.cfg" <<EOF
search --no-floppy --fs-uuid --set=root $root_uuid
set prefix=(\$root)/boot/grub
configfile /boot/grub/grub.cfg
EOF
mods="part_gpt ext2 search search_fs_uuid configfile normal linux boot echo test"

progress "GRUB for UEFI: EFI/BOOT/BOOTX64.EFI on the ESP"
grub-mkstandalone -O x86_64-efi -o "$work/BOOTX64.EFI" --modules="$mods" --install-modules="$mods" \
  --locales= --fonts= --themes= "boot/grub/grub.cfg=$work/early.cfg"
mkfs.vfat -n ESP -C "$work/esp.fat" $((esp_sectors / 2)) >/dev/null
mmd -i "$work/esp.fat" ::/EFI ::/EFI/BOOT
mcopy -i "$work/esp.fat" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
place "$work/esp.fat" "$esp_start"

progress "GRUB for BIOS: boot.img in the MBR, core.img in the BIOS boot partition"
# What grub-install would do, by hand: core.img's first sector (diskboot) loads the rest
# from the blocklist at its end (start LBA, 8 bytes at 0x1f4; grub-mkimage fills the
# length), and boot.img loads that first sector from the LBA at 0x5c.
grub-mkimage -O i386-pc -o "$work/core.img" -p /boot/grub -c "$work/early.cfg" biosdisk serial terminal $mods
core_bytes=$(stat -c %s "$work/core.img")
[ "$core_bytes" -le $((bios_sectors * 512)) ] || { say "core.img ($core_bytes bytes) does not fit the BIOS boot partition"; exit 1; }
# le64 N: N as 8 little-endian bytes
le64() {
  n=$1; i=0
  while [ $i -lt 8 ]; do printf "\\$(printf %03o $((n & 255)))"; n=$((n >> 8)); i=$((i + 1)); done
}
le64 $((bios_start + 1)) | dd of="$work/core.img" bs=1 seek=500 conv=notrunc status=none
place "$work/core.img" "$bios_start"
cp /usr/lib/grub/i386-pc/boot.img "$work/boot.img"
le64 "$bios_start" | dd of="$work/boot.img" bs=1 seek=92 conv=notrunc status=none
# only the code (440 bytes): the protective MBR's partition table that sfdisk wrote stays
dd if="$work/boot.img" of="$raw" bs=440 count=1 conv=notrunc status=none

# --- 5. into the cache ---------------------------------------------------------------
progress "converting to qcow2 (compressed)"
qemu-img convert -q -c -O qcow2 "$raw" "$work/image.qcow2"
rm -f "$raw"
chmod 0644 "$work/image.qcow2"
mv "$work/image.qcow2" "$image"
chmod 0755 "$cache"
# Images of other versions of this script that no run has used for 30 days go.
find "$cache" -maxdepth 1 -name 'debian-12-*.qcow2' ! -name "debian-12-$key.qcow2" -mtime +30 -delete 2>/dev/null || true
say "built $image ($(($(stat -c %s "$image") / 1048576)) MiB, kernel $kver) in $(($(date +%s) - started)) s"
finish

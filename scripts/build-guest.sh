#!/bin/sh
# Builds the small test and demo guest into .cache/guest/: Debian's cloud kernel and a
# busybox-static initramfs whose /init understands warden.ip=, warden.ping=,
# warden.http=, warden.flood= and warden.tick= on the kernel command line and prints WARDEN-GUEST-READY when up.
# Idempotent: does nothing when the cached guest matches this script and the kernel.
# Output: .cache/guest/vmlinuz, .cache/guest/initramfs.gz, .cache/guest/kernel-version.
set -eu
cd "$(dirname "$0")/.."
quiet=false; [ "${1:-}" = "--quiet" ] && quiet=true
say() { echo "build-guest: $*" >&2; }
out=.cache/guest
mkdir -p "$out"

# The versioned kernel package the meta package depends on (e.g. linux-image-6.1.0-56-cloud-amd64).
resolve() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1; }
kpkg=$(resolve)
if [ -z "$kpkg" ] && [ "$(id -u)" -eq 0 ]; then
  # a fresh machine may have no package lists yet
  apt-get update -q >/dev/null 2>&1 || true
  kpkg=$(resolve)
fi
if [ -z "$kpkg" ]; then
  say "cannot resolve linux-image-cloud-amd64 to a versioned package (run apt-get update?)"; exit 1
fi
kver=${kpkg#linux-image-}
# The cache key: kernel version plus this script's content (a changed /init rebuilds).
key="$kver $(cksum < "$0" | cut -d' ' -f1)"
if [ -f "$out/vmlinuz" ] && [ -f "$out/initramfs.gz" ] && [ "$(cat "$out/key" 2>/dev/null)" = "$key" ]; then
  $quiet || say "cached guest is current ($kver)"; exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/warden-guest-build.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

say "downloading $kpkg"
# A mirror hiccup should not fail a CI run: three tries, a few seconds apart.
deb=""
for try in 1 2 3; do
  deb=$(cd "$work" && apt-get download "$kpkg" >/dev/null 2>&1 && ls "$work"/*.deb) && break
  deb=""
  [ "$try" -lt 3 ] && { say "apt-get download $kpkg failed (try $try of 3), retrying"; sleep $((try * 3)); }
done
[ -n "$deb" ] || { say "apt-get download $kpkg failed 3 times"; exit 1; }
say "unpacking the kernel"
dpkg -x "$deb" "$work/k"
moddir="$work/k/lib/modules/$kver"

say "assembling the initramfs"
root="$work/root"
mkdir -p "$root/bin" "$root/sbin" "$root/etc/acpi/PWRF" "$root/proc" "$root/sys" "$root/dev" \
  "$root/tmp" "$root/run" "$root/www" "$root/lib/modules"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
ln -sf ../bin/busybox "$root/sbin/init"

# virtio drivers in load order, then the ACPI power button and evdev (acpid reads
# /dev/input/event*); a built-in one is skipped, a missing one is an error, and
# every dependency named by modinfo must be loaded earlier (or built in).
mods="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net virtio_blk button evdev fuse virtiofs"
# The scsi stack (modules in the cloud kernel) goes in a second list that /init loads only
# when a virtio-scsi controller is on the PCI bus, so a guest without one boots as before.
scsimods="scsi_common scsi_mod sd_mod virtio_scsi"
loaded=""
: > "$root/lib/modules/load-order"
: > "$root/lib/modules/load-order-scsi"
for m in $mods $scsimods; do
  order=load-order
  case " $scsimods " in *" $m "*) order=load-order-scsi ;; esac
  if grep -q "/$m\.ko" "$moddir/modules.builtin" 2>/dev/null; then loaded="$loaded $m"; continue; fi
  ko=$(find "$moddir/kernel" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -n1)
  [ -n "$ko" ] || { say "module $m is neither built in nor in $kpkg"; exit 1; }
  case "$ko" in *.ko) ;; *) say "compressed module $ko is not supported"; exit 1 ;; esac
  for dep in $(modinfo -F depends "$ko" | tr ',' ' '); do
    case " $loaded " in *" $dep "*) ;; *)
      grep -q "/$dep\.ko" "$moddir/modules.builtin" || { say "$m needs $dep, which is not loaded before it"; exit 1; } ;;
    esac
  done
  cp "$ko" "$root/lib/modules/$m.ko"
  echo "$m" >> "$root/lib/modules/$order"
  loaded="$loaded $m"
done

cat > "$root/init" <<'EOF'
#!/bin/sh
# PID 1 prologue: mount, load drivers, then hand over to busybox init.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
for m in $(cat /lib/modules/load-order); do insmod "/lib/modules/$m.ko" || echo "warden-guest: insmod $m failed"; done
# virtio-scsi (1af4:1004 transitional, 1af4:1048 modern): its drivers only when the controller is there.
if grep -qxE '0x(1004|1048)' /sys/bus/pci/devices/*/device 2>/dev/null; then
  for m in $(cat /lib/modules/load-order-scsi); do insmod "/lib/modules/$m.ko" || echo "warden-guest: insmod $m failed"; done
fi
exec /sbin/init
EOF

cat > "$root/etc/inittab" <<'EOF'
::sysinit:/etc/rc.warden
ttyS0::respawn:-/bin/sh
::ctrlaltdel:/bin/poweroff
::shutdown:/bin/sync
::shutdown:/bin/sh -c 'umount -a -r 2>/dev/null; true'
EOF

cat > "$root/etc/rc.warden" <<'EOF'
#!/bin/sh
# Reads warden.* from the kernel command line, sets up the guest, prints the ready line.
export PATH=/bin:/sbin
hostname warden-guest
ip link set lo up
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    warden.ip=*) ip=${arg#warden.ip=} ;;
    warden.gw=*) gw=${arg#warden.gw=} ;;
    warden.ping=*) ping=${arg#warden.ping=} ;;
    warden.http=*) http=${arg#warden.http=} ;;
    warden.flood=*) flood=${arg#warden.flood=} ;;
    warden.fetch=*) fetch=${arg#warden.fetch=} ;;
    warden.push=*) push=${arg#warden.push=} ;;
    warden.tick=*) tick=${arg#warden.tick=} ;;
    warden.virtiofs=*) virtiofs=${arg#warden.virtiofs=} ;;
  esac
done
if [ -n "${ip:-}" ]; then
  ip addr add "$ip" dev eth0 && ip link set eth0 up || echo "warden-guest: cannot configure eth0 with $ip"
  [ -n "${gw:-}" ] && ip route add default via "$gw"
fi
if [ -n "${http:-}" ]; then
  echo "warden guest $(hostname)" > /www/index.html
  httpd -p "$http" -h /www
fi
# The power button (ACPI, as QMP system_powerdown presses it) powers off cleanly. The
# ready line waits until acpid holds the input devices, so no press after it is lost.
acpid -f -c /etc/acpi -l /dev/null &
n=0
while [ $n -lt 40 ] && ! ls -l /proc/$!/fd 2>/dev/null | grep -q /dev/input/event; do n=$((n + 1)); sleep 0.05; done
# A TPM (tpm_crb/tpm_tis are built into Debian's cloud kernel) is named on the console.
[ -e /dev/tpm0 ] && echo "WARDEN-TPM /dev/tpm0 version $(cat /sys/class/tpm/tpm0/tpm_version_major 2>/dev/null)"
echo WARDEN-GUEST-READY
# warden.virtiofs=TAG[,TAG...]: mount each shared folder, list it, print hello.txt's first line, try to write.
for tag in $(echo "${virtiofs:-}" | tr ',' ' '); do
  mkdir -p "/mnt/$tag"
  if mount -t virtiofs "$tag" "/mnt/$tag"; then
    echo "WARDEN-VIRTIOFS-LS $tag $(ls -A "/mnt/$tag" | tr '\n' ' ')"
    echo "WARDEN-VIRTIOFS-CAT $tag $(head -n1 "/mnt/$tag/hello.txt" 2>&1)"
    [ -f "/mnt/$tag/big.bin" ] && echo "WARDEN-VIRTIOFS-SUM $tag $(md5sum "/mnt/$tag/big.bin" | cut -d' ' -f1)"
    if (echo "from-guest" > "/mnt/$tag/from-guest.txt") 2>/dev/null; then echo "WARDEN-VIRTIOFS-WRITE-OK $tag"; else echo "WARDEN-VIRTIOFS-WRITE-FAIL $tag"; fi
  else
    echo "WARDEN-VIRTIOFS-FAIL $tag"
  fi
done
if [ -n "${ping:-}" ]; then
  (
    n=0
    while [ $n -lt 30 ]; do
      if ping -c 1 -W 1 "$ping" >/dev/null 2>&1; then echo "WARDEN-PING-OK $ping"; exit 0; fi
      n=$((n + 1)); sleep 1
    done
    echo "WARDEN-PING-FAIL $ping"
  ) &
fi
# warden.tick=1: an increasing counter every second (save/restore and migration tests see it continue).
if [ -n "${tick:-}" ]; then
  ( n=0; while :; do n=$((n + 1)); echo "WARDEN-TICK $n"; sleep 1; done ) &
fi
# warden.fetch=URL: an HTTP GET from the guest (ICMP may not pass user networking), its first line reported.
if [ -n "${fetch:-}" ]; then
  (
    n=0
    while [ $n -lt 30 ]; do
      if body=$(timeout 5 wget -q -O - "$fetch" 2>/dev/null); then echo "WARDEN-FETCH-OK $(echo "$body" | head -n1)"; exit 0; fi
      n=$((n + 1)); sleep 1
    done
    echo "WARDEN-FETCH-FAIL $fetch"
  ) &
fi
# warden.push=IP:PORT:MIB: that many MiB of zeros to a host listener (guest -> host throughput).
if [ -n "${push:-}" ]; then
  ( IFS=: read -r pip pport pmib <<PUSH
$push
PUSH
    sleep 1; dd if=/dev/zero bs=1048576 count="$pmib" 2>/dev/null | nc "$pip" "$pport"; echo "WARDEN-PUSH-DONE" ) &
fi
# warden.flood=BYTES: that much console output at once (for the log cap tests), then a marker.
if [ -n "${flood:-}" ]; then
  ( yes "WARDEN-FLOOD 0123456789abcdefghijklmnopqrstuvwxyz" | head -c "$flood"; echo; echo WARDEN-FLOOD-DONE ) &
fi
EOF

cat > "$root/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "warden-guest: power button, powering off"
poweroff
EOF
chmod 755 "$root/init" "$root/etc/rc.warden" "$root/etc/acpi/PWRF/00000080"
echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -9 > "$work/initramfs.gz"
cp "$work/k/boot/vmlinuz-$kver" "$work/vmlinuz"
mv "$work/vmlinuz" "$out/vmlinuz"
mv "$work/initramfs.gz" "$out/initramfs.gz"
echo "$kver" > "$out/kernel-version"
echo "$key" > "$out/key"
say "guest ready in $out ($kver, initramfs $(wc -c < "$out/initramfs.gz") bytes)"

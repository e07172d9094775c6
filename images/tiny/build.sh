#!/usr/bin/env bash
# Builds the tiny guest: a small bootable machine for tests and demos of the libvirt driver, made from
# Debian packages only (apt-get download + dpkg-deb -x; nothing else is downloaded).
#
#   images/tiny/build.sh OUTDIR
#
# OUTDIR receives:
#   vmlinuz      the Debian kernel
#   initrd.img   busybox and the kernel modules for virtio disks, network, ext4, ISO 9660 and ACPI
#   root.qcow2   the root file system (ext4): busybox, dropbear and the boot script
#
# At boot the guest reads the NoCloud seed (an ISO 9660 disk labelled `cidata`): `meta-data` gives the
# instance id and host name; `user-data` (a cloud-config, or a MIME multipart of cloud-config and shell
# script parts) gives `ssh_authorized_keys`, installed for the user `ubuntu`, and the startup script, run
# once per instance id. It then configures eth0 by DHCP, starts dropbear on port 22, powers off on the ACPI
# power button, and prints `BARRACK-READY <instance id>` on the serial console.
# Needs: apt-get, dpkg-deb, depmod (kmod), cpio, gzip, mke2fs (e2fsprogs >= 1.43), qemu-img.
set -euo pipefail

out="${1:?usage: images/tiny/build.sh OUTDIR}"
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# apt-get download runs as the _apt user where it can.
chmod 777 "$work"
cd "$work"

kernel_package="$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
[ -n "$kernel_package" ] || { echo "no kernel package found (apt-get update?)" >&2; exit 1; }
libraries=(libc6 libcrypt1 libtomcrypt1 libtommath1 zlib1g libgmp10)
apt-get download -q "$kernel_package" busybox-static dropbear-bin "${libraries[@]}" >/dev/null 2>&1 ||
  apt-get download "$kernel_package" busybox-static dropbear-bin "${libraries[@]}"

# --- the kernel and the modules the guest needs -------------------------------------------------------
mkdir kernel
dpkg-deb -x "$kernel_package"_*.deb kernel
version="$(ls kernel/lib/modules)"
depmod -b kernel "$version"
modules_dir="kernel/lib/modules/$version"

# The modules to load, each after the ones it depends on (from modules.dep).
declare -A seen=()
ordered=()
add_module() {
  local path="$1" dep
  [ -n "${seen[$path]:-}" ] && return
  seen[$path]=1
  for dep in $(awk -F': *' -v m="$path" '$1 == m {print $2}' "$modules_dir/modules.dep"); do
    add_module "$dep"
  done
  ordered+=("$path")
}
for name in virtio_pci virtio_blk virtio_net ext4 crc32c_generic isofs button evdev; do
  path="$(awk -F: -v n="$name" '{f=$1; sub(".*/", "", f); sub("\\.ko.*$", "", f); if (f == n) {print $1; exit}}' \
    "$modules_dir/modules.dep")"
  [ -n "$path" ] || { echo "module $name not found in $kernel_package" >&2; exit 1; }
  add_module "$path"
done

# --- the initramfs: load modules, mount the root disk, switch to it -----------------------------------
mkdir -p initramfs/{bin,dev,proc,sys,newroot,modules}
dpkg-deb -x busybox-static_*.deb busybox
cp busybox/bin/busybox initramfs/bin/busybox
for path in "${ordered[@]}"; do
  cp "$modules_dir/$path" initramfs/modules/
  basename "$path" >>initramfs/modules/order
done
cp "$here/init" initramfs/init
chmod 755 initramfs/init
(cd initramfs && find . | cpio -o -H newc --quiet | gzip -9) >"$out/initrd.img.tmp"

# --- the root file system ---------------------------------------------------------------------------
root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc/init.d,etc/dropbear,etc/acpi/PWRF,dev,proc,sys,run,tmp,home,root,var/log,var/lib/barrack,mnt/seed}
ln -s ../run "$root/var/run"
chmod 1777 "$root/tmp"
chmod 700 "$root/root"
cp busybox/bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list-full); do
  [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
dpkg-deb -x dropbear-bin_*.deb "$root"
for library in "${libraries[@]}"; do
  dpkg-deb -x "${library}"_*.deb "$root"
done
rm -rf "$root"/usr/share "$root"/usr/lib/x86_64-linux-gnu/gconv "$root"/usr/libexec
# Fail here, not in the guest, when a library is missing.
"$root/lib64/ld-linux-x86-64.so.2" --library-path "$root/lib/x86_64-linux-gnu:$root/usr/lib/x86_64-linux-gnu" \
  "$root/usr/sbin/dropbear" -V >/dev/null 2>&1 || {
  echo "dropbear does not run with the unpacked libraries" >&2
  exit 1
}

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
ubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/sh
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
ubuntu:x:1000:
EOF
# No passwords: keys only.
cat >"$root/etc/shadow" <<'EOF'
root:*:19000:0:99999:7:::
ubuntu:*:19000:0:99999:7:::
EOF
chmod 640 "$root/etc/shadow"
echo /bin/sh >"$root/etc/shells"
echo tiny >"$root/etc/hostname"
cat >"$root/etc/inittab" <<'EOF'
::sysinit:/etc/init.d/rcS
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r
EOF
# busybox acpid runs /etc/acpi/<event> for each event; the power button powers off.
printf '#!/bin/sh\nexec /sbin/poweroff\n' >"$root/etc/acpi/PWRF/00000080"
chmod 755 "$root/etc/acpi/PWRF/00000080"
cp "$here/rcS" "$root/etc/init.d/rcS"
cp "$here/udhcpc.script" "$root/etc/udhcpc.script"
chmod 755 "$root/etc/init.d/rcS" "$root/etc/udhcpc.script"

mke2fs -q -t ext4 -L tiny-root -d "$root" "$work/root.raw" 1G
qemu-img convert -q -f raw -O qcow2 "$work/root.raw" "$out/root.qcow2.tmp"

cp kernel/boot/vmlinuz-"$version" "$out/vmlinuz.tmp"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
mv "$out/initrd.img.tmp" "$out/initrd.img"
mv "$out/root.qcow2.tmp" "$out/root.qcow2"
# libvirt's QEMU runs as an unprivileged user: it must read these files and reach them.
chmod 644 "$out"/vmlinuz "$out"/initrd.img "$out"/root.qcow2
chmod 755 "$out"
echo "tiny guest ($kernel_package) in $out"

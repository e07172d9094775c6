#!/usr/bin/env bash
# Prepares a machine for the libvirt driver's tests: installs libvirt and QEMU, starts the daemons when
# they are not running (works without systemd), and builds the tiny guest image.
#
#   scripts/setup/libvirt.sh [IMAGE_DIR]     (default: /var/lib/barrack/images/tiny)
#
# Idempotent: packages already installed, daemons already answering and an image already built are left
# alone. The tests then run with BARRACK_TEST_LIBVIRT=1 and BARRACK_TEST_LIBVIRT_IMAGE=IMAGE_DIR
# (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/../.."

image_dir="${1:-/var/lib/barrack/images/tiny}"

packages=(qemu-system-x86 libvirt-daemon-system libvirt-clients libvirt-dev busybox-static dropbear-bin
  genisoimage cpio kmod openssh-client tini)

missing() {
  for package in "${packages[@]}" qemu-utils; do
    dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$' || return 0
  done
  # qemu-img must come from the same QEMU release as qemu-system-x86 (a backported qemu-utils conflicts).
  [ "$(dpkg-query -W -f='${Version}' qemu-utils)" != "$(dpkg-query -W -f='${Version}' qemu-system-x86)" ]
}

if missing; then
  apt-get update -qq
  # Pin qemu-utils to qemu-system-x86's candidate: a newer qemu-utils from backports conflicts with it.
  qemu_version="$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    --allow-downgrades "${packages[@]}" "qemu-utils=$qemu_version" >/dev/null
fi

# The daemons: nothing to do when libvirtd answers (under systemd or started earlier). Without systemd,
# libvirtd runs under tini as a subreaper: the QEMU processes it probes and then daemonizes are reparented
# to tini and reaped, where an init that does not reap them leaves zombies that libvirtd waits on forever
# (every domain definition then hangs in the capabilities probe).
if ! virsh -c qemu:///system version >/dev/null 2>&1; then
  pgrep -x virtlogd >/dev/null || virtlogd -d
  if ! pgrep -x libvirtd >/dev/null; then
    mkdir -p /var/log/libvirt
    setsid tini -s -- libvirtd >>/var/log/libvirt/libvirtd.out 2>&1 </dev/null &
  fi
  for _ in $(seq 30); do
    virsh -c qemu:///system version >/dev/null 2>&1 && break
    sleep 1
  done
fi
virsh -c qemu:///system version >/dev/null

# The guest image the tests boot.
if [ ! -f "$image_dir/root.qcow2" ] || [ ! -f "$image_dir/vmlinuz" ] || [ ! -f "$image_dir/initrd.img" ]; then
  bash images/tiny/build.sh "$image_dir"
fi
echo "libvirt ready; tiny image in $image_dir"

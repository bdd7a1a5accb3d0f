#!/usr/bin/env bash
# Prepare this host for labctl's tests and demo: Vagrant, Docker (engine
# started if none answers), containerd/runc, debootstrap, shellcheck, virsh (its
# test driver answers the libvirt parser's test without a daemon), Graphviz and
# headless Chromium (labctl graph, and the test that looks at its page),
# apt-cacher-ng (labctl cache: installed, not started), the
# docker provider's box image; and libvirt with QEMU (daemons started when they
# do not answer) and labctl's libvirt box, for the real-VM tests. Idempotent; on
# Debian/Ubuntu as root only.
#
#   tools/setup-host.sh          everything (make test, make bench)
#   tools/setup-host.sh docker   only what a docker-provider lab needs (make demo):
#                                no libvirt, QEMU, VM box or test-only tools
set -euo pipefail

PART=${1:-all}
DOCKER_PACKAGES=(vagrant docker.io containerd runc debootstrap busybox-static openssh-client apt-cacher-ng)
TEST_PACKAGES=(shellcheck libvirt-clients graphviz chromium-headless-shell)
LIBVIRT_PACKAGES=(libvirt-daemon-system libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils dnsmasq-base vagrant-libvirt)
case "$PART" in
  all) PACKAGES=("${DOCKER_PACKAGES[@]}" "${TEST_PACKAGES[@]}" "${LIBVIRT_PACKAGES[@]}") ;;
  docker) PACKAGES=("${DOCKER_PACKAGES[@]}") ;;
  *) printf 'usage: %s [all|docker]\n' "$0" >&2; exit 2 ;;
esac
LABCTL=${LABCTL:-.venv/bin/labctl}

say() { printf 'setup-host: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  say "not root on Debian/Ubuntu: install ${PACKAGES[*]} yourself and start Docker"
else
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # No service starts from these packages: apt-cacher-ng's own would take
    # port 3142 from labctl's cache (labctl cache start runs its own).
    blocker=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      blocker=/usr/sbin/policy-rc.d
      printf '#!/bin/sh\nexit 101\n' >"$blocker"
      chmod 755 "$blocker"
    fi
    apt-get install -y -qq "${missing[@]}" >/dev/null
    if [ -n "$blocker" ]; then rm -f "$blocker"; fi
  fi
fi

if ! docker info >/dev/null 2>&1; then
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    say "starting docker (systemd)"
    systemctl start docker
  else
    say "starting dockerd (no systemd here)"
    nohup dockerd >/var/log/labctl-dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { say "the Docker engine did not start: see /var/log/labctl-dockerd.log"; exit 1; }
fi

"$LABCTL" box build --provider docker
if [ "$PART" = docker ]; then
  exit 0
fi

if ! virsh -c qemu:///system version >/dev/null 2>&1; then
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    say "starting libvirtd (systemd)"
    systemctl start libvirtd
  else
    say "starting virtlogd and libvirtd (no systemd here)"
    pgrep -x virtlogd >/dev/null || virtlogd -d
    pgrep -x libvirtd >/dev/null || libvirtd -d
  fi
  # the first answer takes some seconds: libvirt probes QEMU
  for _ in $(seq 1 60); do
    virsh -c qemu:///system version >/dev/null 2>&1 && break
    sleep 1
  done
  virsh -c qemu:///system version >/dev/null 2>&1 || { say "libvirtd did not start"; exit 1; }
fi

# labctl's VM box, where this host can run VMs (KVM, or QEMU emulating)
if command -v qemu-system-x86_64 >/dev/null; then
  "$LABCTL" box build --provider libvirt
fi

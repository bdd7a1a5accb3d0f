"""The libvirt provider's box, built offline from Debian's packages: a
bookworm disk image that QEMU boots straight from its own kernel and initrd
(no boot loader, so no loop device or partition table is needed to make it).

The box is added to Vagrant through a local catalog with a version per
build: a rebuilt box is a new version, so a lab made from the old one keeps
its base volume and kernel, and new labs take the new one.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from labctl.errors import LabctlError
from labctl.events import OnEvent, each_line, ignore, info
from labctl.local import process
from labctl.local.ruby import ruby
from labctl.providers import debootstrap, packages
from labctl.providers.base import vagrant_box_folder, vagrant_box_present

LIBVIRT_BOX = "labctl/bookworm"  # built here: labctl box build --provider libvirt

PACKAGES = (
    *debootstrap.PACKAGES,
    "linux-image-amd64",
    "initramfs-tools",
    "kmod",
    "udev",
    "systemd-resolved",  # DNS from the management network's DHCP
    "iputils-ping",
)
# Virtio and ext4 in the initrd: the root file system is /dev/vda, found early.
INITRD_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "ext4")
CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0"
DISK_GB = 16
# QEMU runs as libvirt-qemu and cannot read a kernel inside root's ~/.vagrant.d
# (0700): the box's kernel and initrd are also kept here, where libvirt keeps
# boot images.
BOOT_DIR = Path("/var/lib/libvirt/boot")

# ed25519 only: RSA key generation takes some 20 s under emulation.
HOSTKEYS = debootstrap.hostkeys_unit(
    '/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key'
)
NETWORK = """\
[Match]
Name=eth0

[Network]
DHCP=ipv4
"""
# A lab's guest halts in seconds, not after systemd's 90 s wait for what a
# service left behind (containerd's shims keep running containers).
STOP_TIMEOUT = """\
[Manager]
DefaultTimeoutStopSec=15s
"""
# Timers that would take the dpkg lock or the disk while a lab is provisioned.
MASKED = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
)
TOOLS = ("debootstrap", "mkfs.ext4", "qemu-img", "tar", "vagrant")


@dataclass(frozen=True)
class Built:
    name: str
    version: str
    kernel: str


def box_vagrantfile(kernel: Path, initrd: Path) -> str:
    """The box's own Vagrantfile: boot from the shared copies of its kernel and
    initrd, or from the box folder's where those are gone."""
    return f"""\
# labctl's libvirt box: Debian {debootstrap.SUITE}, booted from its own kernel (no boot loader).
Vagrant.configure("2") do |config|
  # built on this host, not downloaded: there is no catalog to check for updates
  config.vm.box_check_update = false
  config.vm.provider :libvirt do |lv|
    here = File.dirname(__FILE__)
    kernel = File.readable?({ruby(str(kernel))}) ? {ruby(str(kernel))} : File.join(here, "vmlinuz")
    initrd = File.readable?({ruby(str(initrd))}) ? {ruby(str(initrd))} : File.join(here, "initrd.img")
    lv.kernel = kernel
    lv.initrd = initrd
    lv.cmd_line = {ruby(CMDLINE)}
    lv.disk_bus = "virtio"
  end
end
"""


def catalog(name: str, version: str, box_file: Path) -> dict[str, object]:
    """A local Vagrant box catalog naming one version of the box."""
    return {
        "name": name,
        "versions": [
            {
                "version": version,
                "providers": [{"name": "libvirt", "url": box_file.resolve().as_uri()}],
            }
        ],
    }


def new_version(now: float | None = None) -> str:
    """A version that grows with every build (Vagrant compares versions as numbers)."""
    return time.strftime("0.%Y%m%d.%H%M%S", time.gmtime(now))


def _prepare(rootfs: Path) -> tuple[Path, Path]:
    """Make the debootstrapped tree bootable as a VM; its kernel and initrd."""
    (rootfs / "etc/initramfs-tools/modules").write_text("\n".join(INITRD_MODULES) + "\n")
    (rootfs / "etc/fstab").write_text("/dev/vda / ext4 errors=remount-ro 0 1\n")
    (rootfs / "etc/systemd/network/20-eth0.network").write_text(NETWORK)
    (rootfs / "etc/hostname").write_text("labctl\n")
    (rootfs / "etc/systemd/system.conf.d").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/systemd/system.conf.d/labctl.conf").write_text(STOP_TIMEOUT)
    debootstrap.chroot(rootfs, "systemctl", "enable", "systemd-networkd", "systemd-resolved")
    debootstrap.chroot(rootfs, "systemctl", "mask", *MASKED)
    debootstrap.chroot(rootfs, "update-initramfs", "-u", "-k", "all")
    resolv = rootfs / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    resolv.symlink_to("/run/systemd/resolve/stub-resolv.conf")
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise LabctlError("the box has no kernel: linux-image-amd64 did not install")
    kernel = kernels[-1]
    initrd = rootfs / "boot" / kernel.name.replace("vmlinuz-", "initrd.img-")
    if not initrd.is_file():
        raise LabctlError(f"the box has no initrd for {kernel.name}")
    return kernel, initrd


def make_disk(rootfs: Path, image: Path, work: Path) -> None:
    """An ext4 file system made straight from the tree (no mount), as compressed qcow2."""
    raw = work / "disk.raw"
    with raw.open("wb") as fh:
        fh.truncate(DISK_GB * 1024**3)  # sparse
    steps = (
        ["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(rootfs), str(raw)],
        ["qemu-img", "convert", "-c", "-O", "qcow2", str(raw), str(image)],
    )
    try:
        for argv in steps:
            process.checked(process.run(argv, timeout=1800), argv[0])
    finally:
        raw.unlink(missing_ok=True)


def _install_boot_files(kernel: Path, initrd: Path, name: str, version: str) -> tuple[Path, Path]:
    """Copies QEMU can read, named after the box version that boots them."""
    BOOT_DIR.mkdir(mode=0o711, parents=True, exist_ok=True)
    stem = f"{name.replace('/', '-')}-{version}"
    shared = (BOOT_DIR / f"{stem}-vmlinuz", BOOT_DIR / f"{stem}-initrd.img")
    for src, dest in zip((kernel, initrd), shared, strict=True):
        shutil.copyfile(src, dest)
        dest.chmod(0o644)
    return shared


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def box_info(name: str = LIBVIRT_BOX) -> packages.BoxInfo | None:
    """The newest version of the box Vagrant has (the one new labs take), its
    manifest beside it in its folder; None when Vagrant has none."""
    versions = [p for p in vagrant_box_folder(name).glob("*/libvirt") if p.is_dir()]
    if not versions:
        return None
    folder = max(versions, key=lambda p: _version_key(p.parent.name))
    try:
        manifest = packages.Manifest.from_json((folder / packages.MANIFEST_FILE).read_text())
    except OSError:
        manifest = None
    return packages.BoxInfo(
        provider="libvirt",
        name=name,
        version=folder.parent.name,
        size=sum(f.stat().st_size for f in folder.iterdir() if f.is_file()),
        state=packages.freshness(manifest, packages.role_packages()),
        manifest=manifest,
    )


def build(name: str = LIBVIRT_BOX, force: bool = False, on_event: OnEvent = ignore) -> Built | None:
    """Build the box and add it to Vagrant; None when it is here and current,
    unless forced."""
    present = box_info(name) if vagrant_box_present(name, "libvirt") else None
    if not force and present and present.state is packages.Freshness.CURRENT:
        return None
    debootstrap.require_tools(*TOOLS)
    keys = debootstrap.vagrant_public_keys()
    version = new_version()
    work = Path(tempfile.mkdtemp(prefix="labctl-vmbox-", dir="/var/tmp"))
    shared: tuple[Path, Path] | None = None
    try:
        rootfs = work / "rootfs"
        debootstrap.debootstrap(rootfs, PACKAGES, on_event)
        debootstrap.customize(rootfs, keys, HOSTKEYS)
        manifest = debootstrap.carry_roles(rootfs, packages.role_packages(), on_event)
        on_event(info("", "making the kernel's initrd"))
        kernel, initrd = _prepare(rootfs)
        folder = work / "box"
        folder.mkdir()
        shutil.copyfile(kernel, folder / "vmlinuz")
        shutil.copyfile(initrd, folder / "initrd.img")
        on_event(info("", f"making the disk image ({DISK_GB} GB, sparse)"))
        make_disk(rootfs, folder / "box.img", work)
        shutil.rmtree(rootfs)
        shared = _install_boot_files(folder / "vmlinuz", folder / "initrd.img", name, version)
        (folder / "Vagrantfile").write_text(box_vagrantfile(*shared))
        (folder / packages.MANIFEST_FILE).write_text(manifest.to_json())
        (folder / "metadata.json").write_text(
            json.dumps({"provider": "libvirt", "format": "qcow2", "virtual_size": DISK_GB})
        )
        box_file = work / "labctl.box"
        tar = ["tar", "-C", str(folder), "-cf", str(box_file), "."]
        process.checked(process.run(tar, timeout=600), "tar")
        (work / "catalog.json").write_text(json.dumps(catalog(name, version, box_file)))
        on_event(info("", f"adding {name} {version} to Vagrant"))
        add = ["vagrant", "box", "add", "--provider", "libvirt", str(work / "catalog.json")]
        process.checked(
            process.run(add, on_stdout=each_line(on_event), timeout=1800), "vagrant box add"
        )
        shared = None  # the box needs them now
        # the catalog was a temporary file: no update checks against it at `up`
        (vagrant_box_folder(name) / "metadata_url").unlink(missing_ok=True)
        return Built(name, version, kernel.name.removeprefix("vmlinuz-"))
    finally:
        if shared:
            for path in shared:
                path.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)

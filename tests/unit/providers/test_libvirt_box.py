"""Building the libvirt box, as the programs it runs (debootstrap, chroot,
mkfs.ext4, qemu-img, tar, vagrant) and the files it leaves: a fake host
(conftest.py) answers each program and makes what the real one would."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from labctl.errors import LabctlError
from labctl.providers import debootstrap, libvirt_box, packages

from .conftest import KERNEL, MIRROR, FakeHost


def test_the_libvirt_box_as_its_programs(fake_host: FakeHost, tmp_path: Path) -> None:
    built = libvirt_box.build(on_event=lambda event: None)
    assert built is not None and built.kernel == KERNEL
    assert fake_host.programs()[0] == "debootstrap"
    debootstrap = fake_host.calls[0]
    assert debootstrap[-1] == MIRROR  # the host's own mirror: offline from the internet
    included = debootstrap[2].removeprefix("--include=").split(",")
    assert {"linux-image-amd64", "initramfs-tools", "openssh-server", "systemd-resolved"} <= set(
        included
    )
    assert ["update-initramfs", "-u", "-k", "all"] in fake_host.chroots()
    assert ["systemctl", "mask", *libvirt_box.MASKED] in fake_host.chroots()
    assert ["useradd", "--create-home", "--shell", "/bin/bash", "vagrant"] in fake_host.chroots()
    mkfs = next(a for a in fake_host.calls if a[0] == "mkfs.ext4")
    assert mkfs[mkfs.index("-d") + 1].endswith("rootfs")  # the tree itself: no mount, no loop
    convert = next(a for a in fake_host.calls if a[0] == "qemu-img")
    assert convert[1:5] == ["convert", "-c", "-O", "qcow2"]
    assert fake_host.programs()[-1] == "vagrant"
    assert fake_host.calls[-1][:5] == ["vagrant", "box", "add", "--provider", "libvirt"]


def test_the_libvirt_box_leaves_its_kernel_where_qemu_reads(
    fake_host: FakeHost, tmp_path: Path
) -> None:
    built = libvirt_box.build(on_event=lambda event: None)
    assert built is not None
    stem = f"labctl-bookworm-{built.version}"
    kernel, initrd = tmp_path / "boot" / f"{stem}-vmlinuz", tmp_path / "boot" / f"{stem}-initrd.img"
    assert kernel.read_bytes() == b"kernel" and initrd.read_bytes() == b"initrd"
    assert stat.S_IMODE(kernel.stat().st_mode) == 0o644
    assert f"File.readable?('{kernel}')" in fake_host.box_vagrantfile
    folder = fake_host.vagrant_home / "boxes" / "labctl-VAGRANTSLASH-bookworm"
    assert not (folder / "metadata_url").exists()  # the catalog was temporary
    assert not (tmp_path / "work" / "build").exists()


def test_the_libvirt_box_root_file_system(
    fake_host: FakeHost, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What the tree holds when the disk is made from it."""
    seen: dict[str, str] = {}
    make_disk = libvirt_box.make_disk

    def look(rootfs: Path, image: Path, work: Path) -> None:
        seen["modules"] = (rootfs / "etc/initramfs-tools/modules").read_text()
        seen["dbus"] = str((rootfs / "var/lib/dbus/machine-id").readlink())
        seen["machine-id"] = (rootfs / "etc/machine-id").read_text()
        seen["resolv"] = str((rootfs / "etc/resolv.conf").readlink())
        seen["network"] = (rootfs / "etc/systemd/network/20-eth0.network").read_text()
        seen["keys"] = " ".join(p.name for p in (rootfs / "etc/ssh").glob("ssh_host_*"))
        make_disk(rootfs, image, work)

    monkeypatch.setattr(libvirt_box, "make_disk", look)
    libvirt_box.build(on_event=lambda event: None)
    assert seen["modules"].split() == list(libvirt_box.INITRD_MODULES)
    # every guest makes its own machine-id (and DHCP client id) on first boot
    assert (seen["dbus"], seen["machine-id"]) == ("/etc/machine-id", "")
    assert seen["resolv"] == "/run/systemd/resolve/stub-resolv.conf"
    assert "Name=eth0" in seen["network"] and "DHCP=ipv4" in seen["network"]
    assert seen["keys"] == ""  # host keys are made per guest


def test_a_failed_box_add_leaves_nothing(fake_host: FakeHost, tmp_path: Path) -> None:
    fake_host.fail = "vagrant"
    with pytest.raises(LabctlError, match="vagrant box add failed: vagrant: it broke"):
        libvirt_box.build(on_event=lambda event: None)
    assert list((tmp_path / "boot").iterdir()) == []
    assert not (tmp_path / "work" / "build").exists()


def test_a_present_box_is_not_rebuilt(fake_host: FakeHost) -> None:
    assert libvirt_box.build(on_event=lambda event: None) is not None
    assert libvirt_box.build(on_event=lambda event: None) is None
    assert fake_host.programs().count("debootstrap") == 1


def test_a_box_carries_the_roles_packages_enabled_nowhere(
    fake_host: FakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, str] = {}
    make_disk = libvirt_box.make_disk

    def look(rootfs: Path, image: Path, work: Path) -> None:
        seen["manifest"] = (rootfs / debootstrap.MANIFEST_PATH).read_text()
        seen["policy"] = str((rootfs / "usr/sbin/policy-rc.d").exists())
        make_disk(rootfs, image, work)

    monkeypatch.setattr(libvirt_box, "make_disk", look)
    libvirt_box.build(on_event=lambda event: None)
    install = next(a for a in fake_host.chroots() if "install" in a)
    assert install[:2] == ["env", "DEBIAN_FRONTEND=noninteractive"]
    assert {"containerd", "runc", "default-mysql-server", "openjdk-17-jre-headless"} <= set(install)
    assert "openjdk-21-jre-headless" not in install  # not in bookworm
    # mariadb-server enabled itself: the box leaves that to the role script
    assert ["systemctl", "disable", "mariadb.service"] in fake_host.chroots()
    assert seen["policy"] == "False"  # services may start again once it is built
    manifest = packages.Manifest.from_json(seen["manifest"])
    assert manifest is not None and "jdk-21" not in manifest.roles
    assert {"containerd", "mysql", "jdk-17"} <= set(manifest.roles)
    listed = libvirt_box.box_info()
    assert listed is not None and listed.state is packages.Freshness.CURRENT
    assert listed.manifest == manifest and listed.carries == manifest.roles


def test_box_ls_takes_the_newest_libvirt_version(fake_host: FakeHost) -> None:
    assert libvirt_box.box_info() is None
    folder = fake_host.vagrant_home / "boxes" / "labctl-VAGRANTSLASH-bookworm"
    for version in ("0.20261130.235959", "0.20261201.000001"):
        (folder / version / "libvirt").mkdir(parents=True)
        (folder / version / "libvirt" / "box.img").write_bytes(b"x" * len(version))
    box = libvirt_box.box_info()
    assert box is not None
    assert (box.version, box.size, box.state) == (
        "0.20261201.000001",
        17,
        packages.Freshness.UNRECORDED,
    )

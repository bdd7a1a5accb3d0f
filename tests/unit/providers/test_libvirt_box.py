"""Building labctl's boxes, as the programs it runs (debootstrap, chroot,
mkfs.ext4, qemu-img, tar, vagrant, docker) and the files it leaves: a fake
host answers each program and makes what the real one would."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from labctl.errors import LabctlError
from labctl.local import process
from labctl.providers import debootstrap, libvirt_box
from labctl.providers import docker as docker_box

KERNEL = "6.1.0-9-amd64"
MIRROR = "http://deb.example/debian"


class FakeHost:
    """process.run for the box builders: records every argv, answers like
    the program, makes the files it would make; `fail` names one to fail."""

    def __init__(self, vagrant_home: Path, fail: str = "") -> None:
        self.calls: list[list[str]] = []
        self.vagrant_home = vagrant_home
        self.fail = fail
        self.box_vagrantfile = ""

    def programs(self) -> list[str]:
        return [argv[0] for argv in self.calls]

    def chroots(self) -> list[list[str]]:
        return [argv[2:] for argv in self.calls if argv[0] == "chroot"]

    def run(self, argv: list[str], **kw: object) -> process.Completed:
        argv = list(argv)
        self.calls.append(argv)
        if argv[0] == self.fail:
            return process.Completed(tuple(argv), 1, "", f"{argv[0]}: it broke")
        if argv[0] == "debootstrap":
            self._rootfs(Path(argv[-2]))
        elif argv[0] == "chroot" and argv[2:] == ["id", "vagrant"]:
            return process.Completed(tuple(argv), 1, "", "no such user")
        elif argv[0] == "qemu-img":
            Path(argv[-1]).write_bytes(b"QFI\xfb")
        elif argv[0] == "tar":
            folder = Path(argv[2])
            self.box_vagrantfile = (folder / "Vagrantfile").read_text()
            Path(argv[4]).write_bytes(b"box")
        elif argv[0] == "vagrant":
            catalog = json.loads(Path(argv[-1]).read_text())
            version = catalog["versions"][0]["version"]
            folder = self.vagrant_home / "boxes" / "labctl-VAGRANTSLASH-bookworm"
            (folder / version / "libvirt").mkdir(parents=True)
            (folder / "metadata_url").write_text(Path(argv[-1]).as_uri())
        return process.Completed(tuple(argv), 0, "", "")

    @staticmethod
    def _rootfs(root: Path) -> None:
        for d in (
            "boot",
            "etc/ssh/sshd_config.d",
            "etc/systemd/system",
            "etc/systemd/network",
            "etc/initramfs-tools",
            "etc/sudoers.d",
            "home/vagrant",
            "var/lib/dbus",
        ):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / f"boot/vmlinuz-{KERNEL}").write_bytes(b"kernel")
        (root / f"boot/initrd.img-{KERNEL}").write_bytes(b"initrd")
        (root / "var/lib/dbus/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
        (root / "etc/ssh/ssh_host_rsa_key").write_text("baked in")
        (root / "etc/resolv.conf").write_text("nameserver 192.0.2.53\n")


@pytest.fixture
def fake_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHost:
    vagrant_home = tmp_path / "vagrant.d"
    monkeypatch.setenv("VAGRANT_HOME", str(vagrant_home))
    host = FakeHost(vagrant_home)
    monkeypatch.setattr(process, "run", host.run)
    monkeypatch.setattr(debootstrap, "require_tools", lambda *tools: None)
    monkeypatch.setattr(debootstrap, "vagrant_public_keys", lambda: ["ssh-ed25519 AAAA vagrant"])
    monkeypatch.setattr(debootstrap, "debian_mirror", lambda suite=debootstrap.SUITE: MIRROR)
    monkeypatch.setattr(libvirt_box, "BOOT_DIR", tmp_path / "boot")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(libvirt_box.tempfile, "mkdtemp", lambda prefix, dir: str(work / "build"))
    (work / "build").mkdir()
    return host


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


def test_the_docker_box_as_its_programs(
    fake_host: FakeHost, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(docker_box, "image_present", lambda image=docker_box.DOCKER_BOX: False)
    monkeypatch.setattr(
        docker_box.tempfile, "mkdtemp", lambda prefix, dir: str(tmp_path / "work" / "build")
    )
    assert docker_box.build(on_event=lambda event: None)
    assert fake_host.programs() == ["debootstrap", *["chroot"] * 4, "bash"]
    pipe = fake_host.calls[-1]
    assert pipe[:4] == ["bash", "-o", "pipefail", "-c"]
    assert pipe[4] == docker_box.IMPORT_PIPE and pipe[-1] == docker_box.DOCKER_BOX

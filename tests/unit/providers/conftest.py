"""What the providers' box builders share in their tests: a fake host that
answers each program they run (debootstrap, chroot, mkfs.ext4, qemu-img,
tar, vagrant, docker) and makes the files the real one would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.local import process
from labctl.providers import debootstrap, libvirt_box, packages

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
        self.manifest = ""

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
        elif argv[0] == "chroot" and argv[2:4] == ["apt-cache", "policy"]:
            # bookworm ships no JDK 21 (apt knows its name from a dependency)
            said = [f"{p}:\n  Candidate: {'(none)' if '21' in p else '1.0'}\n" for p in argv[4:]]
            return process.Completed(tuple(argv), 0, "".join(said), "")
        elif argv[0] == "chroot" and "install" in argv:
            # as mariadb-server's install does: its service enabled
            wants = Path(argv[1]) / "etc/systemd/system/multi-user.target.wants"
            wants.mkdir(parents=True, exist_ok=True)
            (wants / "mariadb.service").symlink_to("/lib/systemd/system/mariadb.service")
        elif argv[0] == "chroot" and argv[2] == "dpkg-query":
            listed = "".join(f"{p}\t1.0-{i}\n" for i, p in enumerate(argv[6:]))
            return process.Completed(tuple(argv), 0, listed, "")
        elif argv[0] == "qemu-img":
            Path(argv[-1]).write_bytes(b"QFI\xfb")
        elif argv[0] == "tar":
            folder = Path(argv[2])
            self.box_vagrantfile = (folder / "Vagrantfile").read_text()
            self.manifest = (folder / packages.MANIFEST_FILE).read_text()
            Path(argv[4]).write_bytes(b"box")
        elif argv[0] == "vagrant":
            catalog = json.loads(Path(argv[-1]).read_text())
            version = catalog["versions"][0]["version"]
            folder = self.vagrant_home / "boxes" / "labctl-VAGRANTSLASH-bookworm"
            (folder / version / "libvirt").mkdir(parents=True)
            # what `box add` unpacks beside the disk: the box's manifest
            (folder / version / "libvirt" / packages.MANIFEST_FILE).write_text(self.manifest)
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
            "usr/sbin",
            "proc",
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

"""What every labctl box shares: a minimal Debian root file system made with
debootstrap from this host's own Debian mirror, made a Vagrant box (user
vagrant with Vagrant's key and sudo, host keys made per guest at first boot).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from labctl.errors import LabctlError, SpecError
from labctl.events import OnEvent, each_line, info
from labctl.local import process
from labctl.providers import packages

SUITE = "bookworm"
PACKAGES = (
    "openssh-server",
    "sudo",
    "systemd",
    "systemd-sysv",
    "python3",
    "iproute2",
    "procps",
    "ca-certificates",
    # a system bus, as every VM runs: a plain user's `systemctl is-active`
    # (testinfra's service checks) asks systemd over it
    "dbus",
)
# The box's own record of what it carries (packages.Manifest), for its users.
MANIFEST_PATH = "etc/labctl/box.json"
# Nothing a package installs starts in the chroot (it would run on the host).
POLICY_RC_D = (
    "#!/bin/sh\n# labctl's box build: no service starts while packages install\nexit 101\n"
)
_KEY_GLOBS = (
    "/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub*",
    "/opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub*",
    "/opt/vagrant/embedded/gems/*/gems/vagrant-*/keys/vagrant.pub*",
)


def hostkeys_unit(command: str = "/usr/bin/ssh-keygen -A") -> str:
    """A first-boot unit making the guest's own SSH host keys: baked-in keys
    would make every guest of a box share them."""
    return (
        "[Unit]\n"
        "Description=Generate this machine's SSH host keys on first boot\n"
        "Before=ssh.service\n"
        "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n\n"
        f"[Service]\nType=oneshot\nExecStart={command}\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )


def _source_lines() -> list[str]:
    lines: list[str] = []
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*"))]:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        if path.endswith(".sources"):
            # deb822: one stanza per blank-line-separated block
            for stanza in re.split(r"\n\s*\n", text):
                uris = re.search(r"^URIs:\s*(.+)$", stanza, re.M)
                suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
                if uris and suites:
                    for suite in suites.group(1).split():
                        lines.append(f"deb {uris.group(1).split()[0]} {suite}")
        else:
            lines += [ln.strip() for ln in text.splitlines() if ln.strip().startswith("deb ")]
    return lines


def debian_mirror(suite: str = SUITE) -> str | None:
    """The Debian mirror this host already uses for `suite`, if it uses one."""
    for line in _source_lines():
        words = [w for w in line.split() if not w.startswith("[")]
        if len(words) >= 3 and words[2] == suite and words[1].startswith(("http", "file")):
            return words[1]
    return None


def vagrant_public_keys() -> list[str]:
    """Vagrant's insecure public key(s), as shipped with Vagrant itself."""
    keys: list[str] = []
    for pattern in _KEY_GLOBS:
        for path in sorted(glob.glob(pattern)):
            keys += [ln for ln in Path(path).read_text().splitlines() if ln.strip()]
    if not keys:
        raise LabctlError(
            "Vagrant's insecure public key was not found", hint="install Vagrant first"
        )
    return sorted(set(keys))


def chroot(rootfs: Path, *argv: str) -> None:
    """Run a command inside the box's root file system; LabctlError when it fails."""
    done = process.run(["chroot", str(rootfs), *argv], timeout=600)
    if done.returncode != 0:
        raise LabctlError(
            f"preparing the box failed at chroot {' '.join(argv)}: {done.stderr[-300:]}"
        )


def customize(rootfs: Path, keys: list[str], hostkeys: str | None = None) -> None:
    """What makes a Debian root file system a Vagrant box: user `vagrant` with
    Vagrant's key and sudo, host keys made on first boot, an empty machine-id."""
    if process.run(["chroot", str(rootfs), "id", "vagrant"], timeout=60).returncode:
        chroot(rootfs, "useradd", "--create-home", "--shell", "/bin/bash", "vagrant")
    ssh_dir = rootfs / "home/vagrant/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text("\n".join(keys) + "\n")
    (ssh_dir / "authorized_keys").chmod(0o600)
    chroot(rootfs, "chown", "-R", "vagrant:vagrant", "/home/vagrant/.ssh")
    sudoers = rootfs / "etc/sudoers.d/vagrant"
    sudoers.write_text("vagrant ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
    for key in rootfs.glob("etc/ssh/ssh_host_*"):
        key.unlink()
    (rootfs / "etc/systemd/system/ssh-hostkeys.service").write_text(hostkeys or hostkeys_unit())
    chroot(rootfs, "systemctl", "enable", "ssh-hostkeys.service", "ssh.service")
    # systemd writes a fresh machine-id on first boot when the file is empty,
    # unless dbus's copy (made once, by dbus's install) is there to take:
    # every guest would share it, and with it its DHCP client id
    (rootfs / "etc/machine-id").write_text("")
    dbus_id = rootfs / "var/lib/dbus/machine-id"
    if dbus_id.parent.is_dir():
        dbus_id.unlink(missing_ok=True)
        dbus_id.symlink_to("/etc/machine-id")
    # no sshd reverse lookups: guests have no DNS for the lab's private network
    (rootfs / "etc/ssh/sshd_config.d/labctl.conf").write_text("UseDNS no\n")


def debootstrap(rootfs: Path, packages: tuple[str, ...], on_event: OnEvent) -> None:
    """A minimal Debian SUITE with `packages` at `rootfs`, from this host's
    own Debian mirror when it has one."""
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", SUITE]
    argv.append(str(rootfs))
    mirror = debian_mirror()
    if mirror:
        argv.append(mirror)
    lines = each_line(on_event)
    process.checked(process.run(argv, on_stdout=lines, on_stderr=lines), "debootstrap")


def require_tools(*tools: str) -> None:
    """Building a box needs root (debootstrap, chroot) and these programs."""
    if os.geteuid() != 0:
        raise SpecError("building the box needs root (debootstrap): run it with sudo")
    for tool in tools:
        if not shutil.which(tool):
            raise SpecError(f"{tool} is not installed", hint=f"apt-get install {tool}")


def enabled_units(rootfs: Path) -> set[str]:
    """The units enabled in the tree (its .wants/ and alias symlinks), as
    paths below etc/systemd/system."""
    base = rootfs / "etc/systemd/system"
    return {str(p.relative_to(base)) for p in base.rglob("*") if p.is_symlink()}


def parse_candidates(policy: str) -> set[str]:
    """`apt-cache policy PACKAGE...` -> the packages it has a candidate of
    (`apt-cache show` answers 0 for a name it knows only from a dependency)."""
    found: set[str] = set()
    package = ""
    for line in policy.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            package = line[:-1]
        elif line.strip().startswith("Candidate:") and line.split(":", 1)[1].strip() != "(none)":
            found.add(package)
    return found


def _chroot_out(rootfs: Path, *argv: str) -> process.Completed:
    return process.run(["chroot", str(rootfs), *argv], timeout=600)


def carry_roles(
    rootfs: Path, lists: dict[str, tuple[str, ...]], on_event: OnEvent
) -> packages.Manifest:
    """Install every role's packages its suite ships, enabled nowhere: a
    guest runs only what its own roles' scripts enable (a `nodes` guest no
    MariaDB). What the box carries, recorded in its manifest."""
    wanted = packages.wanted(lists)
    # a role whose package this suite does not ship (a later JDK) installs nothing here
    candidates = parse_candidates(_chroot_out(rootfs, "apt-cache", "policy", *wanted).stdout)
    shipped = [p for p in wanted if p in candidates]
    before = enabled_units(rootfs)
    policy = rootfs / "usr/sbin/policy-rc.d"
    policy.write_text(POLICY_RC_D)
    policy.chmod(0o755)
    proc = rootfs / "proc"
    with host_dns(rootfs):
        # a JDK's set-up runs java, which needs /proc
        process.checked(
            process.run(["mount", "-t", "proc", "proc", str(proc)], timeout=60), "mount"
        )
        try:
            on_event(info("", f"installing the roles' packages: {' '.join(shipped)}"))
            install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *shipped]
            argv = ["chroot", str(rootfs), "env", "DEBIAN_FRONTEND=noninteractive", *install]
            lines = each_line(on_event)
            process.checked(
                process.run(argv, on_stdout=lines, on_stderr=lines, timeout=1800), "apt-get"
            )
        finally:
            process.run(["umount", str(proc)], timeout=60)
            policy.unlink(missing_ok=True)
    # enabled by their packages: the role scripts enable what a guest runs
    units = sorted({Path(u).name for u in enabled_units(rootfs) - before})
    if units:
        chroot(rootfs, "systemctl", "disable", *units)
    chroot(rootfs, "apt-get", "clean")
    query = _chroot_out(rootfs, "dpkg-query", "-W", "-f", "${Package}\\t${Version}\\n", *shipped)
    versions = dict(line.split("\t", 1) for line in query.stdout.splitlines() if "\t" in line)
    manifest = packages.manifest_of(lists, versions)
    target = rootfs / MANIFEST_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(manifest.to_json())
    return manifest


@contextlib.contextmanager
def host_dns(rootfs: Path) -> Iterator[None]:
    """The host's resolver in the tree while apt downloads: the libvirt box's
    systemd-resolved makes /etc/resolv.conf a link to a file that exists only
    once the guest runs. What was there is put back."""
    conf = rootfs / "etc/resolv.conf"
    link = os.readlink(conf) if conf.is_symlink() else None
    saved = conf.read_bytes() if link is None and conf.is_file() else None
    conf.unlink(missing_ok=True)
    shutil.copyfile("/etc/resolv.conf", conf)
    try:
        yield
    finally:
        conf.unlink(missing_ok=True)
        if link is not None:
            conf.symlink_to(link)
        elif saved is not None:
            conf.write_bytes(saved)

"""Which Vagrant providers this host can use, and what to install for the others."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from labctl import process
from labctl.errors import LabctlError, SpecError, TimedOut
from labctl.spec import DEFAULT_LIBVIRT_URI

INSTALL_HINTS = {
    "virtualbox": "install VirtualBox (Debian/Ubuntu: the virtualbox package from "
    "https://www.virtualbox.org/wiki/Linux_Downloads)",
    "libvirt": "install the vagrant-libvirt plugin and libvirt (Debian/Ubuntu: apt-get "
    "install vagrant-libvirt libvirt-daemon-system; elsewhere: vagrant plugin install "
    "vagrant-libvirt)",
    "docker": "install Docker (Debian/Ubuntu: apt-get install docker.io)",
}
LIBVIRT_SOCKETS = ("/var/run/libvirt/libvirt-sock", "/run/libvirt/virtqemud-sock")


def virtualbox_installed() -> bool:
    return shutil.which("VBoxManage") is not None


def libvirt_plugin_installed() -> bool:
    """Without running vagrant (a second and more): Debian's packaged plugin,
    or one installed with `vagrant plugin install`."""
    if glob.glob("/usr/share/rubygems-integration/all/gems/vagrant-libvirt-*"):
        return True
    plugins = Path(os.environ.get("VAGRANT_HOME", Path.home() / ".vagrant.d")) / "plugins.json"
    try:
        return "vagrant-libvirt" in json.loads(plugins.read_text()).get("installed", {})
    except (OSError, ValueError):
        return False


def libvirt_daemon_present() -> bool:
    return any(os.path.exists(s) for s in LIBVIRT_SOCKETS)


def docker_installed() -> bool:
    return shutil.which("docker") is not None


def docker_guests_reachable() -> bool:
    """labctl reaches docker guests at their own addresses on the docker
    bridge, which only a Linux host routes to (Docker Desktop keeps it in a VM)."""
    return sys.platform.startswith("linux")


def docker_engine_answers(timeout: float = 10.0) -> bool:
    if not docker_installed():
        return False
    try:
        done = process.run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=timeout)
    except TimedOut:
        return False
    return done.returncode == 0


def docker_containers(label: str) -> dict[str, str]:
    """Every container's name and its value of `label` ("" when unset)."""
    try:
        listed = process.run(
            ["docker", "ps", "-a", "--format", f'{{{{.Names}}}}\t{{{{.Label "{label}"}}}}'],
            timeout=60,
        )
    except TimedOut:
        raise LabctlError("the Docker engine did not list its containers within 60 s") from None
    if listed.returncode != 0:
        raise LabctlError(f"docker ps failed: {listed.stderr.strip() or listed.returncode}")
    rows = (line.split("\t", 1) for line in listed.stdout.splitlines() if "\t" in line)
    return {name: value for name, value in rows}


@dataclass(frozen=True)
class Accel:
    """How libvirt guests run on this host: "kvm" (hardware virtualization),
    "tcg" (QEMU emulates the CPU: slower, no nested virtualization) or ""
    (neither: no QEMU). `detail` says why, for doctor and up."""

    kind: str
    detail: str

    @property
    def driver(self) -> str:
        """vagrant-libvirt's domain type."""
        return "kvm" if self.kind == "kvm" else "qemu"


MODULES = Path("/sys/module")
KVM_DEVICE = "/dev/kvm"
QEMU = "qemu-system-x86_64"


def vm_accel(modules: Path = MODULES, device: str = KVM_DEVICE, qemu: str = QEMU) -> Accel:
    """KVM where /dev/kvm is usable and backed by the hardware's own module;
    PVM's kvm_pvm runs only guest kernels built for it (a stock one hangs), so
    there, as without /dev/kvm, QEMU emulates."""
    if not shutil.which(qemu):
        return Accel("", f"{qemu} is not installed (apt-get install qemu-system-x86)")
    hardware = [m for m in ("kvm_intel", "kvm_amd") if (modules / m).is_dir()]
    usable = os.access(device, os.R_OK | os.W_OK)
    if usable and hardware:
        return Accel("kvm", f"KVM ({hardware[0]})")
    if usable and (modules / "kvm_pvm").is_dir():
        return Accel(
            "tcg", "QEMU emulation: /dev/kvm is PVM (kvm_pvm), which boots no stock guest kernel"
        )
    if usable:
        return Accel("kvm", "KVM")
    if os.path.exists(device):
        return Accel("tcg", f"QEMU emulation: {device} is not usable by this user")
    return Accel("tcg", f"QEMU emulation: no {device} (no hardware virtualization)")


def detect() -> str:
    """VirtualBox if installed, else libvirt if its plugin and a daemon are
    here, else docker if an engine answers."""
    if virtualbox_installed():
        return "virtualbox"
    if libvirt_plugin_installed() and libvirt_daemon_present():
        return "libvirt"
    if docker_guests_reachable() and docker_engine_answers():
        return "docker"
    raise SpecError(
        "no usable Vagrant provider found (VirtualBox, libvirt or a Docker engine)",
        hint="run `labctl doctor` to see what is missing",
    )


def installed(provider: str) -> bool:
    return {
        "virtualbox": virtualbox_installed,
        "libvirt": libvirt_plugin_installed,
        "docker": docker_installed,
    }[provider]()


def require(provider: str) -> None:
    """SpecError naming the package to install when `provider` is not installed."""
    if not installed(provider):
        raise SpecError(f"provider {provider} is not installed", hint=INSTALL_HINTS[provider])
    if provider == "docker" and not docker_guests_reachable():
        raise SpecError(
            "the docker provider needs a Linux host: labctl connects to the containers' "
            "own addresses",
            hint="use virtualbox or libvirt on this host",
        )


def host_timezone() -> str:
    """The host's time zone name, so guests' logs read like the host's."""
    try:
        return Path("/etc/timezone").read_text().strip() or "Etc/UTC"
    except OSError:
        pass
    try:
        target = os.readlink("/etc/localtime")
        return target.split("zoneinfo/", 1)[1]
    except (OSError, IndexError):
        return "Etc/UTC"


# ---------------------------------------------------------------- versions

# A version answers at once; the limit only ends a hung engine or daemon, so
# `labctl version` stays quick on a host where one of them is stuck.
VERSION_TIMEOUT = 10.0
# Client, then engine, apart by a space (docker pads a tab into columns); the
# engine's part empty when it does not answer: the client's still prints
DOCKER_VERSION_FORMAT = "{{.Client.Version}} {{if .Server}}{{.Server.Version}}{{end}}"


@dataclass(frozen=True)
class Version:
    """One program labctl uses and its version; None: missing, `note` says why."""

    name: str
    version: str | None
    note: str = ""


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _why(done: process.Completed) -> str:
    """What a program that gave no version said instead (a tool's error is
    its last line of stderr: virsh puts the cause after the summary)."""
    said = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return said[-1] if said else _first_line(done.stdout) or f"exit status {done.returncode}"


def _missing(names: Sequence[str], why: str) -> list[Version]:
    return [Version(name, None, why) for name in names]


def parse_vagrant_version(done: process.Completed) -> list[Version]:
    """`vagrant --version`: "Vagrant 2.3.4"."""
    found = re.search(r"Vagrant (\S+)", done.stdout)
    if done.returncode == 0 and found:
        return [Version("vagrant", found.group(1))]
    return _missing(["vagrant"], f"unreadable answer: {_why(done)}")


def parse_docker_version(done: process.Completed) -> list[Version]:
    """`docker version` with DOCKER_VERSION_FORMAT: the client's version, and
    the engine's when it answered (else why not, in docker's words)."""
    client, engine, *_ = [*_first_line(done.stdout).split(), "", ""]
    return [
        Version(
            "docker client", client or None, "" if client else f"unreadable answer: {_why(done)}"
        ),
        Version("docker engine", engine or None, "" if engine else f"not answering: {_why(done)}"),
    ]


def parse_virsh_version(done: process.Completed) -> list[Version]:
    """`virsh --version`: virsh's own (its libvirt library), no connection made."""
    version = _first_line(done.stdout)
    if done.returncode == 0 and re.fullmatch(r"\d+(\.\d+)+", version):
        return [Version("virsh", version)]
    return _missing(["virsh"], f"unreadable answer: {_why(done)}")


def parse_libvirt_version(done: process.Completed) -> list[Version]:
    """`virsh -c URI version --daemon`: the daemon's version and its
    hypervisor's ("Running hypervisor: QEMU 7.2.0")."""
    said = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in done.stdout.splitlines())
        if value.strip()
    )
    daemon = said.get("Running against daemon")
    if done.returncode != 0 or not daemon:
        return _missing(["libvirt daemon", "libvirt hypervisor"], f"not answering: {_why(done)}")
    kind, _, hypervisor = said.get("Running hypervisor", "").rpartition(" ")
    return [
        Version("libvirt daemon", daemon, DEFAULT_LIBVIRT_URI),
        Version("libvirt hypervisor", hypervisor or None, kind or "the daemon did not say"),
    ]


def parse_vboxmanage_version(done: process.Completed) -> list[Version]:
    """`VBoxManage --version`: "7.0.20r163906", after any warning of its own
    (a kernel module not loaded) on the lines before it."""
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if done.returncode == 0 and lines and re.match(r"\d+\.\d+", lines[-1]):
        return [Version("VBoxManage", lines[-1])]
    return _missing(["VBoxManage"], f"unreadable answer: {_why(done)}")


@dataclass(frozen=True)
class _Query:
    """One program asked for the versions named in `gives`."""

    argv: tuple[str, ...]
    gives: tuple[str, ...]
    parse: Callable[[process.Completed], list[Version]]


VERSION_QUERIES = (
    _Query(("vagrant", "--version"), ("vagrant",), parse_vagrant_version),
    _Query(
        ("docker", "version", "--format", DOCKER_VERSION_FORMAT),
        ("docker client", "docker engine"),
        parse_docker_version,
    ),
    _Query(("virsh", "--version"), ("virsh",), parse_virsh_version),
    _Query(
        ("virsh", "-c", DEFAULT_LIBVIRT_URI, "version", "--daemon"),
        ("libvirt daemon", "libvirt hypervisor"),
        parse_libvirt_version,
    ),
    _Query(("VBoxManage", "--version"), ("VBoxManage",), parse_vboxmanage_version),
)


def _ask_version(query: _Query) -> list[Version]:
    if shutil.which(query.argv[0]) is None:
        return _missing(query.gives, f"{query.argv[0]} is not installed")
    try:
        done = process.run(query.argv, timeout=VERSION_TIMEOUT)
    except TimedOut:
        return _missing(query.gives, f"no answer within {VERSION_TIMEOUT:g} s")
    return query.parse(done)


def versions() -> list[Version]:
    """Vagrant's and every provider's version on this host, each program asked
    at once with a short time limit (Vagrant alone takes a second to start);
    one that is missing or does not answer is a row saying so, never an error."""
    with ThreadPoolExecutor(len(VERSION_QUERIES)) as pool:
        answers = list(pool.map(_ask_version, VERSION_QUERIES))
    return [version for rows in answers for version in rows]

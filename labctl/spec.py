"""What a lab is: frozen dataclasses, their validation, and their JSON record.

Everything here is pure: no files, no processes. A `LabSpec` is complete and
valid once built; render and the Vagrant driver trust it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from labctl.errors import SpecError

PROVIDERS = ("virtualbox", "libvirt", "docker")
TOPOLOGIES = ("nodes", "jenkins", "mysql-pair")
DEFAULT_SUBNET = "192.168.56"
DOCKER_BOX = "labctl/debian:bookworm"
VM_BOX = "debian/bookworm64"
RECORD_VERSION = 1

_NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,30}")
_MACHINE_RE = re.compile(r"[a-z][a-z0-9-]{0,30}")
_SUBNET_RE = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})")
_PRIVATE_NETS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


@dataclass(frozen=True)
class ForwardedPort:
    """A guest port reachable on the host at 127.0.0.1 (Vagrant may move `host`)."""

    id: str
    guest: int
    host: int


@dataclass(frozen=True)
class Provisioner:
    """One shell provisioner: a script of provision/ and the environment it reads.
    run="never": only when asked for (`vagrant provision --provision-with NAME`)."""

    name: str
    script: str
    env: dict[str, str] = field(default_factory=dict)
    run: str = ""


@dataclass(frozen=True)
class Machine:
    """One guest of a lab."""

    name: str
    hostname: str
    ip: str
    role: str
    cpus: int
    memory: int
    primary: bool = False
    ports: tuple[ForwardedPort, ...] = ()
    provisioners: tuple[Provisioner, ...] = ()


@dataclass(frozen=True)
class Settings:
    """What the user asked for; the topology turns it into machines."""

    topology: str
    name: str
    provider: str
    box: str
    subnet: str
    cpus: int | None = None
    memory: int | None = None
    libvirt_uri: str | None = None
    timezone: str = "Etc/UTC"
    containerd: bool = True
    count: int = 2
    agents: int = 2
    jdk: int = 17
    jenkins_war: str | None = None
    replicas: int = 1
    chain: bool = False
    gtid: bool = False


@dataclass(frozen=True)
class LabSpec:
    """A validated lab: its settings, a stable id, and its machines."""

    id: str
    settings: Settings
    machines: tuple[Machine, ...]

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def topology(self) -> str:
        return self.settings.topology

    @property
    def provider(self) -> str:
        return self.settings.provider

    @property
    def subnet(self) -> str:
        return self.settings.subnet

    def machine(self, name: str) -> Machine:
        """The machine called `name`, or a SpecError listing the lab's machines."""
        for m in self.machines:
            if m.name == name:
                return m
        known = ", ".join(m.name for m in self.machines)
        raise SpecError(f"lab {self.name!r} has no machine {name!r} (machines: {known})")

    def machine_names(self) -> list[str]:
        return [m.name for m in self.machines]


# ---------------------------------------------------------------- validation


def check_name(name: str, what: str = "lab name") -> str:
    """A lab name as Vagrant, docker and file systems all accept it."""
    if not _NAME_RE.fullmatch(name or ""):
        raise SpecError(
            f"invalid {what} {name!r}: use a lowercase letter, then up to 30 of a-z, 0-9, '-'"
        )
    return name


def check_subnet(subnet: str) -> str:
    """A private /24 written as its first three octets, e.g. 192.168.56."""
    m = _SUBNET_RE.fullmatch(subnet or "")
    if not m or any(int(o) > 255 for o in m.groups()):
        raise SpecError(f"invalid subnet {subnet!r}: give the first three octets, e.g. 192.168.56")
    import ipaddress

    normal = ".".join(str(int(o)) for o in m.groups())
    net = ipaddress.IPv4Network(f"{normal}.0/24")
    if not any(net.subnet_of(ipaddress.IPv4Network(p)) for p in _PRIVATE_NETS):
        raise SpecError(f"subnet {subnet} is not private: use 10.x.y, 172.16-31.y or 192.168.y")
    return normal


def check_range(what: str, value: int, low: int, high: int) -> int:
    """An integer option within [low, high]."""
    if not low <= value <= high:
        raise SpecError(f"{what} must be between {low} and {high}, got {value}")
    return value


def check_provider(provider: str) -> str:
    if provider not in PROVIDERS:
        raise SpecError(f"unknown provider {provider!r} (providers: {', '.join(PROVIDERS)})")
    return provider


def check_topology(topology: str) -> str:
    if topology not in TOPOLOGIES:
        raise SpecError(f"unknown topology {topology!r} (topologies: {', '.join(TOPOLOGIES)})")
    return topology


def validate_settings(s: Settings) -> Settings:
    """Check every field of `s`; return it with normalised values."""
    check_topology(s.topology)
    check_name(s.name)
    check_provider(s.provider)
    subnet = check_subnet(s.subnet)
    if not s.box or any(c.isspace() for c in s.box):
        raise SpecError(f"invalid box {s.box!r}")
    if s.cpus is not None:
        check_range("--cpus", s.cpus, 1, 64)
    if s.memory is not None:
        check_range("--memory (MiB)", s.memory, 256, 262144)
    check_range("--count", s.count, 1, 9)
    check_range("--agents", s.agents, 0, 9)
    check_range("--replicas", s.replicas, 1, 5)
    if s.jdk not in (17, 21):
        raise SpecError(f"--jdk must be 17 or 21, got {s.jdk}")
    if s.libvirt_uri is not None and s.provider != "libvirt":
        raise SpecError("--libvirt-uri applies only to --provider libvirt")
    return replace(s, subnet=subnet)


# ---------------------------------------------------------------- record


def spec_to_record(spec: LabSpec) -> dict[str, Any]:
    """The JSON-ready record kept in the lab folder (lab.json)."""
    return {"version": RECORD_VERSION, **asdict(spec)}


def spec_from_record(data: dict[str, Any]) -> LabSpec:
    """Rebuild a LabSpec from its record; raises SpecError if it is not one."""
    try:
        if data.get("version") != RECORD_VERSION:
            raise ValueError(f"record version {data.get('version')!r}")
        known = {f.name for f in fields(Settings)}
        settings = Settings(**{k: v for k, v in data["settings"].items() if k in known})
        machines = tuple(
            Machine(
                **{
                    **m,
                    "ports": tuple(ForwardedPort(**p) for p in m.get("ports", ())),
                    "provisioners": tuple(Provisioner(**p) for p in m.get("provisioners", ())),
                }
            )
            for m in data["machines"]
        )
        return LabSpec(id=str(data["id"]), settings=settings, machines=machines)
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"unreadable lab record: {exc}") from exc

"""What a lab is: frozen dataclasses, their checks, and their JSON record.

Everything here is pure: no files, no processes. A `LabSpec` is complete and
valid once built (labfile builds it); render and the Vagrant driver trust it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from labctl.errors import SpecError

DEFAULT_SUBNET = "192.168.56"
DEFAULT_LIBVIRT_URI = "qemu:///system"  # vagrant-libvirt's: this host's system daemon
RECORD_VERSION = 2

_NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,30}")
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
    """One shell provisioner: a script of the lab's provision/ folder and the
    environment it reads. run="never": only when asked for (`vagrant provision
    --provision-with NAME`). `digest` changes with the script's content, so a
    plan sees an edited script."""

    name: str
    script: str
    env: dict[str, str] = field(default_factory=dict)
    run: str = ""
    digest: str = ""


@dataclass(frozen=True)
class Machine:
    """One guest of a lab. `options` holds each role's resolved options, e.g.
    {"mysql-replica": {"source": "db1"}}."""

    name: str
    hostname: str
    ip: str
    cpus: int
    memory: int
    box: str
    roles: tuple[str, ...] = ()
    options: dict[str, dict[str, str]] = field(default_factory=dict)
    primary: bool = False
    ports: tuple[ForwardedPort, ...] = ()
    provisioners: tuple[Provisioner, ...] = ()

    def has(self, *roles: str) -> bool:
        """Whether the machine holds any of `roles`."""
        return any(r in self.roles for r in roles)

    def option(self, role: str, key: str) -> str | None:
        return self.options.get(role, {}).get(key)

    @property
    def role(self) -> str:
        """The roles as one word for tables and JSON."""
        return ",".join(self.roles) or "-"


@dataclass(frozen=True)
class Origin:
    """Where a lab came from: a bundled topology and its parameters, or a lab file."""

    kind: str  # "topology" | "file"
    name: str  # the topology, or the lab file's path
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name if self.kind == "topology" else f"lab file {self.name}"


@dataclass(frozen=True)
class LabSpec:
    """A validated lab: its id, where it came from, lab-wide settings, machines,
    and each role family's lab-wide options (`options["mysql"]`, ...)."""

    id: str
    name: str
    provider: str
    box: str
    subnet: str
    origin: Origin
    machines: tuple[Machine, ...]
    timezone: str = "Etc/UTC"
    libvirt_uri: str | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # libvirt: the /24 of the lab's own management network (Vagrant's SSH and
    # the guests' way out), chosen like `subnet` so it never meets the host's
    mgmt_subnet: str | None = None

    def subnets(self) -> list[str]:
        """Every /24 the lab takes on the host."""
        return [self.subnet] + ([self.mgmt_subnet] if self.mgmt_subnet else [])

    def machine(self, name: str) -> Machine:
        """The machine called `name`, or a SpecError listing the lab's machines."""
        for m in self.machines:
            if m.name == name:
                return m
        known = ", ".join(m.name for m in self.machines)
        raise SpecError(f"lab {self.name!r} has no machine {name!r} (machines: {known})")

    def machine_names(self) -> list[str]:
        return [m.name for m in self.machines]

    def family(self, key: str) -> dict[str, Any]:
        """A role family's lab-wide options (empty when the lab sets none)."""
        return self.options.get(key, {})

    def with_role(self, *roles: str) -> list[Machine]:
        """The machines holding any of `roles`, in the lab's order."""
        return [m for m in self.machines if m.has(*roles)]


# ---------------------------------------------------------------- checks


def is_name(name: str) -> bool:
    """Whether `name` is a lab or machine name (a staging folder's is not)."""
    return bool(_NAME_RE.fullmatch(name or ""))


def check_name(name: str, what: str = "lab name") -> str:
    """A lab name as Vagrant, docker and file systems all accept it."""
    if not is_name(name):
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


def check_box(box: str) -> str:
    if not box or any(c.isspace() for c in box):
        raise SpecError(f"invalid box {box!r}")
    return box


# ---------------------------------------------------------------- record


def spec_to_record(spec: LabSpec) -> dict[str, Any]:
    """The JSON-ready record kept in the lab folder (lab.json)."""
    return {"version": RECORD_VERSION, **asdict(spec)}


def spec_from_record(data: dict[str, Any]) -> LabSpec:
    """Rebuild a LabSpec from its record; raises SpecError if it is not one."""
    try:
        if data.get("version") != RECORD_VERSION:
            raise ValueError(
                f"record version {data.get('version')!r} (this labctl writes {RECORD_VERSION}); "
                "destroy the lab with the labctl that made it, or remove its folder"
            )
        machines = tuple(
            Machine(
                **{
                    **m,
                    "roles": tuple(m.get("roles", ())),
                    "ports": tuple(ForwardedPort(**p) for p in m.get("ports", ())),
                    "provisioners": tuple(Provisioner(**p) for p in m.get("provisioners", ())),
                }
            )
            for m in data["machines"]
        )
        rest = {k: v for k, v in data.items() if k not in ("version", "machines", "origin")}
        return LabSpec(**rest, origin=Origin(**data["origin"]), machines=machines)
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"unreadable lab record: {exc}") from exc

"""The IPv4 networks this host is already on, so that a new lab never takes
one: other labs (of other LABCTL_HOMEs too), docker and libvirt networks,
VPNs. Read from the kernel's routing table, which every one of them adds to;
who holds one, as the providers name it; and the subnets labs have claimed
host-wide but not yet brought up."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import socket
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from labctl.errors import SpecError
from labctl.lab.home import RECORD

ROUTES = Path("/proc/net/route")


@dataclass(frozen=True)
class HostNetwork:
    network: ipaddress.IPv4Network
    interface: str


def parse_routes(text: str) -> list[HostNetwork]:
    """/proc/net/route -> the networks routed on this host (the default route left out)."""
    found = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 8:
            continue
        try:
            dest = socket.inet_ntoa(struct.pack("<I", int(cols[1], 16)))
            mask = socket.inet_ntoa(struct.pack("<I", int(cols[7], 16)))
            net = ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)
        except (ValueError, struct.error):
            continue
        if net.prefixlen > 0:
            found.append(HostNetwork(net, cols[0]))
    return found


def host_networks() -> list[HostNetwork]:
    """The networks routed here now (none where the table cannot be read: not Linux)."""
    try:
        return parse_routes(ROUTES.read_text())
    except OSError:
        return []


def clash(subnet: str, networks: list[HostNetwork]) -> HostNetwork | None:
    """The host network a lab's /24 (`192.168.56`) would overlap, if any."""
    mine = ipaddress.IPv4Network(f"{subnet}.0/24")
    return next((n for n in networks if n.network.overlaps(mine)), None)


# ---------------------------------------------------------------- who holds one

# A provider's lookup of its own network behind a host interface; the
# providers sit above this layer, so their caller hands them in
Lookup = Callable[[str], str | None]


def holder(found: HostNetwork, lookups: Iterable[Lookup]) -> str | None:
    """What holds a host network, as its user knows it ("docker network
    'vagrant_network_192.168.100.0/24'"), by the first of `lookups` that
    answers; None where none claims its interface (a VPN, a bridge of the
    user's own)."""
    return next((name for ask in lookups if (name := ask(found.interface))), None)


# ---------------------------------------------------------------- claims

LOCK = "subnets.lock"


def host_dir() -> Path:
    """Where labctl's host-wide records live: shared by every user and every
    LABCTL_HOME on this host (LABCTL_HOST_DIR overrides it)."""
    return Path(os.environ.get("LABCTL_HOST_DIR") or "/var/tmp/labctl")


@dataclass(frozen=True)
class Claim:
    """A lab's /24, recorded host-wide when the lab is made; `pid` made it."""

    subnet: str
    home: str
    lab: str
    lab_id: str
    pid: int

    def owner(self) -> str:
        return f"lab {self.lab!r} of {self.home}"

    def alive(self) -> bool:
        """The lab still exists (its record says so), or its maker still runs
        (an `up` that has not written the record yet)."""
        try:
            record = json.loads((Path(self.home) / self.lab / RECORD).read_text())
            if record.get("id") == self.lab_id:
                return True
        except (OSError, ValueError, AttributeError):
            pass
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # another user's process
        return True


class SubnetClaims:
    """Which lab holds which subnet, across every home on this host, so two
    labs made at once (in one home or in two) never take the same network.
    Choosing and claiming happen under one host-wide lock."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or host_dir()
        self.folder = self.root / "subnets"

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self._make_folders()
        fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held for milliseconds: waiting is fine
            yield
        finally:
            os.close(fd)

    def _make_folders(self) -> None:
        for folder in (self.root, self.folder):
            if not folder.is_dir():
                folder.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(OSError):  # every user claims here
                    folder.chmod(0o1777)

    def _files(self) -> Iterator[tuple[Path, Claim]]:
        """Every claim file that can be read, with its claim."""
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            with contextlib.suppress(OSError, ValueError, TypeError):
                yield path, Claim(**json.loads(path.read_text()))

    def live(self) -> list[Claim]:
        """Every claim whose lab still exists or is being made; the others are
        removed where this user may."""
        found = []
        for path, claim in self._files():
            if claim.alive():
                found.append(claim)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
        return found

    def others(self, home: Path, lab: str) -> dict[str, Claim]:
        """subnet -> the claim of any lab but `lab` of `home`."""
        return {c.subnet: c for c in self.live() if (c.home, c.lab) != (str(home), lab)}

    def claim(
        self, subnets: str | Sequence[str], home: Path, lab: str, lab_id: str, strict: bool = True
    ) -> None:
        """Record that `lab` holds `subnets` (and no other); SubnetTaken when
        another live lab holds one (a lab that already had it before claims
        existed is let be when not `strict`)."""
        wanted = [subnets] if isinstance(subnets, str) else list(subnets)
        with self.held():
            others = self.others(home, lab)
            for subnet in wanted:
                if subnet in others:
                    if strict:
                        raise SubnetTaken(subnet, others[subnet])
                    return
            self._drop(home, lab)
            for subnet in wanted:
                claim = Claim(subnet, str(home), lab, lab_id, os.getpid())
                tmp = self.folder / f".{subnet}.{os.getpid()}"
                tmp.write_text(json.dumps(asdict(claim)))
                tmp.chmod(0o644)
                os.replace(tmp, self.folder / f"{subnet}.json")

    def release(self, home: Path, lab: str) -> None:
        """Forget `lab`'s claim (its lab folder is gone)."""
        with self.held():
            self._drop(home, lab)

    def _drop(self, home: Path, lab: str) -> None:
        for path, c in self._files():
            if (c.home, c.lab) == (str(home), lab):
                with contextlib.suppress(OSError):
                    path.unlink()


class SubnetTaken(SpecError):
    """Another lab on this host holds the subnet."""

    def __init__(self, subnet: str, holder: Claim) -> None:
        super().__init__(
            f"subnet {subnet}.0/24 is already used by {holder.owner()}",
            hint="leave --subnet out (labctl picks a free one) or pass another",
        )
        self.holder = holder

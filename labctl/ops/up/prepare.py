"""prepare: the lab as written (options, the existing lab and the host
decide what the file leaves open), the lab as recorded, and the plan from one
to the other, without writing anything; and the same again under the lab's
lock with its subnets claimed host-wide."""

from __future__ import annotations

import enum
import json
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from labctl import providers
from labctl.errors import LabctlError, SpecError
from labctl.lab import hostnet
from labctl.lab.home import LabHome
from labctl.lab.spec import LabSpec, Origin, check_box
from labctl.labfile import topologies
from labctl.ops.up.source import Request, source
from labctl.project import plan, render
from labctl.session import inventory
from labctl.vagrant.driver import VagrantDriver

if TYPE_CHECKING:
    from labctl.labfile.build import Resolved
    from labctl.labfile.schema import Parsed
    from labctl.providers.base import Provider

_TZ_RE = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*")


class Purpose(enum.Enum):
    """What a lab is prepared for, which decides what this host must have."""

    UP = "up"  # Vagrant, and the lab's provider while the lab has no machine
    RENDER = "render"  # Vagrant; the provider may be missing (a lab for another host)
    VALIDATE = "validate"  # nothing: no Vagrant, and docker when no provider is named

    @property
    def asks_host(self) -> bool:
        """Whether Vagrant must be here and the provider is detected on this host."""
        return self is not Purpose.VALIDATE

    @property
    def needs_provider(self) -> bool:
        """Whether a lab with no machine yet needs its provider installed here."""
        return self is Purpose.UP


@dataclass(frozen=True)
class Prepared:
    """A lab as written, the lab as recorded (None for a new one), the plan
    from one to the other, the files to write (None: keep the folder), and the
    machines Vagrant had made when the plan was made; what `up` says first
    (the provider it chose, and why)."""

    spec: LabSpec
    existing: LabSpec | None
    steps: list[plan.Step]
    files: dict[str, str | bytes] | None
    created: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()

    @property
    def changes(self) -> list[plan.Step]:
        return [s for s in self.steps if s.changes]


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


def _timezone(existing: LabSpec | None) -> str:
    if existing:
        return existing.timezone
    tz = host_timezone()
    return tz if _TZ_RE.fullmatch(tz) else "Etc/UTC"


def prepare(
    home: LabHome,
    lab: str | None,
    name: str | None,
    request: Request,
    purpose: Purpose = Purpose.UP,
) -> Prepared:
    """The lab to render for `up|render [LAB] [-f FILE]`, the lab as it is,
    and the plan between them. Nothing is written. What this host must have
    is the `purpose`'s (validate: neither Vagrant nor the provider)."""
    if purpose.asks_host:
        VagrantDriver.executable()  # SpecError naming the package when Vagrant is missing
    for key in ("cpus", "memory"):
        topologies.COMMON[key].check(getattr(request, key))
    found = source(home, lab, name, request)
    if isinstance(found, LabSpec):
        return _as_recorded(home, found, purpose)
    return _from_file(home, _Written(*found, request), purpose)


@dataclass(frozen=True)
class _Written:
    """A lab file to prepare: its lab's name, the file parsed, where it came
    from, the lab as recorded (None for a new one) and the options given."""

    name: str
    parsed: Parsed
    origin: Origin
    existing: LabSpec | None
    request: Request


@dataclass(frozen=True)
class _Taken:
    """What a new lab's subnets must keep clear of: the networks this host is
    on and the subnets labs of other homes claimed (none for an existing lab,
    which keeps its own)."""

    networks: list[hostnet.HostNetwork] = field(default_factory=list)
    claimed: Mapping[str, hostnet.Claim] = field(default_factory=dict)

    def has(self, subnet: str) -> bool:
        return subnet in self.claimed or hostnet.clash(subnet, self.networks) is not None


def _as_recorded(home: LabHome, spec: LabSpec, purpose: Purpose) -> Prepared:
    """A lab to come up as recorded: its folder kept, its plan from itself."""
    made = frozenset(inventory.machine_ids(home.paths(spec.name)))
    if not made and purpose.needs_provider:
        providers.require(spec.provider)  # only rendered so far
    steps = plan.make(spec, spec, made, _unprovisioned(home, spec.name))
    return Prepared(spec, spec, steps, None, made)


def _from_file(home: LabHome, written: _Written, purpose: Purpose) -> Prepared:
    """A lab file built into a spec (what it leaves open decided here), its
    plan from the lab as recorded, checked by each role family, and the
    folder's files rendered."""
    from labctl import roles
    from labctl.labfile import build as labfile  # pydantic and YAML: only for a lab file

    existing = written.existing
    provider, notes = _provider(written, purpose)
    # validate too: it shows the addresses up would choose on this host
    taken = (
        _Taken(hostnet.host_networks(), hostnet.SubnetClaims().others(home.root, written.name))
        if not existing
        else _Taken()
    )
    built = labfile.build(written.parsed, _resolved(home, written, provider, taken), existing)
    spec = built.spec
    _check_subnet(home, written, spec.subnet, taken)
    created = frozenset(inventory.machine_ids(home.paths(spec.name))) if existing else frozenset()
    _check_kept(spec, existing, created)
    # a lab with no machine yet (new, or only rendered) needs its provider here
    if not created and purpose.needs_provider:
        providers.require(spec.provider)
    steps = plan.make(existing, spec, created, _unprovisioned(home, spec.name))
    roles.check_plan(existing, spec, steps)
    files = render.lab_files(spec, built.normalised, built.scripts, provider.accel(spec))
    return Prepared(spec, existing, steps, files, created, notes)


def _provider(written: _Written, purpose: Purpose) -> tuple[Provider, tuple[str, ...]]:
    """The option's, the file's, the lab's, $LABCTL_PROVIDER, or the one this
    host can run (validate, which asks nothing of the host: docker); and the
    line saying why, when the host's choice passed one over."""
    existing = written.existing
    named = (
        written.request.overrides().get("provider")
        or written.parsed.model.provider
        or (existing.provider if existing else None)
        or os.environ.get("LABCTL_PROVIDER")
    )
    chosen = None if named or not purpose.asks_host else providers.choose()
    provider = providers.get(named or (chosen.name if chosen else "docker"))
    return provider, (chosen.note,) if chosen and chosen.note else ()


def _resolved(home: LabHome, written: _Written, provider: Provider, taken: _Taken) -> Resolved:
    """What the lab file leaves open, from the options given, the lab as
    recorded (what it had on the same provider) and this host."""
    from labctl.labfile.build import Resolved

    model, given, existing = written.parsed.model, written.request.overrides(), written.existing
    origin = written.origin
    kept = existing if existing and existing.provider == provider.name else None
    box = given.get("box") or model.box or (kept.box if kept else None)
    libvirt_uri = (
        given.get("libvirt_uri") or model.libvirt_uri or (kept.libvirt_uri if kept else None)
    )
    subnet = (
        given.get("subnet")
        or model.subnet
        or (existing.subnet if existing else None)
        or _free_subnet(home, taken)
    )
    mgmt_subnet = None
    if provider.own_management_network:
        mgmt_subnet = (kept.mgmt_subnet if kept else None) or _free_subnet(home, taken, subnet)
    return Resolved(
        name=written.name,
        provider=provider.name,
        box=check_box(box or provider.default_box(libvirt_uri)),
        subnet=subnet,
        mgmt_subnet=mgmt_subnet,
        timezone=model.timezone or _timezone(existing),
        lab_id=existing.id if existing else uuid.uuid4().hex[:12],
        origin=origin,
        cpus=given.get("cpus") if origin.kind == "file" else None,
        memory=given.get("memory") if origin.kind == "file" else None,
        libvirt_uri=libvirt_uri,
        moved=home.moved(written.name) if existing else {},
        allowed=_allowed(written.request, origin, existing),
    )


def _free_subnet(home: LabHome, taken: _Taken, *mine: str) -> str:
    """A subnet no lab of this home uses, clear of `taken` and of `mine`."""
    return home.free_subnet(taken=lambda s: s in mine or taken.has(s))


def _check_subnet(home: LabHome, written: _Written, subnet: str, taken: _Taken) -> None:
    """The lab's subnet used by no other lab here and clear of `taken`; the
    error points at the file's `subnet:` when the file names it."""
    try:
        home.check_subnet_free(subnet, written.name)
        _check_host_network(subnet, taken)
    except SpecError as exc:
        if written.parsed.model.subnet:
            raise written.parsed.error(("subnet",), exc.message) from None
        raise


def _check_kept(spec: LabSpec, existing: LabSpec | None, created: frozenset[str]) -> None:
    """A lab with machines keeps its provider and subnet."""
    if not (existing and created):
        return
    for key in ("provider", "subnet"):
        if getattr(spec, key) != getattr(existing, key):
            raise SpecError(
                f"cannot change the {key} of lab {spec.name!r} while it has machines",
                hint=f"labctl destroy {spec.name} first, or use --name for a new lab",
            )


def _allowed(request: Request, origin: Origin, existing: LabSpec | None) -> tuple[str, ...]:
    """Host paths the lab file may name beyond its folder: what the user
    allowed, a war file given on the command line, and the war file the lab
    already has (its own lab.yaml names it by its absolute path)."""
    wars = [origin.params.get("jenkins_war"), existing and existing.family("jenkins").get("war")]
    return (*request.allow_host_paths, *(str(w) for w in wars if w))


def _check_host_network(subnet: str, taken: _Taken) -> None:
    """A new lab's subnet must not be a network this host is already on, nor
    one that a lab of another home holds."""
    if subnet in taken.claimed:
        raise hostnet.SubnetTaken(subnet, taken.claimed[subnet])
    found = hostnet.clash(subnet, taken.networks)
    if found:
        # asked only now: a refusal names what to look at
        held = hostnet.holder(found, providers.HOLDERS)
        where = f"{held}, interface {found.interface}" if held else f"interface {found.interface}"
        raise SpecError(
            f"subnet {subnet}.0/24 overlaps {found.network} on this host ({where})"
            + ("" if held else ": another lab, docker or libvirt network, or VPN"),
            hint="leave --subnet out (labctl picks a free one) or pass another",
        )


def with_subnets_claimed(home: LabHome, make: Callable[[], Prepared]) -> Prepared:
    """The lab prepared (again: now under its lock) with its subnets (libvirt:
    the management one too) claimed host-wide. Another lab that claimed the
    chosen subnet meanwhile makes the choice fall on the next one; an explicit
    subnet so taken is refused."""
    for _ in range(8):
        prepared = make()
        spec = prepared.spec
        try:
            hostnet.SubnetClaims().claim(
                spec.subnets(), home.root, spec.name, spec.id, strict=prepared.existing is None
            )
            return prepared
        except hostnet.SubnetTaken:
            continue  # the next make() sees the claim: it chooses again, or refuses
    raise LabctlError("could not claim a subnet: other labs kept taking the chosen one")


def _unprovisioned(home: LabHome, name: str) -> frozenset[str]:
    try:
        found = json.loads(home.paths(name).unprovisioned.read_text())
    except (OSError, ValueError):
        return frozenset()
    return (
        frozenset(m for m in found if isinstance(m, str))
        if isinstance(found, list)
        else frozenset()
    )

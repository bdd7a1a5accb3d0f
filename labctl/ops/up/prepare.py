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
from dataclasses import dataclass
from pathlib import Path

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
    machines Vagrant had made when the plan was made."""

    spec: LabSpec
    existing: LabSpec | None
    steps: list[plan.Step]
    files: dict[str, str | bytes] | None
    created: frozenset[str] = frozenset()

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
        made = frozenset(inventory.machine_ids(home.paths(found.name)))
        if not made and purpose.needs_provider:
            providers.require(found.provider)  # only rendered so far
        steps = plan.make(found, found, made, _unprovisioned(home, found.name))
        return Prepared(found, found, steps, None, made)
    lab_name, parsed, origin, existing = found
    from labctl.labfile import build as labfile  # pydantic and YAML: only for a lab file

    model, given = parsed.model, request.overrides()
    provider = providers.get(
        given.get("provider")
        or model.provider
        or (existing.provider if existing else None)
        or os.environ.get("LABCTL_PROVIDER")
        or (providers.detect() if purpose.asks_host else "docker")
    ).name
    kept = existing if existing and existing.provider == provider else None
    box = given.get("box") or model.box or (kept.box if kept else None)
    libvirt_uri = (
        given.get("libvirt_uri") or model.libvirt_uri or (kept.libvirt_uri if kept else None)
    )
    # validate too: it shows the addresses up would choose on this host
    new_here = not existing
    networks = hostnet.host_networks() if new_here else []
    claimed = hostnet.SubnetClaims().others(home.root, lab_name) if new_here else {}

    def free(*mine: str) -> str:
        return home.free_subnet(
            taken=lambda s: s in mine or s in claimed or hostnet.clash(s, networks) is not None
        )

    subnet = (
        given.get("subnet") or model.subnet or (existing.subnet if existing else None) or free()
    )
    mgmt_subnet = None
    if providers.get(provider).own_management_network:
        mgmt_subnet = (kept.mgmt_subnet if kept else None) or free(subnet)
    resolved = labfile.Resolved(
        name=lab_name,
        provider=provider,
        box=check_box(box or providers.get(provider).default_box(libvirt_uri)),
        subnet=subnet,
        mgmt_subnet=mgmt_subnet,
        timezone=model.timezone or _timezone(existing),
        lab_id=existing.id if existing else uuid.uuid4().hex[:12],
        origin=origin,
        cpus=given.get("cpus") if origin.kind == "file" else None,
        memory=given.get("memory") if origin.kind == "file" else None,
        libvirt_uri=libvirt_uri,
        moved=home.moved(lab_name) if existing else {},
        allowed=_allowed(request, origin, existing),
    )
    built = labfile.build(parsed, resolved, existing)
    spec = built.spec
    try:
        home.check_subnet_free(spec.subnet, lab_name)
        if new_here:
            _check_host_network(spec.subnet, networks, claimed)
    except SpecError as exc:
        if model.subnet:
            raise parsed.error(("subnet",), exc.message) from None
        raise
    created = frozenset(inventory.machine_ids(home.paths(lab_name))) if existing else frozenset()
    if existing and created:
        for key in ("provider", "subnet"):
            if getattr(spec, key) != getattr(existing, key):
                raise SpecError(
                    f"cannot change the {key} of lab {lab_name!r} while it has machines",
                    hint=f"labctl destroy {lab_name} first, or use --name for a new lab",
                )
    # a lab with no machine yet (new, or only rendered) needs its provider here
    if not created and purpose.needs_provider:
        providers.require(spec.provider)
    steps = plan.make(existing, spec, created, _unprovisioned(home, lab_name))
    from labctl import roles

    roles.check_plan(existing, spec, steps)
    files = render.lab_files(
        spec, built.normalised, built.scripts, providers.get(spec.provider).accel(spec)
    )
    return Prepared(spec, existing, steps, files, created)


def _allowed(request: Request, origin: Origin, existing: LabSpec | None) -> tuple[str, ...]:
    """Host paths the lab file may name beyond its folder: what the user
    allowed, a war file given on the command line, and the war file the lab
    already has (its own lab.yaml names it by its absolute path)."""
    wars = [origin.params.get("jenkins_war"), existing and existing.family("jenkins").get("war")]
    return (*request.allow_host_paths, *(str(w) for w in wars if w))


def _check_host_network(
    subnet: str, networks: list[hostnet.HostNetwork], claimed: Mapping[str, hostnet.Claim]
) -> None:
    """A new lab's subnet must not be a network this host is already on, nor
    one that a lab of another home holds."""
    if subnet in claimed:
        raise hostnet.SubnetTaken(subnet, claimed[subnet])
    found = hostnet.clash(subnet, networks)
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

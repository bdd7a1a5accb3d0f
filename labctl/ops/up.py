"""Use cases that turn a lab file (or a built-in topology) into running
machines: prepare (the lab as written, the lab as recorded, the plan between
them), render, init, and up (the plan applied, then the roles' set-up).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl import providers
from labctl.errors import LabctlError, SpecError
from labctl.events import Event, OnEvent
from labctl.lab import hostnet
from labctl.lab.home import LabHome
from labctl.lab.hostpaths import check_path_text
from labctl.lab.spec import LabSpec, Origin, check_box, check_name, check_subnet
from labctl.labfile import topologies
from labctl.local.deadline import Deadline
from labctl.local.fsutil import atomic_write
from labctl.ops.lifecycle import MachineRow, status
from labctl.project import plan, render
from labctl.session import inventory
from labctl.vagrant.driver import VagrantDriver

_TZ_RE = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*")


@dataclass(frozen=True)
class Request:
    """What the command line asked for: a lab file, or a topology's parameters
    (count, agents, ...), and lab-wide values that win over the file's."""

    file: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    provider: str | None = None
    box: str | None = None
    subnet: str | None = None
    cpus: int | None = None
    memory: int | None = None
    libvirt_uri: str | None = None
    # host paths beyond the lab file's folder it may name (--allow-host-path)
    allow_host_paths: tuple[str, ...] = ()

    def overrides(self) -> dict[str, Any]:
        keys = ("provider", "box", "subnet", "cpus", "memory", "libvirt_uri")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


@dataclass(frozen=True)
class UpResult:
    """The machine table after `up`, what the roles want said (URLs...), and
    the plan that was applied."""

    rows: list[MachineRow]
    notes: list[str]
    steps: list[plan.Step] = field(default_factory=list)


@dataclass(frozen=True)
class Rendered:
    spec: LabSpec
    path: str
    note: str = ""  # said when the provider is not installed here


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


# ---------------------------------------------------------------- reading what is asked


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


def _from_file(
    home: LabHome, lab: str | None, name: str | None, request: Request
) -> tuple[str, Any, Origin, LabSpec | None]:
    from labctl.labfile import schema

    if lab:
        raise SpecError(f"give a lab file (-f) or a lab or topology ({lab}), not both")
    if request.params:
        flags = ", ".join("--" + k.replace("_", "-") for k in request.params)
        raise SpecError(f"{flags}: options of a built-in topology; a lab file says it itself")
    if not request.file:
        raise SpecError("-f: give a lab file's path (it was empty)")
    check_path_text(request.file, "lab file")
    path = Path(request.file).expanduser()
    # the path reaches the lab's files (lab.json, comments): no control
    # character, however it was reached
    check_path_text(str(path.resolve()), "lab file")
    parsed = schema.read(path, request.file)
    stem = re.sub(r"[^a-z0-9-]", "-", path.stem.lower())
    lab_name = check_name(name or parsed.model.name or stem)
    existing = home.load(lab_name) if home.exists(lab_name) else None
    origin = Origin("file", str(path.resolve()))
    if existing and path.resolve() == (home.paths(lab_name).root / "lab.yaml").resolve():
        origin = existing.origin  # the lab folder's own copy of its file
    elif existing and existing.origin != origin and name is None:
        # two files that name the same lab (or none, and share a stem): never
        # let one quietly replace the other's machines
        raise SpecError(
            f"lab {lab_name!r} exists and comes from {existing.origin.label}, not {path}",
            hint=f"give this lab another name (`name:` or --name), or --name {lab_name} "
            "to apply this file to that lab",
        )
    return lab_name, parsed, origin, existing


def _source(
    home: LabHome, lab: str | None, name: str | None, request: Request
) -> tuple[str, Any, Origin, LabSpec | None] | LabSpec:
    """(lab name, parsed lab file, origin, existing lab) of `up|render [LAB] [-f FILE]`;
    or the existing lab itself when it is to come up as recorded."""
    # an empty value given is a bad one, never "not given" (which would mean
    # the only lab, an automatic subnet, the detected provider)
    for value, check in ((lab, check_name), (name, check_name)):
        if value is not None:
            check(value)
    if request.subnet is not None:
        check_subnet(request.subnet)
    if request.provider is not None:
        providers.get(request.provider)
    if request.file is not None:
        return _from_file(home, lab, name, request)
    if not lab:
        lab = home.resolve(None)  # the only lab there is, or the error that says so
    asked = bool(request.params or request.overrides())
    if name or not home.exists(lab):
        if not name and lab not in topologies.TOPOLOGIES:
            labs = home.names()
            raise SpecError(
                f"unknown lab or topology {lab!r} (topologies: {', '.join(topologies.TOPOLOGIES)}"
                + (f"; labs: {', '.join(labs)})" if labs else ")")
            )
        topology, lab_name = topologies.check_topology(lab), check_name(name or lab)
        existing = home.load(lab_name) if home.exists(lab_name) else None
        if existing and existing.origin.name != topology:
            raise SpecError(
                f"lab {lab_name!r} exists, from {existing.origin.label}, not {topology}"
            )
        if existing and not asked:
            return existing
    else:
        lab_name = lab
        existing = home.load(lab)
        if existing.origin.kind == "file" and asked:
            raise SpecError(
                f"lab {lab!r} comes from {existing.origin.label}",
                hint=f"change that file, then: labctl up -f {existing.origin.name}",
            )
        if not asked:
            return existing
        topology = existing.origin.name
    given = dict(request.params)
    for key in ("cpus", "memory"):
        if getattr(request, key) is not None:
            given[key] = getattr(request, key)
    values = _topology_values(topology, existing.origin.params if existing else {}, given)
    text = topologies.lab_text(topology, values)
    from labctl.labfile import schema  # pydantic and YAML: only when a lab file is read

    parsed = schema.parse(text, f"{topology}.yaml", Path.cwd())
    return lab_name, parsed, Origin("topology", topology, values), existing


def _topology_values(
    topology: str, recorded: dict[str, Any], given: dict[str, Any]
) -> dict[str, Any]:
    """A topology's parameters; a war file given here is made absolute, since
    the lab file it goes into may be read from elsewhere (`init`)."""
    if given.get("jenkins_war"):
        from labctl.roles.jenkins import check_war

        given = {**given, "jenkins_war": check_war(given["jenkins_war"])}
    return topologies.params(topology, recorded, given)


def prepare(
    home: LabHome,
    lab: str | None,
    name: str | None,
    request: Request,
    host_checks: bool = True,
    require_provider: bool = True,
) -> Prepared:
    """The lab to render for `up|render [LAB] [-f FILE]`, the lab as it is,
    and the plan between them. Nothing is written. Without `host_checks`
    (validate), neither Vagrant nor the provider need be installed."""
    if host_checks:
        VagrantDriver.executable()  # SpecError naming the package when Vagrant is missing
    for key in ("cpus", "memory"):
        topologies.COMMON[key].check(getattr(request, key))
    found = _source(home, lab, name, request)
    if isinstance(found, LabSpec):
        made = frozenset(inventory.machine_ids(home.paths(found.name)))
        if not made and host_checks and require_provider:
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
        or (providers.detect() if host_checks else "docker")
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
    if not created and host_checks and require_provider:
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
        held = hostnet.holder(found)  # asked only now: a refusal names what to look at
        where = f"{held}, interface {found.interface}" if held else f"interface {found.interface}"
        raise SpecError(
            f"subnet {subnet}.0/24 overlaps {found.network} on this host ({where})"
            + ("" if held else ": another lab, docker or libvirt network, or VPN"),
            hint="leave --subnet out (labctl picks a free one) or pass another",
        )


def _vagrant_validate(folder: Path, ignore_provider: bool = False) -> None:
    VagrantDriver(folder).validate(ignore_provider)


@contextlib.contextmanager
def _staged(
    home: LabHome,
    spec: LabSpec,
    files: Mapping[str, str | bytes],
    validate: Callable[[Path], None] = _vagrant_validate,
) -> Iterator[Path]:
    """The rendered files in a temporary folder beside the labs, validated by
    Vagrant; gone afterwards, whether the caller installed them or not."""
    staging = render.staging_folder(spec.name, home.root)
    try:
        render.write_tree(files, staging)
        validate(staging)
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write(
    home: LabHome, spec: LabSpec, files: Mapping[str, str | bytes], ignore_provider: bool = False
) -> str:
    """Stage the rendered files, let Vagrant validate them, then move them in."""
    paths = home.paths(spec.name)
    validate = functools.partial(_vagrant_validate, ignore_provider=ignore_provider)
    with _staged(home, spec, files, validate) as staging:
        render.install(staging, paths.root)
    inventory.invalidate(paths)
    return str(paths.root)


def _stale(root: Path, files: Mapping[str, str | bytes]) -> bool:
    """Whether the lab folder differs from the files rendered for it (by a
    newer labctl, or edited by hand)."""
    for rel, content in files.items():
        try:
            have = (root / rel).read_bytes()
        except OSError:
            return True
        if have != (content if isinstance(content, bytes) else content.encode()):
            return True
    return False


def render_text(home: LabHome, lab: str | None, name: str | None, request: Request) -> str:
    """The Vagrantfile `render` would write, without writing anything."""
    spec = prepare(home, lab, name, request, require_provider=False).spec
    return render.render_vagrantfile(spec, providers.get(spec.provider).accel(spec))


def render_lab(home: LabHome, lab: str | None, name: str | None, request: Request) -> Rendered:
    """Write (or rewrite) the lab folder and validate it with Vagrant. Machines
    that exist are never dropped from it: that is `up`'s plan to apply. A
    provider this host lacks is no obstacle (a lab prepared for a teammate's
    laptop): Vagrant validates without it, and the note says `up` needs it."""
    first = prepare(home, lab, name, request, require_provider=False)  # bad input: no lock taken
    with home.lock(first.spec.name, "render"):
        prepared = _claimed(home, lambda: prepare(home, lab, name, request, require_provider=False))
        spec = prepared.spec
        missing = not providers.get(spec.provider).installed()
        try:
            path = _render_prepared(home, prepared, missing)
        except BaseException:
            if not home.paths(spec.name).root.exists():  # nothing written: the subnet is free
                hostnet.SubnetClaims().release(home.root, spec.name)
            raise
    if not missing:
        return Rendered(spec, path)
    note = (
        f"provider {spec.provider} is not installed here: validated without it; "
        f"labctl up will need it ({providers.get(spec.provider).install_hint})"
    )
    return Rendered(spec, path, note)


def _render_prepared(home: LabHome, prepared: Prepared, missing: bool) -> str:
    touched = [s for s in prepared.changes if s.machine in prepared.created]
    if touched:
        raise SpecError(
            "the change is for machines that exist ("
            + ", ".join(f"{s.machine}: {s.action}" for s in touched)
            + "): render would record it without applying it",
            hint="labctl up applies it (see the plan first with --dry-run)",
        )
    files = prepared.files or _rerendered(home, prepared.spec)
    return _write(home, prepared.spec, files, ignore_provider=missing)


def _claimed(home: LabHome, make: Callable[[], Prepared]) -> Prepared:
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


def _rerendered(home: LabHome, spec: LabSpec) -> dict[str, str | bytes]:
    """A lab's folder rendered again from its record: its lab.yaml and the
    user's scripts are taken from the folder itself."""
    root = home.paths(spec.name).root
    try:
        lab_yaml = (root / "lab.yaml").read_text()
        scripts = {
            p.script: (root / "provision" / p.script).read_bytes()
            for m in spec.machines
            for p in m.provisioners
            if p.script.startswith("user/")
        }
    except OSError as exc:
        raise SpecError(f"lab {spec.name!r} is missing a file: {exc}") from exc
    return render.lab_files(spec, lab_yaml, scripts, providers.get(spec.provider).accel(spec))


def init_text(topology: str, params: dict[str, Any]) -> str:
    """A built-in topology as an editable lab file (checked as one)."""
    from labctl.labfile import schema

    text = topologies.lab_text(topology, _topology_values(topology, {}, params))
    schema.parse(text, f"{topology}.yaml", Path.cwd())
    return text


def init(topology: str, params: dict[str, Any], output: Path, force: bool = False) -> Path:
    """Write a built-in topology's lab file to `output` (never over a file, unless forced)."""
    text = init_text(topology, params)
    try:
        with output.open("w" if force else "x") as fh:
            fh.write(text)
    except FileExistsError:
        raise SpecError(
            f"{output} exists: not overwriting it", hint="--output FILE, or --force"
        ) from None
    except OSError as exc:
        raise SpecError(f"cannot write {output}: {exc.strerror or exc}") from None
    return output


def up(
    home: LabHome,
    lab: str | None,
    name: str | None,
    request: Request,
    on_event: OnEvent,
    timeout: float | None = None,
    on_plan: Callable[[Prepared], None] | None = None,
) -> UpResult:
    """Bring the lab to what its file (or topology) says: for a new lab,
    render and `vagrant up`; for an existing one, apply the plan (removed and
    recreated machines destroyed first, with the Vagrantfile that knows them,
    then the new files, `vagrant up`, reloads, provisioning of the changed
    machines only). Then each role's set-up (replication, Jenkins). The plan
    is made under the lab's lock (so it is the lab as it is), and `timeout`
    bounds the whole of it."""
    deadline = Deadline.after(timeout)
    first = prepare(home, lab, name, request)  # bad input: refused before any lock
    with home.lock(first.spec.name, "up"):
        prepared = _claimed(home, lambda: prepare(home, lab, name, request))
        spec = prepared.spec
        if on_plan is not None:
            on_plan(prepared)
        paths = home.paths(spec.name)
        # before anything is written: a refusal leaves no lab folder behind
        providers.get(spec.provider).ready(spec, on_event, prepared.created)
        driver = VagrantDriver(
            paths.root,
            on_event=on_event,
            on_interrupt=lambda: on_event(
                Event("", "warn", "interrupted: waiting for Vagrant to clean up...")
            ),
            deadline=deadline,
        )
        try:
            apply(home, prepared, driver)
        except BaseException:
            if not paths.root.exists():  # nothing was made: the subnet is free again
                hostnet.SubnetClaims().release(home.root, spec.name)
            raise
        finally:
            inventory.invalidate(paths)
        # asked now, under the lab's lock: the set-up and every reader after `up` find it
        inventory.warm(paths, spec, deadline)
        from labctl import roles  # the roles' set-up: SSH, guests' clients

        notes = roles.setup(home, spec, on_event, deadline)
    return UpResult(status(home, spec.name), notes, prepared.steps)


def apply(
    home: LabHome,
    prepared: Prepared,
    driver: VagrantDriver,
    validate: Callable[[Path], None] = _vagrant_validate,
) -> None:
    """Carry out a plan. The new files are validated before any machine is
    destroyed; an existing lab's record (lab.json) is written last, so a plan
    cut short is planned again, not forgotten."""
    spec, files, created = prepared.spec, prepared.files, prepared.created
    paths = home.paths(spec.name)
    by_action: dict[str, list[str]] = {}
    for step in prepared.changes:
        by_action.setdefault(step.action, []).append(step.machine)
    doomed = [
        m for m in by_action.get("remove", []) + by_action.get("recreate", []) if m in created
    ]
    write = files is not None and _stale(paths.root, files)
    with (
        _staged(home, spec, files, validate) if files and write else contextlib.nullcontext()
    ) as staging:
        if doomed:
            driver.destroy(doomed)  # the current Vagrantfile still defines them
        if staging is not None:
            render.install(staging, paths.root, record=prepared.existing is None)
            inventory.invalidate(paths)
    # Vagrant marks a machine provisioned before its provisioners run: until
    # this plan is through, labctl remembers which it is provisioning
    # (a machine left unprovisioned before is in the plan as such already)
    provisioning = {
        s.machine for s in prepared.changes if s.action in ("add", "recreate") or s.provision
    }
    if provisioning:
        atomic_write(paths.unprovisioned, json.dumps(sorted(provisioning)))
    # new and recreated machines are provisioned on creation; running ones are left alone
    driver.up(provider=spec.provider)
    reload = [s for s in prepared.changes if s.action == "reload"]
    for provision in (False, True):
        chosen = [s.machine for s in reload if s.provision == provision]
        if chosen:
            driver.reload(chosen, provision=provision or None)
    # a machine an earlier, interrupted `up` created but did not record
    unfinished = [m for m in by_action.get("add", []) if m in created and m not in doomed]
    again = by_action.get("provision", []) + unfinished
    if again:
        driver.provision(again)
    paths.unprovisioned.unlink(missing_ok=True)
    if files is not None and prepared.existing is not None:
        atomic_write(paths.record, files["lab.json"], mode=0o644)

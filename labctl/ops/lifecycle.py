"""Use cases of a lab's life: render, up (with its plan), status, halt ... destroy.

Each function takes what the CLI parsed and returns data for ui to draw;
Vagrant's progress goes to the `on_event` callback the caller passes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl import inventory, plan, providers, render, topologies
from labctl.errors import LabctlError, SpecError
from labctl.home import LabHome
from labctl.spec import (
    DOCKER_BOX,
    VM_BOX,
    LabSpec,
    Origin,
    check_box,
    check_name,
    check_provider,
)
from labctl.vagrant import Event, MachineState, VagrantDriver

EventSink = Callable[[Event], None]
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

    def overrides(self) -> dict[str, Any]:
        keys = ("provider", "box", "subnet", "cpus", "memory", "libvirt_uri")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


@dataclass(frozen=True)
class MachineRow:
    """One machine as status and up show it."""

    lab: str
    name: str
    hostname: str
    ip: str
    role: str
    state: str
    provider: str


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


@dataclass(frozen=True)
class Prepared:
    """A lab as written, the lab as recorded (None for a new one), the plan
    from one to the other, and the files to write (None: keep the folder)."""

    spec: LabSpec
    existing: LabSpec | None
    steps: list[plan.Step]
    files: dict[str, str | bytes] | None

    @property
    def changes(self) -> list[plan.Step]:
        return [s for s in self.steps if s.changes]


# ---------------------------------------------------------------- reading what is asked


def _timezone(existing: LabSpec | None) -> str:
    if existing:
        return existing.timezone
    tz = providers.host_timezone()
    return tz if _TZ_RE.fullmatch(tz) else "Etc/UTC"


def _from_file(
    home: LabHome, lab: str | None, name: str | None, request: Request
) -> tuple[str, Any, Origin, LabSpec | None]:
    from labctl import labfile

    if lab:
        raise SpecError(f"give a lab file (-f) or a lab or topology ({lab}), not both")
    if request.params:
        flags = ", ".join("--" + k.replace("_", "-") for k in request.params)
        raise SpecError(f"{flags}: options of a built-in topology; a lab file says it itself")
    path = Path(request.file or "").expanduser()
    parsed = labfile.read(path)
    stem = re.sub(r"[^a-z0-9-]", "-", path.stem.lower())
    lab_name = check_name(name or parsed.model.name or stem)
    existing = home.load(lab_name) if home.exists(lab_name) else None
    return lab_name, parsed, Origin("file", str(path.resolve())), existing


def _source(
    home: LabHome, lab: str | None, name: str | None, request: Request
) -> tuple[str, Any, Origin, LabSpec | None] | LabSpec:
    """(lab name, parsed lab file, origin, existing lab) of `up|render [LAB] [-f FILE]`;
    or the existing lab itself when it is to come up as recorded."""
    from labctl import labfile

    if request.file:
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
    if given.get("jenkins_war"):
        from labctl.roles.jenkins import check_war

        given["jenkins_war"] = check_war(given["jenkins_war"])
    for key in ("cpus", "memory"):
        if getattr(request, key) is not None:
            given[key] = getattr(request, key)
    values = topologies.params(topology, existing.origin.params if existing else {}, given)
    text = topologies.lab_text(topology, values)
    parsed = labfile.parse(text, f"{topology}.yaml", Path.cwd())
    return lab_name, parsed, Origin("topology", topology, values), existing


def prepare(
    home: LabHome,
    lab: str | None,
    name: str | None,
    request: Request,
    host_checks: bool = True,
) -> Prepared:
    """The lab to render for `up|render [LAB] [-f FILE]`, the lab as it is,
    and the plan between them. Nothing is written. Without `host_checks`
    (validate), neither Vagrant nor the provider need be installed."""
    from labctl import labfile

    if host_checks:
        VagrantDriver.executable()  # SpecError naming the package when Vagrant is missing
    for key in ("cpus", "memory"):
        topologies.COMMON[key].check(getattr(request, key))
    found = _source(home, lab, name, request)
    if isinstance(found, LabSpec):
        steps = plan.make(found, found, set(inventory.machine_ids(home.paths(found.name))))
        return Prepared(found, found, steps, None)
    lab_name, parsed, origin, existing = found
    model, given = parsed.model, request.overrides()
    provider = check_provider(
        given.get("provider")
        or model.provider
        or (existing.provider if existing else None)
        or os.environ.get("LABCTL_PROVIDER")
        or (providers.detect() if host_checks else "docker")
    )
    kept = existing if existing and existing.provider == provider else None
    box = given.get("box") or model.box or (kept.box if kept else None)
    libvirt_uri = (
        given.get("libvirt_uri") or model.libvirt_uri or (kept.libvirt_uri if kept else None)
    )
    if libvirt_uri and provider != "libvirt":
        raise SpecError(
            "--libvirt-uri (libvirt_uri in a lab file) applies only to the libvirt provider"
        )
    resolved = labfile.Resolved(
        name=lab_name,
        provider=provider,
        box=check_box(box or (DOCKER_BOX if provider == "docker" else VM_BOX)),
        subnet=given.get("subnet")
        or model.subnet
        or (existing.subnet if existing else None)
        or home.free_subnet(),
        timezone=model.timezone or _timezone(existing),
        lab_id=existing.id if existing else uuid.uuid4().hex[:12],
        origin=origin,
        cpus=given.get("cpus") if origin.kind == "file" else None,
        memory=given.get("memory") if origin.kind == "file" else None,
        libvirt_uri=libvirt_uri,
    )
    built = labfile.build(parsed, resolved, existing)
    spec = built.spec
    home.check_subnet_free(spec.subnet, lab_name)
    created = set(inventory.machine_ids(home.paths(lab_name))) if existing else set()
    if existing and created:
        for key in ("provider", "subnet"):
            if getattr(spec, key) != getattr(existing, key):
                raise SpecError(
                    f"cannot change the {key} of lab {lab_name!r} while it has machines",
                    hint=f"labctl destroy {lab_name} first, or use --name for a new lab",
                )
    if not existing and host_checks:
        providers.require(spec.provider)
    steps = plan.make(existing, spec, created)
    return Prepared(spec, existing, steps, render.lab_files(spec, built.normalised, built.scripts))


def _write(home: LabHome, spec: LabSpec, files: Mapping[str, str | bytes]) -> str:
    """Stage the rendered files, let Vagrant validate them, then move them in."""
    paths = home.paths(spec.name)
    staging = render.stage(spec.name, files, home.root)
    try:
        VagrantDriver(staging).validate()
        render.install(staging, paths.root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
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
    return render.render_vagrantfile(prepare(home, lab, name, request).spec)


def render_lab(home: LabHome, lab: str | None, name: str | None, request: Request) -> Rendered:
    """Write (or rewrite) the lab folder and validate it with Vagrant. Machines
    that exist are never dropped from it: that is `up`'s plan to apply."""
    prepared = prepare(home, lab, name, request)
    spec = prepared.spec
    with home.lock(spec.name, "render"):
        created = set(inventory.machine_ids(home.paths(spec.name)))
        gone = [
            s.machine
            for s in prepared.changes
            if s.action in ("remove", "recreate") and s.machine in created
        ]
        if gone:
            raise SpecError(
                f"machines {', '.join(gone)} of lab {spec.name!r} exist and would be "
                "removed or recreated",
                hint="labctl up applies that plan (see it first with --dry-run)",
            )
        files = prepared.files or _rerendered(home, spec)
        path = _write(home, spec, files)
    return Rendered(spec, path)


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
    return render.lab_files(spec, lab_yaml, scripts)


def init_text(topology: str, params: dict[str, Any]) -> str:
    """A built-in topology as an editable lab file (checked as one)."""
    from labctl import labfile

    if params.get("jenkins_war"):
        from labctl.roles.jenkins import check_war

        params = {**params, "jenkins_war": check_war(params["jenkins_war"])}
    text = topologies.lab_text(topology, topologies.params(topology, {}, params))
    labfile.parse(text, f"{topology}.yaml", Path.cwd())
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


# ---------------------------------------------------------------- up and co


def split_target(
    home: LabHome, args: Sequence[str], lab: str | None
) -> tuple[str | None, list[str]]:
    """`[LAB] [MACHINE...]`: the first word is a lab unless it is a machine of
    the default lab (so `destroy gone-lab` stays a lab, and nothing to do)."""
    if lab is not None or not args:
        return lab, list(args)
    first = args[0]
    if not home.exists(first):
        try:
            default = home.resolve(None)
        except SpecError:
            default = None
        if default and first in home.load(default).machine_names():
            return None, list(args)
    return first, list(args[1:])


def _machines_of(spec: LabSpec, machines: Sequence[str]) -> list[str]:
    for m in machines:
        spec.machine(m)  # SpecError for an unknown machine
    return list(machines)


def _ensure_provider_ready(spec: LabSpec, on_line: Callable[[str], None]) -> None:
    if spec.provider != "docker":
        return
    if not providers.docker_engine_answers():
        raise LabctlError(
            "the Docker engine is not answering",
            hint="start it (systemctl start docker, or dockerd &) and try again",
        )
    from labctl import box

    for image in sorted({m.box for m in spec.machines}):
        if box.image_present(image):
            continue
        if image != DOCKER_BOX:
            raise LabctlError(
                f"docker image {image!r} is not on this host",
                hint="build or pull it, or leave out the box to use labctl's own",
            )
        on_line(f"box image {DOCKER_BOX} is missing: building it (labctl box build)")
        box.build(on_line=on_line)
    _refuse_foreign_containers(spec)


def _refuse_foreign_containers(spec: LabSpec) -> None:
    """Vagrant names each container after its lab and machine; another by that
    name (left by a lab whose folder was deleted) would stop `docker run`
    half-way through bringing the lab up."""
    owners = providers.docker_containers(render.LAB_ID_LABEL)
    names = [render.container_prefix(spec) + m.name for m in spec.machines]
    foreign = [n for n in names if n in owners and owners[n] != spec.id]
    if foreign:
        many = len(foreign) > 1
        raise LabctlError(
            f"docker container{'s' if many else ''} {', '.join(foreign)} "
            f"already exist{'' if many else 's'} and {'are' if many else 'is'} not of lab "
            f"{spec.name!r}",
            hint=f"remove {'them' if many else 'it'} (docker rm -f -v {' '.join(foreign)}) "
            "or use --name for a new lab",
        )


def up(
    home: LabHome,
    lab: str | None,
    name: str | None,
    request: Request,
    on_event: EventSink,
    timeout: float | None = None,
    on_plan: Callable[[Prepared], None] | None = None,
) -> UpResult:
    """Bring the lab to what its file (or topology) says: for a new lab,
    render and `vagrant up`; for an existing one, apply the plan (removed and
    recreated machines destroyed first, with the Vagrantfile that knows them,
    then the new files, `vagrant up`, reloads, provisioning of the changed
    machines only). Then each role's set-up (replication, Jenkins)."""
    prepared = prepare(home, lab, name, request)
    spec = prepared.spec
    if on_plan is not None:
        on_plan(prepared)
    with home.lock(spec.name, "up"):
        paths = home.paths(spec.name)
        # before anything is written: a refusal leaves no lab folder behind
        _ensure_provider_ready(spec, lambda text: on_event(Event("", "info", text)))
        driver = VagrantDriver(
            paths.root,
            on_event=on_event,
            on_interrupt=lambda: on_event(
                Event("", "warn", "interrupted: waiting for Vagrant to clean up...")
            ),
            timeout=timeout,
        )
        try:
            _apply(home, prepared, driver)
        finally:
            inventory.invalidate(paths)
        from labctl import roles  # the roles' set-up: SSH, guests' clients

        notes = roles.setup(home, spec, on_event)
    return UpResult(status(home, spec.name), notes, prepared.steps)


def _apply(home: LabHome, prepared: Prepared, driver: VagrantDriver) -> None:
    spec = prepared.spec
    paths = home.paths(spec.name)
    created = set(inventory.machine_ids(paths))
    by_action: dict[str, list[str]] = {}
    for step in prepared.changes:
        by_action.setdefault(step.action, []).append(step.machine)
    doomed = [
        m for m in by_action.get("remove", []) + by_action.get("recreate", []) if m in created
    ]
    if doomed:
        driver.destroy(doomed)  # the current Vagrantfile still defines them
    if prepared.files is not None and _stale(paths.root, prepared.files):
        _write(home, spec, prepared.files)
    # new and recreated machines are provisioned on creation; running ones are left alone
    driver.up(provider=spec.provider)
    reload = [s for s in prepared.changes if s.action == "reload"]
    for provision in (False, True):
        chosen = [s.machine for s in reload if s.provision == provision]
        if chosen:
            driver.reload(chosen, provision=provision or None)
    again = by_action.get("provision", [])
    if again:
        driver.provision(again)


def act(
    home: LabHome,
    lab: str | None,
    action: str,
    machines: Sequence[str] = (),
    on_event: EventSink | None = None,
    timeout: float | None = None,
    provision: bool | None = None,
) -> list[MachineRow]:
    """halt, suspend, resume, provision or reload some or all machines."""
    name = home.resolve(lab)
    spec = home.load(name)
    chosen = _machines_of(spec, machines)
    paths = home.paths(name)
    with home.lock(name, action):
        driver = VagrantDriver(paths.root, on_event=on_event, timeout=timeout)
        try:
            if action == "reload":
                driver.reload(chosen, provision=provision)
            else:
                getattr(driver, action)(chosen)
        finally:
            inventory.invalidate(paths)
    return status(home, name)


def _rows(spec: LabSpec, states: Sequence[MachineState]) -> list[MachineRow]:
    by_name = {s.name: s for s in states}
    rows = []
    for m in spec.machines:
        st = by_name.get(m.name)
        rows.append(
            MachineRow(
                lab=spec.name,
                name=m.name,
                hostname=m.hostname,
                ip=m.ip,
                role=m.role,
                state=st.state if st else "unknown",
                provider=(st.provider if st and st.provider else spec.provider),
            )
        )
    return rows


def status(home: LabHome, lab: str | None) -> list[MachineRow]:
    """Every machine of a lab with Vagrant's state (a failing status is an error)."""
    name = home.resolve(lab)
    spec = home.load(name)
    return _rows(spec, VagrantDriver(home.paths(name).root).status())


def ls(home: LabHome) -> list[MachineRow]:
    """Every machine of every lab; labs are asked in parallel. A lab that
    cannot be read or asked shows as such instead of hiding the others."""
    names = home.names()
    if not names:
        return []

    def one(name: str) -> list[MachineRow]:
        try:
            spec = home.load(name)
        except LabctlError:
            return [MachineRow(name, "-", "-", "-", "-", "unreadable lab.json", "-")]
        try:
            states = VagrantDriver(home.paths(name).root).status()
        except LabctlError:
            states = []
        return _rows(spec, states)

    with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
        return [row for rows in pool.map(one, names) for row in rows]


# ---------------------------------------------------------------- destroy


def _docker_leftovers(spec: LabSpec) -> None:
    """Containers of this lab that Vagrant no longer knows (an `up` interrupted
    before Vagrant recorded them), and then their network if it is empty."""
    if not providers.docker_installed():
        return
    try:
        owners = providers.docker_containers(render.LAB_ID_LABEL)
    except LabctlError:
        return  # best effort: Vagrant has destroyed what it knew of
    found = [name for name, lab_id in owners.items() if lab_id == spec.id]
    if found:
        subprocess.run(["docker", "rm", "-f", "-v", *found], capture_output=True, check=False)
        # Vagrant's network for the subnet; docker refuses while others use it.
        subprocess.run(
            ["docker", "network", "rm", f"vagrant_network_{spec.subnet}.0/24"],
            capture_output=True,
            check=False,
        )


def destroy(
    home: LabHome, lab: str | None, machines: Sequence[str] = (), on_event: EventSink | None = None
) -> str | None:
    """Destroy machines, and the lab folder with them; the lab's name, or None
    when there was no such lab (nothing to do)."""
    name = lab or os.environ.get("LABCTL_LAB")
    if name is None:
        labs = home.names()
        if not labs:
            return None
        name = home.resolve(None)  # the only lab, or the error listing several
    if not home.exists(name):
        return None
    try:
        spec: LabSpec | None = home.load(name)
    except SpecError:
        if machines:
            raise
        spec = None  # a record this labctl cannot read: Vagrant still knows the machines
    chosen = _machines_of(spec, machines) if spec else []
    paths = home.paths(name)
    with home.lock(name, "destroy"):
        VagrantDriver(paths.root, on_event=on_event).destroy(chosen)
        inventory.invalidate(paths)
        if spec and chosen and set(chosen) != set(spec.machine_names()):
            return name
        if spec and spec.provider == "docker":
            _docker_leftovers(spec)
        try:
            shutil.rmtree(paths.root)
        except OSError as exc:
            raise LabctlError(f"the machines are gone, but not the lab folder: {exc}") from exc
    return name

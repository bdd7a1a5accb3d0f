"""Use cases of a lab's life: render, up, status, halt ... destroy.

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
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from labctl import inventory, providers, render
from labctl.errors import LabctlError, SpecError
from labctl.home import LabHome
from labctl.labs import build_spec
from labctl.spec import DOCKER_BOX, TOPOLOGIES, VM_BOX, LabSpec, Settings, check_topology
from labctl.vagrant import Event, MachineState, VagrantDriver

EventSink = Callable[[Event], None]
_TZ_RE = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*")


@dataclass(frozen=True)
class Request:
    """Options given on the command line; None means "not given"."""

    provider: str | None = None
    box: str | None = None
    subnet: str | None = None
    cpus: int | None = None
    memory: int | None = None
    libvirt_uri: str | None = None
    containerd: bool | None = None
    count: int | None = None
    agents: int | None = None
    jdk: int | None = None
    jenkins_war: str | None = None
    replicas: int | None = None
    chain: bool | None = None
    gtid: bool | None = None

    def given(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }


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
    """The machine table after `up`, plus what the topology wants said (URLs...)."""

    rows: list[MachineRow]
    notes: list[str]


@dataclass(frozen=True)
class Rendered:
    spec: LabSpec
    path: str


# ---------------------------------------------------------------- planning


def _lab_and_topology(home: LabHome, lab: str, name: str | None) -> tuple[str, str, LabSpec | None]:
    """(lab name, topology, existing spec) meant by `labctl up LAB [--name N]`."""
    if name:
        topology = check_topology(lab)
        existing = home.load(name) if home.exists(name) else None
        if existing and existing.topology != topology:
            raise SpecError(
                f"lab {name!r} exists with topology {existing.topology}, not {topology}"
            )
        return name, topology, existing
    if home.exists(lab):
        existing = home.load(lab)
        return lab, existing.topology, existing
    if lab in TOPOLOGIES:
        return lab, lab, None
    labs = home.names()
    raise SpecError(
        f"unknown lab or topology {lab!r} (topologies: {', '.join(TOPOLOGIES)}"
        + (f"; labs: {', '.join(labs)})" if labs else ")")
    )


def _timezone() -> str:
    tz = providers.host_timezone()
    return tz if _TZ_RE.fullmatch(tz) else "Etc/UTC"


def plan(
    home: LabHome, lab: str, name: str | None, request: Request
) -> tuple[LabSpec, LabSpec | None]:
    """The spec to render for `labctl render|up LAB`, and the lab's current one."""
    VagrantDriver.executable()  # SpecError naming the package when Vagrant is missing
    lab_name, topology, existing = _lab_and_topology(home, lab, name)
    given = request.given()
    if "jenkins_war" in given:
        from labctl.ops.jenkins import check_war

        given["jenkins_war"] = check_war(given["jenkins_war"])
    created = set(inventory.machine_ids(home.paths(lab_name))) if existing else set()
    if existing:
        settings = replace(existing.settings, **given)
        if created:
            for key in ("provider", "subnet", "box"):
                if getattr(settings, key) != getattr(existing.settings, key):
                    raise SpecError(
                        f"cannot change {key} of lab {lab_name!r} while it has machines",
                        hint=f"labctl destroy {lab_name} first, or use --name for a new lab",
                    )
        lab_id = existing.id
    else:
        provider = (
            given.pop("provider", None) or os.environ.get("LABCTL_PROVIDER") or providers.detect()
        )
        settings = Settings(
            topology=topology,
            name=lab_name,
            provider=provider,
            box=given.pop("box", None) or (DOCKER_BOX if provider == "docker" else VM_BOX),
            subnet=given.pop("subnet", None) or home.free_subnet(),
            timezone=_timezone(),
            **given,
        )
        lab_id = uuid.uuid4().hex[:12]
    spec = build_spec(settings, lab_id)
    home.check_subnet_free(spec.subnet, lab_name)
    if existing:
        gone = (set(existing.machine_names()) - set(spec.machine_names())) & created
        if gone:
            raise SpecError(
                f"machines {', '.join(sorted(gone))} of lab {lab_name!r} still exist",
                hint=f"destroy them first: labctl destroy {lab_name} {' '.join(sorted(gone))}",
            )
    else:
        providers.require(spec.provider)
    return spec, existing


def _write(home: LabHome, spec: LabSpec, files: Mapping[str, str]) -> str:
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


def _stale(root: Path, files: Mapping[str, str]) -> bool:
    """Whether the lab folder differs from the files rendered for it (by a
    newer labctl, or edited by hand)."""
    for rel, content in files.items():
        try:
            if (root / rel).read_text() != content:
                return True
        except OSError:
            return True
    return False


def render_text(home: LabHome, lab: str, name: str | None, request: Request) -> str:
    """The Vagrantfile `render` would write, without writing anything."""
    spec, _ = plan(home, lab, name, request)
    return render.render_vagrantfile(spec)


def render_lab(home: LabHome, lab: str, name: str | None, request: Request) -> Rendered:
    """Write (or rewrite) the lab folder and validate it with Vagrant."""
    spec, _ = plan(home, lab, name, request)
    with home.lock(spec.name, "render"):
        path = _write(home, spec, render.lab_files(spec))
    return Rendered(spec, path)


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

    if not box.image_present(spec.settings.box):
        if spec.settings.box != DOCKER_BOX:
            raise LabctlError(
                f"docker image {spec.settings.box!r} is not on this host",
                hint="build or pull it, or leave out --box to use labctl's own",
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
    lab: str,
    name: str | None,
    request: Request,
    on_event: EventSink,
    timeout: float | None = None,
) -> UpResult:
    """Render if needed, then `vagrant up`, then the topology's own set-up."""
    spec, _ = plan(home, lab, name, request)
    with home.lock(spec.name, "up"):
        paths = home.paths(spec.name)
        # before anything is written: a refusal leaves no lab folder behind
        _ensure_provider_ready(spec, lambda text: on_event(Event("", "info", text)))
        # lab.json is among the files, so a changed spec is stale too
        files = render.lab_files(spec)
        rerendered = _stale(paths.root, files)
        if rerendered:
            _write(home, spec, files)
        # Machines provisioned from older files are provisioned again (Vagrant
        # would not): a new machine's hostname, a chain's new middle, a fix.
        reprovision = rerendered and bool(inventory.machine_ids(paths))
        driver = VagrantDriver(
            paths.root,
            on_event=on_event,
            on_interrupt=lambda: on_event(
                Event("", "warn", "interrupted: waiting for Vagrant to clean up...")
            ),
            timeout=timeout,
        )
        try:
            driver.up(provider=spec.provider, provision=True if reprovision else None)
        finally:
            inventory.invalidate(paths)
        notes = _topology_setup(home, spec, on_event)
    return UpResult(status(home, spec.name), notes)


def _topology_setup(home: LabHome, spec: LabSpec, on_event: EventSink) -> list[str]:
    """What a topology needs beyond provisioning, once its machines are up:
    replication for mysql-pair, the controller's checks for jenkins."""
    if spec.topology == "mysql-pair":
        from labctl.ops import mysql

        return mysql.setup(home, spec, on_event)
    if spec.topology == "jenkins":
        from labctl.ops import jenkins

        return jenkins.setup(home, spec, on_event)
    return []


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
    spec = home.load(name)
    chosen = _machines_of(spec, machines)
    paths = home.paths(name)
    with home.lock(name, "destroy"):
        VagrantDriver(paths.root, on_event=on_event).destroy(chosen)
        inventory.invalidate(paths)
        if chosen and set(chosen) != set(spec.machine_names()):
            return name
        if spec.provider == "docker":
            _docker_leftovers(spec)
        try:
            shutil.rmtree(paths.root)
        except OSError as exc:
            raise LabctlError(f"the machines are gone, but not the lab folder: {exc}") from exc
    return name

"""Machine states asked of the provider itself, not of Vagrant.

`vagrant status` costs seconds: it starts Ruby, its plugins and the
Vagrantfile to ask the provider one question per machine. Vagrant records
what it would ask about, the id of each machine it created, in
`.vagrant/machines/NAME/PROVIDER/id`; the provider answers for all of them at
once in milliseconds: one `docker inspect`, one `virsh` per libvirt URI,
VirtualBox's `list runningvms` (and `showvminfo` for the VMs not running).
The states keep the words Vagrant's providers use, so the answer reads the
same. A provider that gives no answer (its engine down, its tool missing) is
asked through `vagrant status` instead, and the answer says so.

Each provider is a command and a parser of its output, so the parsers are
tested on captured outputs and the commands run through one runner.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from labctl import process
from labctl.errors import Interrupted, LabctlError
from labctl.home import LabPaths
from labctl.spec import DEFAULT_LIBVIRT_URI, LabSpec

Runner = Callable[[Sequence[str]], process.Completed]
ASK_TIMEOUT = 20.0


@dataclass(frozen=True)
class LiveState:
    """One machine as its provider sees it, in Vagrant's words."""

    machine: str
    state: str  # running, stopped, shutoff, poweroff, saved, paused, not_created, ...
    provider: str
    detail: str = ""  # the provider's own word when it says more ("exited")

    @property
    def running(self) -> bool:
        return self.state == "running"

    def describe(self) -> str:
        """`docker state: exited`: what a user can look up in the provider's terms."""
        return f"{self.provider} state: {self.detail or self.state.replace('_', ' ')}"


@dataclass(frozen=True)
class LabStates:
    """Every declared machine of one lab, and who was asked."""

    lab: str
    states: dict[str, LiveState]
    asked: str  # the provider, or "vagrant status"
    note: str = ""  # why Vagrant was asked instead
    elapsed_ms: float = 0.0

    def of(self, machine: str) -> LiveState | None:
        return self.states.get(machine)

    def running(self) -> list[str]:
        return [name for name, st in self.states.items() if st.running]


class NoAnswer(LabctlError):
    """The provider's tool did not answer (not installed, engine down)."""


class EngineDown(NoAnswer):
    """The Docker engine is not running: Vagrant cannot answer either."""


_ENGINE_DOWN = re.compile(r"Cannot connect to the Docker daemon|Is the docker daemon running")


def run_tool(argv: Sequence[str]) -> process.Completed:
    return process.run(argv, timeout=ASK_TIMEOUT)


# ---------------------------------------------------------------- ids


def recorded_ids(vagrant_dir: Path) -> dict[str, tuple[str, str]]:
    """machine -> (provider, id) for every machine Vagrant has created."""
    found: dict[str, tuple[str, str]] = {}
    for id_file in sorted(vagrant_dir.glob("machines/*/*/id")):
        with contextlib.suppress(OSError):
            ident = id_file.read_text().strip()
            if ident:
                found[id_file.parent.parent.name] = (id_file.parent.name, ident)
    return found


# ---------------------------------------------------------------- docker

# Vagrant's docker provider: a container `docker ps` lists is running (a
# paused or restarting one too), any other one is stopped.
_DOCKER_RUNNING = {"running", "paused", "restarting"}
_NOT_FOUND = re.compile(r"No such (container|object)", re.I)


def docker_command(ids: Sequence[str]) -> list[str]:
    return ["docker", "inspect", "--type", "container", *ids]


def parse_docker(done: process.Completed) -> dict[str, str]:
    """container id -> docker's status word, for the containers that exist.

    `docker inspect` prints the ones it found and fails for the others; any
    other complaint on stderr means the engine did not answer."""
    complaints = [
        line for line in done.stderr.splitlines() if line.strip() and not _NOT_FOUND.search(line)
    ]
    if done.returncode != 0 and complaints:
        if _ENGINE_DOWN.search(done.stderr):
            raise EngineDown(
                "the Docker engine is not answering",
                hint="start it (systemctl start docker, or dockerd &); its labs' machines "
                "stopped with it: labctl up LAB starts them again",
            )
        raise NoAnswer(f"docker: {complaints[0].strip()}")
    try:
        found = json.loads(done.stdout or "[]")
        return {c["Id"]: str(c["State"]["Status"]) for c in found}
    except (ValueError, KeyError, TypeError) as exc:
        raise NoAnswer(f"docker inspect gave an answer labctl cannot read: {exc}") from None


def docker_state(status: str) -> str:
    return "running" if status in _DOCKER_RUNNING else "stopped"


def ask_docker(ids: Sequence[str], run: Runner = run_tool) -> dict[str, LiveState]:
    """id -> state (machine left blank) for every id; a missing one is not created."""
    if not ids:
        return {}
    statuses = parse_docker(run(docker_command(ids)))
    found = {}
    for ident in ids:  # Vagrant records the full ids docker answers with
        status = statuses.get(ident)
        if status is None:
            found[ident] = LiveState("", "not_created", "docker", "no such container")
        else:
            detail = "" if status == docker_state(status) else status
            found[ident] = LiveState("", docker_state(status), "docker", detail)
    return found


# ---------------------------------------------------------------- libvirt

# virDomainState, in vagrant-libvirt's words (fog-libvirt's names, '-' as '_')
LIBVIRT_STATES = (
    "nostate",
    "running",
    "blocked",
    "paused",
    "shutting_down",
    "shutoff",
    "crashed",
    "pmsuspended",
)
_UUID_LINE = re.compile(
    r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\s+(\S.*)$"
)
_DOMAIN_LINE = re.compile(r"^Domain: '(.*)'$")
_STATE_LINE = re.compile(r"^\s*state\.state=(\d+)$")


def virsh_command(uri: str) -> list[str]:
    # one virsh, two commands: the uuid of each domain, then each domain's state
    return ["virsh", "-c", uri, "list --all --uuid --name; domstats --state"]


def parse_virsh(done: process.Completed) -> dict[str, str]:
    """domain uuid -> vagrant-libvirt's state word, for every domain."""
    if done.returncode != 0:
        lines = [x.strip() for x in done.stderr.splitlines() if x.strip()]
        raise NoAnswer(f"virsh: {lines[-1] if lines else f'exit status {done.returncode}'}")
    uuids: dict[str, str] = {}
    states: dict[str, str] = {}
    domain = None
    for line in done.stdout.splitlines():
        if m := _UUID_LINE.match(line.strip()):
            uuids[m.group(2).strip()] = m.group(1)
        elif m := _DOMAIN_LINE.match(line.strip()):
            domain = m.group(1)
        elif (m := _STATE_LINE.match(line)) and domain is not None:
            number = int(m.group(1))
            states[domain] = LIBVIRT_STATES[number] if number < len(LIBVIRT_STATES) else "unknown"
    return {uuid: states.get(name, "unknown") for name, uuid in uuids.items()}


def ask_libvirt(uri: str, ids: Sequence[str], run: Runner = run_tool) -> dict[str, LiveState]:
    if not ids:
        return {}
    states = parse_virsh(run(virsh_command(uri)))
    return {
        ident: LiveState("", states.get(ident.lower(), "not_created"), "libvirt") for ident in ids
    }


# ---------------------------------------------------------------- virtualbox

_RUNNING_VM = re.compile(r'^".*"\s+\{([0-9a-fA-F-]+)\}\s*$')
_VMSTATE = re.compile(r'^VMState="(.+?)"\s*$', re.M)


def parse_vbox_running(done: process.Completed) -> set[str]:
    """The uuids `VBoxManage list runningvms` names."""
    if done.returncode != 0:
        raise NoAnswer(f"VBoxManage: {done.stderr.strip() or done.returncode}")
    return {m.group(1).lower() for x in done.stdout.splitlines() if (m := _RUNNING_VM.match(x))}


def parse_vbox_info(done: process.Completed) -> str:
    """VirtualBox's VMState word (Vagrant's state for the VM), or not_created."""
    if done.returncode != 0:
        if "VBOX_E_OBJECT_NOT_FOUND" in done.stderr or "Could not find" in done.stderr:
            return "not_created"
        raise NoAnswer(f"VBoxManage: {done.stderr.strip() or done.returncode}")
    if re.search(r'^name="<inaccessible>"$', done.stdout, re.M):
        return "inaccessible"
    m = _VMSTATE.search(done.stdout)
    return m.group(1) if m else "unknown"


def ask_virtualbox(ids: Sequence[str], run: Runner = run_tool) -> dict[str, LiveState]:
    """One listing of the running VMs; the others (usually none) one by one."""
    if not ids:
        return {}
    running = parse_vbox_running(run(["VBoxManage", "list", "runningvms"]))
    rest = [i for i in ids if i.lower() not in running]

    def info(ident: str) -> str:
        return parse_vbox_info(run(["VBoxManage", "showvminfo", ident, "--machinereadable"]))

    with process.interruptible(), ThreadPoolExecutor(max_workers=max(1, min(8, len(rest)))) as pool:
        others = dict(zip(rest, pool.map(info, rest), strict=True))
    return {i: LiveState("", others.get(i, "running"), "virtualbox") for i in ids}


# ---------------------------------------------------------------- labs


@dataclass
class _Ask:
    """The ids of one provider (and libvirt URI) across the labs being asked."""

    provider: str
    uri: str = ""
    ids: list[str] = field(default_factory=list)


def _vagrant_states(paths: LabPaths) -> dict[str, LiveState]:
    from labctl.vagrant import VagrantDriver

    return {
        s.name: LiveState(s.name, s.state, s.provider or "")
        for s in VagrantDriver(paths.root).status()
    }


VagrantAsker = Callable[[LabPaths], dict[str, LiveState]]


def ask(
    labs: Sequence[tuple[LabPaths, LabSpec]],
    run: Runner | None = None,
    vagrant: VagrantAsker | None = None,
    tolerant: bool = False,
) -> list[LabStates]:
    """The states of every declared machine of each lab: one call per provider
    (and libvirt URI) for all the labs together; `vagrant status` for a lab
    whose provider gave no answer (labs in parallel). `tolerant`: a failing
    `vagrant status` leaves that lab's states unknown instead of raising."""
    runner: Runner = run or run_tool
    asker: VagrantAsker = vagrant or _vagrant_states
    start = time.perf_counter()
    recorded = [recorded_ids(paths.vagrant_dir) for paths, _ in labs]
    asks: dict[tuple[str, str], _Ask] = {}
    for (_, spec), ids in zip(labs, recorded, strict=True):
        for provider, ident in ids.values():
            uri = (spec.libvirt_uri or DEFAULT_LIBVIRT_URI) if provider == "libvirt" else ""
            asks.setdefault((provider, uri), _Ask(provider, uri)).ids.append(ident)
    answers: dict[tuple[str, str], dict[str, LiveState] | NoAnswer] = {}
    for key, a in asks.items():
        try:
            answers[key] = _ask_one(a, runner)
        except NoAnswer as exc:
            answers[key] = exc
        except Interrupted:
            raise
        except LabctlError as exc:  # the tool is missing, or its time ran out
            answers[key] = NoAnswer(exc.message)
    elapsed = (time.perf_counter() - start) * 1000

    def one(lab: tuple[tuple[LabPaths, LabSpec], dict[str, tuple[str, str]]]) -> LabStates:
        (paths, spec), ids = lab
        return _lab_states(paths, spec, ids, answers, asker, elapsed, tolerant)

    pairs = list(zip(labs, recorded, strict=True))
    if all(not isinstance(a, NoAnswer) for a in answers.values()) or len(pairs) < 2:
        return [one(p) for p in pairs]
    # Ctrl-C reaches the vagrant status run on each worker (process.interruptible)
    with process.interruptible(), ThreadPoolExecutor(max_workers=min(8, len(pairs))) as pool:
        return list(pool.map(one, pairs))


def _ask_one(a: _Ask, run: Runner) -> dict[str, LiveState]:
    if a.provider == "docker":
        return ask_docker(a.ids, run)
    if a.provider == "libvirt":
        return ask_libvirt(a.uri, a.ids, run)
    if a.provider == "virtualbox":
        return ask_virtualbox(a.ids, run)
    raise NoAnswer(f"labctl cannot ask the provider {a.provider} itself")


def _lab_states(
    paths: LabPaths,
    spec: LabSpec,
    ids: dict[str, tuple[str, str]],
    answers: dict[tuple[str, str], dict[str, LiveState] | NoAnswer],
    vagrant: VagrantAsker,
    elapsed: float,
    tolerant: bool,
) -> LabStates:
    states: dict[str, LiveState] = {}
    for m in spec.machines:
        if m.name not in ids:
            states[m.name] = LiveState(m.name, "not_created", spec.provider)
            continue
        provider, ident = ids[m.name]
        uri = (spec.libvirt_uri or DEFAULT_LIBVIRT_URI) if provider == "libvirt" else ""
        answer = answers[(provider, uri)]
        if isinstance(answer, EngineDown):  # Vagrant asks the same engine: no fallback
            if not tolerant:
                raise answer
            states = {
                n.name: LiveState(n.name, "unknown", spec.provider, "docker engine down")
                for n in spec.machines
            }
            return LabStates(spec.name, states, "docker", answer.message, elapsed)
        if isinstance(answer, NoAnswer):
            return _from_vagrant(paths, spec, answer.message, vagrant, elapsed, tolerant)
        st = answer[ident]
        states[m.name] = LiveState(m.name, st.state, st.provider, st.detail)
    asked = {provider for provider, _ in ids.values()} or {spec.provider}
    return LabStates(spec.name, states, ", ".join(sorted(asked)), elapsed_ms=elapsed)


def _from_vagrant(
    paths: LabPaths,
    spec: LabSpec,
    why: str,
    vagrant: VagrantAsker,
    elapsed: float,
    tolerant: bool,
) -> LabStates:
    start = time.perf_counter()
    note = f"{why}; asked vagrant status instead"
    try:
        told = vagrant(paths)
    except Interrupted:
        raise
    except LabctlError as exc:
        if not tolerant:
            raise
        told, note = {}, f"{why}; vagrant status failed too: {exc.message}"
    states = {
        m.name: told.get(m.name) or LiveState(m.name, "unknown", spec.provider)
        for m in spec.machines
    }
    elapsed += (time.perf_counter() - start) * 1000
    return LabStates(spec.name, states, "vagrant status", note=note, elapsed_ms=elapsed)

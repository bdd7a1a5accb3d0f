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

Each provider's `states` is a command and a parser of its output (in its
module), so the parsers are tested on captured outputs and the commands run
through one runner.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from labctl.errors import Interrupted, LabctlError
from labctl.lab.home import LabPaths
from labctl.lab.spec import LabSpec
from labctl.local import process
from labctl.providers import PROVIDERS
from labctl.providers.base import EngineDown, LiveState, NoAnswer, Runner, run_tool


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


# ---------------------------------------------------------------- labs


@dataclass
class _Ask:
    """The ids of one provider (and its state_key: libvirt's URI) across the labs asked."""

    provider: str
    key: str = ""
    ids: list[str] = field(default_factory=list)


def _vagrant_states(paths: LabPaths) -> dict[str, LiveState]:
    from labctl.vagrant.driver import VagrantDriver

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
            where = _key(provider, spec)
            asks.setdefault((provider, where), _Ask(provider, where)).ids.append(ident)
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


def _key(provider: str, spec: LabSpec) -> str:
    known = PROVIDERS.get(provider)
    return known.state_key(spec) if known else ""


def _ask_one(a: _Ask, run: Runner) -> dict[str, LiveState]:
    known = PROVIDERS.get(a.provider)
    if known is None:
        raise NoAnswer(f"labctl cannot ask the provider {a.provider} itself")
    return known.states(a.key, a.ids, run)


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
        answer = answers[(provider, _key(provider, spec))]
        if isinstance(answer, EngineDown):  # Vagrant asks the same engine: no fallback
            if not tolerant:
                raise answer
            states = {
                n.name: LiveState(n.name, "unknown", spec.provider, f"{provider} {answer.detail}")
                for n in spec.machines
            }
            return LabStates(spec.name, states, provider, answer.message, elapsed)
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

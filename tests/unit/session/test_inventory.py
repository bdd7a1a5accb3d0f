"""Readers started together (parallel CI jobs right after `up`): Vagrant is
asked once per change of the lab, by one of them, and its machine lock is
never a reader's failure.

The readers here are threads: each opens the lock file on its own, and flock
locks belong to an open file, so threads contend for it as processes do. The
Vagrant they run is tests/unit/fakes.py's scripted one, which logs each run."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from labctl.errors import ExitCode, Interrupted, LabBusy, VagrantBusy, VagrantError
from labctl.lab.home import LabPaths
from labctl.local import fsutil, process
from labctl.local.deadline import Deadline
from labctl.providers import states as provider_state
from labctl.providers.states import LabStates, LiveState
from labctl.session import group as session
from labctl.session import inventory
from labctl.transport.interface import Endpoint
from labctl.vagrant import driver as vagrant
from labctl.vagrant.driver import MachineState

from ..fakes import FakeTransport, install, scripted_vagrant
from ..labs import topology

ALL = "ssh-config --machine-readable"
MACHINES = ["n1", "n2"]  # the machines of the captured ssh-config


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vagrant, "LOCKED_RETRY_EVERY", 0.05)


def lab(tmp_path: Path) -> LabPaths:
    """A lab folder as Vagrant leaves it: an id recorded per machine."""
    paths = LabPaths(tmp_path / "lab")
    for name in MACHINES:
        folder = paths.vagrant_dir / "machines" / name / "docker"
        folder.mkdir(parents=True)
        (folder / "id").write_text(f"id-{name}")
    paths.vagrantfile.write_text("# the lab's Vagrantfile\n")
    return paths


def together(n: int, reader: Callable[[], Any]) -> list[Any]:
    """`reader` on n threads released at once; each one's answer or exception."""
    start = threading.Barrier(n)

    def one(_: int) -> Any:
        start.wait()
        try:
            return reader()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_readers_started_together_ask_vagrant_once(tmp_path, monkeypatch) -> None:
    scripted = scripted_vagrant(monkeypatch, tmp_path, delay=0.2)
    paths = lab(tmp_path)
    answers = together(16, lambda: inventory.endpoints(paths, MACHINES, every=True))
    assert scripted.runs() == [ALL]  # one asker; the 15 others took its answer
    assert all(a == answers[0] for a in answers)
    assert sorted(answers[0]) == MACHINES and answers[0]["n1"].machine_id == "id-n1"
    inventory.endpoints(paths, MACHINES, every=True)
    assert scripted.runs() == [ALL]  # warm now


def test_readers_who_waited_share_vagrants_refusal_the_next_asks_again(
    tmp_path, monkeypatch
) -> None:
    scripted = scripted_vagrant(
        monkeypatch, tmp_path, delay=0.1, failing="vagrant/ssh-config-not-ready.txt"
    )
    paths = lab(tmp_path)
    answers = together(8, lambda: inventory.endpoints(paths, MACHINES, every=True))
    assert all(isinstance(a, VagrantError) and a.error_class == "SSHNotReady" for a in answers)
    # the asker's questions only: all machines, then each one alone
    assert sorted(scripted.runs()) == [
        ALL,
        f"ssh-config n1 {ALL[11:]}",
        f"ssh-config n2 {ALL[11:]}",
    ]
    with pytest.raises(VagrantError):  # a refusal is no answer to keep
        inventory.endpoints(paths, MACHINES, every=True)
    assert len(scripted.runs()) == 6


def test_readers_refreshing_together_ask_once(tmp_path, monkeypatch) -> None:
    """A stale cache (a machine moved by plain vagrant) found by several
    readers at once is asked again by one of them."""
    scripted = scripted_vagrant(monkeypatch, tmp_path, delay=0.2)
    paths = lab(tmp_path)
    inventory.endpoints(paths, MACHINES, every=True)
    answers = together(4, lambda: inventory.endpoints(paths, MACHINES, every=True, refresh=True))
    assert not any(isinstance(a, Exception) for a in answers)
    assert scripted.runs() == [ALL, ALL]


def test_vagrants_machine_lock_is_waited_out(tmp_path, monkeypatch) -> None:
    scripted = scripted_vagrant(monkeypatch, tmp_path, locked=2)
    found = inventory.endpoints(lab(tmp_path), MACHINES, every=True)
    assert sorted(found) == MACHINES
    assert scripted.runs() == [ALL, ALL, ALL]  # locked twice, answered the third time


def test_a_lock_held_past_the_time_limit_is_one_clear_line(tmp_path, monkeypatch) -> None:
    scripted = scripted_vagrant(monkeypatch, tmp_path, locked=-1)
    monkeypatch.setenv("LABCTL_QUICK_TIMEOUT", "0.4")
    start = time.monotonic()
    with pytest.raises(VagrantBusy) as exc:
        inventory.endpoints(lab(tmp_path), MACHINES, every=True)
    assert time.monotonic() - start < 2
    assert str(exc.value) == (
        "lab 'lab': another vagrant process kept machine 'node1' locked for 0.4 s "
        "(vagrant ssh-config)"
    )
    assert exc.value.exit_code == ExitCode.BUSY
    assert len(scripted.runs()) > 2  # asked again meanwhile
    assert scripted.runs()[1:] == scripted.runs()[:-1]  # the same question each time


def test_the_lab_deadline_bounds_the_retries(tmp_path, monkeypatch) -> None:
    scripted_vagrant(monkeypatch, tmp_path, locked=-1)
    start = time.monotonic()
    with pytest.raises(VagrantBusy, match=r"locked for 0\.3 s"):
        inventory.endpoints(lab(tmp_path), MACHINES, every=True, deadline=Deadline.after(0.3))
    assert time.monotonic() - start < 2


def test_an_action_meeting_vagrants_lock_is_not_retried(tmp_path, monkeypatch) -> None:
    """`halt` or `up` changes machines: another vagrant at work on them is the
    user's to know about (exit 75), not to be waited out."""
    scripted = scripted_vagrant(monkeypatch, tmp_path, locked=-1)
    with pytest.raises(VagrantBusy, match="Vagrant is busy with this lab"):
        vagrant.VagrantDriver(lab(tmp_path).root)._run(["vagrant", "ssh-config"], stream=True)
    assert len(scripted.runs()) == 1


def test_a_reader_waits_for_the_asker_no_longer_than_a_question_may_take(
    tmp_path, monkeypatch
) -> None:
    scripted = scripted_vagrant(monkeypatch, tmp_path)
    monkeypatch.setenv("LABCTL_QUICK_TIMEOUT", "0.3")
    paths = lab(tmp_path)
    paths.state.mkdir()
    never = lambda: AssertionError("not busy")  # noqa: E731
    with (
        fsutil.exclusive(paths.ssh_config_lock, 1, never),
        pytest.raises(LabBusy, match="another labctl has been asking Vagrant"),
    ):
        inventory.endpoints(paths, MACHINES, every=True)
    assert scripted.runs() == []


def running_states(monkeypatch: pytest.MonkeyPatch, names: list[str]) -> None:
    def ask(labs: Any, **kw: Any) -> list[LabStates]:
        return [
            LabStates(spec.name, {n: LiveState(n, "running", "docker") for n in names}, "docker")
            for _, spec in labs
        ]

    monkeypatch.setattr(provider_state, "ask", ask)


def test_a_writer_warms_the_cache_for_the_readers_after_it(tmp_path, monkeypatch) -> None:
    scripted = scripted_vagrant(monkeypatch, tmp_path)
    running_states(monkeypatch, MACHINES)
    paths = lab(tmp_path)
    inventory.warm(paths, topology("nodes", count=2, name="lab"))
    assert scripted.runs() == [ALL]  # every machine runs: one question
    together(8, lambda: inventory.endpoints(paths, MACHINES, every=True))
    assert scripted.runs() == [ALL]


def test_warming_is_best_effort_but_ctrl_c_is_not_swallowed(tmp_path, monkeypatch) -> None:
    scripted_vagrant(monkeypatch, tmp_path, failing="vagrant/ssh-config-not-ready.txt")
    running_states(monkeypatch, MACHINES)
    paths, spec = lab(tmp_path), topology("nodes", count=2, name="lab")
    inventory.warm(paths, spec)  # Vagrant refused: the first reader will say so
    assert inventory.read_cache(paths.ssh_config_cache, inventory.fingerprint(paths)) is None

    def interrupted(*a: Any, **kw: Any) -> list[LabStates]:
        raise Interrupted("interrupted")

    monkeypatch.setattr(provider_state, "ask", interrupted)
    with pytest.raises(Interrupted):
        inventory.warm(paths, spec)


def test_exec_on_a_lab_vagrant_keeps_locked_says_so_once(cli, home, monkeypatch) -> None:
    """Through the entry point: every machine's failure is the same one
    (Vagrant asked once for all of them, within the time limit), said once."""
    scripted = scripted_vagrant(monkeypatch, home.parent, locked=-1)
    monkeypatch.setenv("LABCTL_QUICK_TIMEOUT", "0.3")
    spec = topology("nodes", count=3, name="demo")
    install(monkeypatch, home, spec, [FakeTransport(f"node{i}") for i in (1, 2, 3)])
    monkeypatch.setattr(session.BACKEND, "endpoints", session.GuestBackend().endpoints)
    start = time.monotonic()
    done = cli("exec", "--lab", "demo", "--", "true")
    assert time.monotonic() - start < 2
    assert done.code == ExitCode.BUSY
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert errors == [
        "labctl: error: lab 'demo': another vagrant process kept machine 'node1' locked "
        "for 0.3 s (vagrant ssh-config)"
    ]
    assert all(run == ALL for run in scripted.runs())


# ---------------------------------------------------------------- which machines are asked
# Which machines Vagrant is asked to give SSH addresses for: the provider's
# word decides, and a machine it says runs is never dropped in silence.


class FakeVagrant:
    """ssh-config and status as a Vagrant that cannot answer for `failing`."""

    def __init__(
        self, failing: set[str], states: dict[str, str], left_out: set[str] = frozenset()
    ) -> None:
        self.failing = failing
        self.states = states
        self.left_out = left_out  # missing from the all-machines answer
        self.asked: list[str] = []

    def ssh_config(self, machine: str | None = None) -> dict[str, Endpoint]:
        self.asked.append(f"ssh-config {machine or '(all)'}")
        names = [machine] if machine else [n for n in self.states if n not in self.left_out]
        if any(n in self.failing or self.states[n] != "running" for n in names):
            raise VagrantError(f"SSH not ready: {', '.join(names)}", error_class="SSHNotReady")
        return {n: Endpoint(n, "172.17.0.2", 22, "vagrant", "/k") for n in names}

    def status(self) -> list[MachineState]:
        self.asked.append("status")
        return [MachineState(n, s, "docker") for n, s in self.states.items()]


ALL_UP = {"db1": "running", "db2": "running", "db3": "running"}


def test_every_machine_running_is_one_call() -> None:
    vagrant = FakeVagrant(set(), ALL_UP)
    found = inventory.ask_vagrant(vagrant, ["db1", "db2", "db3"], every=True)  # type: ignore[arg-type]
    assert sorted(found) == ["db1", "db2", "db3"] and vagrant.asked == ["ssh-config (all)"]


def test_a_running_machine_vagrant_cannot_answer_for_is_its_error_not_a_gap() -> None:
    """The provider says db1 runs: the answer has db1, or Vagrant's error for
    it is raised. `vagrant status` is not asked to overrule the provider: a
    machine left out was later called "not running" when it ran (an e2e flake)."""
    vagrant = FakeVagrant({"db1"}, ALL_UP)
    with pytest.raises(VagrantError, match="SSH not ready: db1"):
        inventory.ask_vagrant(vagrant, ["db1", "db2", "db3"], every=True)  # type: ignore[arg-type]
    assert "status" not in vagrant.asked
    assert "ssh-config db1" in vagrant.asked


def test_a_machine_missing_from_the_answer_is_asked_for_alone() -> None:
    vagrant = FakeVagrant(set(), ALL_UP, left_out={"db1"})
    found = inventory.ask_vagrant(vagrant, ["db1", "db2", "db3"], every=True)  # type: ignore[arg-type]
    assert sorted(found) == ["db1", "db2", "db3"]
    assert vagrant.asked == ["ssh-config (all)", "ssh-config db1"]


def test_some_running_are_asked_one_by_one() -> None:
    vagrant = FakeVagrant(set(), {"db1": "running", "db2": "stopped", "db3": "running"})
    found = inventory.ask_vagrant(vagrant, ["db1", "db3"], every=False)  # type: ignore[arg-type]
    assert sorted(found) == ["db1", "db3"]
    assert sorted(vagrant.asked) == ["ssh-config db1", "ssh-config db3"]  # no all-machines call


def test_docker_machines_are_told_by_docker_and_vagrant_is_not_asked(tmp_path, monkeypatch) -> None:
    """Vagrant's ssh-config costs 2 s of Ruby; for docker guests with the key
    Vagrant put in place, one `docker inspect` says the same."""
    scripted = scripted_vagrant(monkeypatch, tmp_path)
    paths = lab(tmp_path)
    for name in MACHINES:
        (paths.vagrant_dir / "machines" / name / "docker" / "private_key").write_text("k\n")
    asked: list[list[str]] = []

    def docker(argv):
        asked.append(list(argv))
        containers = [
            {"Id": ident, "State": {"Status": "running"}, "NetworkSettings": {"IPAddress": ip}}
            for ident, ip in (("id-n1", "172.17.0.5"), ("id-n2", "172.17.0.6"))
        ]
        return process.Completed(tuple(argv), 0, json.dumps(containers), "")

    monkeypatch.setattr(inventory, "run_tool", docker)
    found = inventory.endpoints(paths, MACHINES, every=True)
    assert {m: (e.host, e.port, e.user, e.machine_id) for m, e in found.items()} == {
        "n1": ("172.17.0.5", 22, "vagrant", "id-n1"),
        "n2": ("172.17.0.6", 22, "vagrant", "id-n2"),
    }
    assert scripted.runs() == [] and len(asked) == 1
    # a machine Vagrant made with another provider: Vagrant is asked
    other = paths.vagrant_dir / "machines" / "n2"
    (other / "docker").rename(other / "libvirt")
    inventory.invalidate(paths)
    inventory.endpoints(paths, MACHINES, every=True)
    assert scripted.runs() == [ALL]

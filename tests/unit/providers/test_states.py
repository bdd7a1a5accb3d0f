"""Machine states from the providers' own answers (captured), the id lookup,
the one-call-per-provider batching, and the fall-back to `vagrant status`."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from labctl.errors import VagrantError
from labctl.lab.home import LabHome, LabPaths
from labctl.lab.spec import LabSpec, spec_to_record
from labctl.local.process import Completed
from labctl.providers import docker, libvirt, virtualbox
from labctl.providers import states as ps

from ...conftest import require
from ..captured import load
from ..labs import topology

NODE1 = "741d05b82b0c91153fd1c5232a1b77f5080bb31439ca97cbb50933ce89d22d99"
NODE2 = "da845d1bbce34a650992490e7fc52d83710c08bd6dbc897d2ff5710d7b0d4f6e"
MISSING = "0" * 64


# ---------------------------------------------------------------- parsers


def test_docker_inspect_running_stopped_and_missing() -> None:
    cap = load("providers/docker-inspect.txt")
    assert not cap.by_hand and cap.exit == 1  # docker fails for the missing id...
    assert docker.parse_docker(cap.completed()) == {NODE1: "running", NODE2: "exited"}
    calls: list[list[str]] = []

    def run(argv: Sequence[str]) -> Completed:
        calls.append(list(argv))
        return cap.completed()

    found = docker.ask_docker([NODE1, NODE2, MISSING], run)
    assert calls == [["docker", "inspect", "--type", "container", NODE1, NODE2, MISSING]]
    assert found[NODE1] == ps.LiveState("", "running", "docker")
    # ...and that is an answer: Vagrant's words, docker's own word kept
    assert found[NODE2] == ps.LiveState("", "stopped", "docker", "exited")
    assert found[NODE2].describe() == "docker state: exited"
    assert found[MISSING].state == "not_created"


def test_docker_paused_is_running_as_vagrant_says() -> None:
    found = docker.parse_docker(load("providers/docker-inspect-paused.txt").completed())
    assert found == {NODE1: "paused", NODE2: "exited"}
    assert docker.docker_state("paused") == "running"
    assert docker.docker_state("restarting") == "running"
    assert docker.docker_state("created") == docker.docker_state("dead") == "stopped"


def test_docker_without_an_engine_is_the_engine_down() -> None:
    with pytest.raises(ps.EngineDown, match="the Docker engine is not answering"):
        docker.parse_docker(load("providers/docker-inspect-no-engine.txt").completed())


# written by hand: an engine that answers, but not to the point (no capture of one)
CONFUSED = Completed(("docker", "inspect"), 1, "", "Error response from daemon: something odd")


def test_an_engine_down_is_said_once_and_vagrant_is_not_asked(tmp_path: Path) -> None:
    """Vagrant would ask the same engine, and say it in 600 characters."""
    paths = LabPaths(tmp_path / "a")
    spec = topology("nodes", count=2, name="a")
    record(paths, spec, {"node1": NODE1, "node2": NODE2})
    engine_down = load("providers/docker-inspect-no-engine.txt").completed()

    def vagrant(p: LabPaths) -> dict[str, ps.LiveState]:
        raise AssertionError("vagrant status asked")

    with pytest.raises(ps.EngineDown) as exc:
        ps.ask([(paths, spec)], lambda argv: engine_down, vagrant)
    assert "labctl up LAB starts them again" in (exc.value.hint or "")
    (got,) = ps.ask([(paths, spec)], lambda argv: engine_down, vagrant, tolerant=True)
    assert {st.state for st in got.states.values()} == {"unknown"}
    assert got.note == "the Docker engine is not answering"


def test_virsh_states_by_uuid() -> None:
    cap = load("providers/virsh-states.txt")
    assert libvirt.parse_virsh(cap.completed()) == {
        "3f2a1c7e-5b8d-4e6f-9a0b-1c2d3e4f5a6b": "paused",
        "8c9d0e1f-2a3b-4c5d-8e7f-901a2b3c4d5e": "shutoff",
        "6695eb01-f6a4-8304-79aa-97f2502e193f": "shutoff",
    }
    found = libvirt.ask_libvirt(
        "qemu:///system",
        ["8C9D0E1F-2A3B-4C5D-8E7F-901A2B3C4D5E", "00000000-0000-0000-0000-000000000000"],
        lambda argv: cap.completed(),
    )
    assert [s.state for s in found.values()] == ["shutoff", "not_created"]


def test_virsh_without_a_daemon_is_no_answer() -> None:
    with pytest.raises(ps.NoAnswer, match="Failed to connect socket"):
        libvirt.parse_virsh(load("providers/virsh-no-daemon.txt").completed())


def test_virsh_for_real_with_libvirts_test_driver() -> None:
    """The real virsh (no daemon: the test driver lives in virsh itself),
    whose default domain `test` is running."""
    require(shutil.which("virsh"), "virsh is not installed (libvirt-clients)")
    listed = subprocess.run(
        ["virsh", "-c", "test:///default", "list", "--all", "--uuid"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    found = libvirt.ask_libvirt(
        "test:///default", [listed[0], "00000000-0000-0000-0000-000000000000"]
    )
    assert [s.state for s in found.values()] == ["running", "not_created"]


def test_virtualbox_running_list_then_showvminfo_for_the_rest() -> None:
    running = "4f1b7c2a-8d3e-4a5b-9c6d-7e8f9a0b1c2d"
    off = "9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
    gone = "11111111-2222-4333-8444-555555555555"
    answers = {
        "runningvms": load("providers/vboxmanage-runningvms.txt"),
        off: load("providers/vboxmanage-showvminfo-poweroff.txt"),
        gone: load("providers/vboxmanage-showvminfo-missing.txt"),
    }
    assert all(a.by_hand for a in answers.values())  # VirtualBox cannot run here
    asked: list[str] = []

    def run(argv: Sequence[str]) -> Completed:
        key = argv[2]
        asked.append(key)
        return answers[key].completed()

    found = virtualbox.ask_virtualbox([running, off, gone], run)
    assert {k: v.state for k, v in found.items()} == {
        running: "running",
        off: "poweroff",
        gone: "not_created",
    }
    assert asked[0] == "runningvms" and running not in asked  # a running VM costs nothing more


# ---------------------------------------------------------------- labs


def record(paths: LabPaths, spec: LabSpec, ids: dict[str, str], provider: str = "docker") -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.record.write_text(json.dumps(spec_to_record(spec)))
    for machine, ident in ids.items():
        folder = paths.vagrant_dir / "machines" / machine / provider
        folder.mkdir(parents=True)
        (folder / "id").write_text(ident)  # Vagrant writes no newline
        (folder / "index_uuid").write_text("x")


def test_recorded_ids(tmp_path: Path) -> None:
    paths = LabPaths(tmp_path / "lab")
    record(paths, topology("nodes", count=3), {"node1": NODE1, "node3": "abc"})
    (paths.vagrant_dir / "machines" / "node2" / "docker").mkdir(parents=True)  # made, no id yet
    assert ps.recorded_ids(paths.vagrant_dir) == {
        "node1": ("docker", NODE1),
        "node3": ("docker", "abc"),
    }


def inspect_answer(states: dict[str, str]) -> Completed:
    found = [{"Id": ident, "State": {"Status": st}} for ident, st in states.items()]
    return Completed(("docker",), 0, json.dumps(found), "")


def test_every_declared_machine_one_docker_call_for_all_labs(tmp_path: Path) -> None:
    a, b = LabPaths(tmp_path / "a"), LabPaths(tmp_path / "b")
    spec_a, spec_b = topology("nodes", count=3, name="a"), topology("nodes", count=1, name="b")
    record(a, spec_a, {"node1": NODE1, "node2": NODE2})
    record(b, spec_b, {"node1": "c" * 64})
    calls: list[list[str]] = []

    def run(argv: Sequence[str]) -> Completed:
        calls.append(list(argv))
        return inspect_answer({NODE1: "running", NODE2: "exited", "c" * 64: "running"})

    def no_vagrant(paths: LabPaths) -> dict[str, ps.LiveState]:
        raise AssertionError("vagrant asked although docker answered")

    got_a, got_b = ps.ask([(a, spec_a), (b, spec_b)], run, no_vagrant)
    assert len(calls) == 1 and sorted(calls[0][4:]) == sorted([NODE1, NODE2, "c" * 64])
    assert {n: s.state for n, s in got_a.states.items()} == {
        "node1": "running",
        "node2": "stopped",
        "node3": "not_created",  # declared, never created: no id
    }
    assert got_a.running() == ["node1"] and got_a.asked == "docker" and not got_a.note
    assert got_b.running() == ["node1"]


def test_no_answer_asks_vagrant_status_and_says_so(tmp_path: Path) -> None:
    paths = LabPaths(tmp_path / "a")
    spec = topology("nodes", count=2, name="a")
    record(paths, spec, {"node1": NODE1, "node2": NODE2})
    told = {"node1": ps.LiveState("node1", "running", "docker")}
    (got,) = ps.ask([(paths, spec)], lambda argv: CONFUSED, lambda p: told)
    assert got.asked == "vagrant status"
    assert got.note.startswith("docker: Error response from daemon: something odd")
    assert got.note.endswith("asked vagrant status instead")
    assert got.states["node1"].running and got.states["node2"].state == "unknown"


def test_a_missing_tool_is_no_answer_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = LabPaths(tmp_path / "a")
    spec = topology("nodes", count=1, name="a")
    record(paths, spec, {"node1": NODE1})
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    (got,) = ps.ask([(paths, spec)], vagrant=lambda p: {})
    assert got.note == "docker is not installed; asked vagrant status instead"


def test_failing_vagrant_status_raises_unless_tolerant(tmp_path: Path) -> None:
    paths = LabPaths(tmp_path / "a")
    spec = topology("nodes", count=1, name="a")
    record(paths, spec, {"node1": NODE1})

    def broken(p: LabPaths) -> dict[str, ps.LiveState]:
        raise VagrantError("There is a syntax error in the following Vagrantfile")

    with pytest.raises(VagrantError):
        ps.ask([(paths, spec)], lambda argv: CONFUSED, broken)
    (got,) = ps.ask([(paths, spec)], lambda argv: CONFUSED, broken, tolerant=True)
    assert got.states["node1"].state == "unknown" and "syntax error" in got.note


def test_nothing_created_asks_nobody(tmp_path: Path) -> None:
    paths = LabPaths(tmp_path / "a")
    spec = topology("nodes", count=2, name="a")
    record(paths, spec, {})

    def run(argv: Sequence[str]) -> Completed:
        raise AssertionError("nothing to ask")

    (got,) = ps.ask([(paths, spec)], run, lambda p: {})
    assert {s.state for s in got.states.values()} == {"not_created"}


# ---------------------------------------------------------------- sessions


@pytest.fixture
def stopped_node2(home: Path, monkeypatch: pytest.MonkeyPatch) -> LabHome:
    """Lab `a`: node1 running, node2 stopped behind labctl's back, node3 never made."""
    lab_home = LabHome(home)
    spec = topology("nodes", count=3, name="a")
    record(lab_home.paths("a"), spec, {"node1": NODE1, "node2": NODE2})
    answer = inspect_answer({NODE1: "running", NODE2: "exited"})
    monkeypatch.setattr(ps, "run_tool", lambda argv: answer)
    return lab_home


def test_fan_out_names_every_machine_not_running(
    stopped_node2: LabHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labctl.session import group
    from labctl.session.group import LabSession, MachineDown
    from labctl.transport.interface import Endpoint

    from ..fakes import FakeTransport

    reached: list[str] = []

    class Reached(group.GuestBackend):
        """The provider's own states (what is tested); guests that answer nothing."""

        def endpoints(self, paths, refresh, running, every, deadline):
            return {n: Endpoint(n, "192.0.2.10", 22, "vagrant", "/dev/null") for n in running}

        def connect(self, endpoint, host_keys, connect_timeout, deadline):
            reached.append(endpoint.name)
            return FakeTransport(endpoint.name)

    monkeypatch.setattr(group, "BACKEND", Reached())
    with LabSession(stopped_node2, "a") as session:
        names = session.select(role="containerd")
        outcomes = session.each(names, lambda t: f"hello from {t.name}")
    assert names == ["node1", "node2", "node3"]  # every declared machine is expected
    assert reached == ["node1"]  # only the running one is contacted
    assert [o.vm for o in outcomes] == ["node1", "node2", "node3"]
    assert outcomes[0].value == "hello from node1"
    assert isinstance(outcomes[1].error, MachineDown)
    assert outcomes[1].error.message == "node2: not running (docker state: exited) — labctl up a"
    assert outcomes[2].error is not None
    assert (
        outcomes[2].error.message == "node3: not running (docker state: not created) — labctl up a"
    )
    assert outcomes[1].error.exit_code == 1


def test_named_machines_limit_what_is_expected(stopped_node2: LabHome) -> None:
    from labctl.session.group import LabSession

    with LabSession(stopped_node2, "a") as session:
        assert session.select(["node1"]) == ["node1"]
        assert session.down(["node1"]) == []
        assert [o.vm for o in session.down(["node1", "node2", "node3"])] == ["node2", "node3"]


def test_status_and_ls_read_the_provider(cli, stopped_node2: LabHome, monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no vagrant: it is not asked
    ran = cli("status", "a", "--json", "-v")
    assert ran.code == 0, ran.stderr
    assert [(r["name"], r["state"]) for r in json.loads(ran.stdout)] == [
        ("node1", "running"),
        ("node2", "stopped"),
        ("node3", "not_created"),
    ]
    assert "a: states from docker itself" in ran.stderr
    listed = cli("ls", "--json")
    assert [(r["lab"], r["state"]) for r in json.loads(listed.stdout)] == [
        ("a", "running"),
        ("a", "stopped"),
        ("a", "not_created"),
    ]

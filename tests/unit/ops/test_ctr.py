"""`labctl ctr` use cases through fake guests answering with captured ctr 1.6
output: the commands each sends, and what it makes of every answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.errors import TimedOut
from labctl.guest import ctr
from labctl.lab.home import LabHome
from labctl.ops import ctr as ops
from labctl.session.group import MachineDown

from ..fakes import FakeTransport, Reply, argv_has, argv_starts, data, data_err, install
from ..labs import topology

ALL = argv_starts("sh", "-c", ctr.PS_SCRIPT)
NOT_FOUND = Reply(stderr=data_err("ctr/err-container-not-found.txt"), exit_code=1)


@pytest.fixture
def lab(home: Path, monkeypatch: pytest.MonkeyPatch):
    """nodes: three containerd machines; node3 is stopped."""
    spec = topology("nodes", count=3, name="demo")

    def make(*fakes: FakeTransport, down: tuple[str, ...] = ("node3",)):
        return install(monkeypatch, home, spec, fakes, {m: "stopped" for m in down})

    return make


def target(*machines: str, **kw: object) -> ops.Target:
    return ops.Target("demo", tuple(machines), **kw)  # type: ignore[arg-type]


def test_ps_asks_every_machine_once_and_names_the_one_down(lab, home: Path) -> None:
    guests = lab(
        *(FakeTransport(n).on(ALL, Reply(data("ctr/ps-all.txt"))) for n in ("node1", "node2"))
    )
    found = ops.run(LabHome(home), target(), "ps")
    assert [o.vm for o in found] == ["node1", "node2", "node3"]
    assert [(t.namespace, t.container, t.status) for t in found[0].value or []] == [
        ("default", "test", "RUNNING"),
        ("other", "svc", "RUNNING"),
    ]
    assert isinstance(found[2].error, MachineDown)
    assert "node3: not running" in found[2].error.message
    for name in ("node1", "node2"):
        assert [(s.argv, s.sudo) for s in guests[name].sent] == [(ctr.ps(), True)]
    assert guests["node3"].sent == []


def test_ctrs_own_error_is_the_message(lab, home: Path) -> None:
    lab(FakeTransport("node1").on(argv_has("containers", "info"), NOT_FOUND))
    (found,) = ops.run(LabHome(home), target("node1"), "containers info", cid="nope")
    assert found.error is not None
    assert found.error.message == 'node1: ctr: container "nope" in namespace "default": not found'


def test_a_command_past_its_time_limit_is_exit_124(lab, home: Path) -> None:
    guests = lab(FakeTransport("node1").on(argv_has("tasks", "ls"), Reply(exit_code=124)))
    (found,) = ops.run(LabHome(home), target("node1", timeout=5), "tasks ls")
    assert isinstance(found.error, TimedOut) and found.error.exit_code == 124
    assert guests["node1"].sent[0].timeout == 5


def test_a_detached_start_keeps_stdin_open_a_foreground_run_does_not(lab, home: Path) -> None:
    guests = lab(FakeTransport("node1").on(argv_starts("ctr"), Reply()))
    ops.run(LabHome(home), target("node1"), "tasks start", cid="web", detach=True)
    busybox = "docker.io/library/busybox:latest"
    ops.run(
        LabHome(home), target("node1"), "run", ref=busybox, cid="job", command=["true"], rm=True
    )
    start, run = guests["node1"].sent
    assert start.argv == ctr.tasks_start("default", "web", True) and start.hold_stdin
    assert "--rm" in run.argv and not run.hold_stdin


def test_a_namespace_not_empty_says_what_is_left(lab, home: Path) -> None:
    guests = lab(
        FakeTransport("node1")
        .on(
            argv_starts(*ctr.namespaces_rm("other")),
            Reply(stderr=data_err("ctr/err-namespace-not-empty.txt"), exit_code=1),
        )
        .on(argv_has("tasks", "ls"), Reply(data("ctr/t-ls.txt")))
        .on(argv_has("containers", "ls"), Reply(data("ctr/c-ls.txt")))
        .on(argv_has("images", "ls"), Reply(data("ctr/images-ls.txt")))
    )
    (found,) = ops.run(LabHome(home), target("node1"), "namespaces rm", name="other")
    assert found.error is not None
    assert found.error.message == (
        "node1: namespace 'other' is not empty: 1 task (test); 1 container (test); "
        "1 image (docker.io/labctl/busybox:latest)"
    )
    assert [s.argv[3:5] for s in guests["node1"].sent[1:]] == [
        ["tasks", "ls"],
        ["containers", "ls"],
        ["images", "ls"],
    ]


def test_an_image_is_copied_imported_and_its_copy_removed_even_on_failure(
    lab, home: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "busybox.tar"
    archive.write_bytes(b"an OCI archive")
    guests = lab(
        FakeTransport("node1")
        .on(
            argv_has("images", "import"),
            Reply("unpacking docker.io/labctl/busybox:latest...done\n"),
        )
        .on(argv_starts("rm"), Reply()),
        FakeTransport("node2")
        .on(argv_has("images", "import"), Reply(stderr="ctr: not an archive\n", exit_code=1))
        .on(argv_starts("rm"), Reply()),
    )
    ok, failed = ops.images_import(LabHome(home), target("node1", "node2"), archive, None)
    assert ok.value and "unpacking" in ok.value
    assert failed.error is not None and failed.error.message == "node2: ctr: not an archive"
    for g in (guests["node1"], guests["node2"]):
        put, imported, removed = g.sent
        remote = put.argv[1]
        assert put.argv[2] == "600" and put.stdin == b"an OCI archive"
        assert imported.sudo and remote in imported.argv
        assert removed.argv == ["rm", "-f", remote]


def test_remove_stops_the_unit_kills_the_task_then_removes_all(lab, home: Path) -> None:
    unit = ctr.unit_name("default", "test")
    guests = lab(
        FakeTransport("node1")
        .on(argv_starts("test", "-e"), Reply())
        .on(argv_starts("systemctl"), Reply())
        .on(argv_starts("rm", "-f"), Reply())
        .on(argv_has("tasks", "ls"), Reply(data("ctr/t-ls.txt")))
        .on(argv_starts(*ctr.tasks_kill("default", "test", "SIGKILL")), Reply())
        .on(argv_starts(*ctr.tasks_rm("default", "test", force=True)), Reply())
        .on(argv_starts(*ctr.containers_rm("default", "test")), Reply())
    )
    (found,) = ops.rm(LabHome(home), target("node1"), "test")
    assert found.value == "removed"
    assert guests["node1"].commands() == [
        ["test", "-e", f"{ctr.UNIT_DIR}/{unit}"],
        ["systemctl", "disable", "--now", unit],
        ["rm", "-f", f"{ctr.UNIT_DIR}/{unit}"],
        ["systemctl", "daemon-reload"],
        ctr.tasks_ls("default"),
        ctr.tasks_kill("default", "test", "SIGKILL"),
        ctr.tasks_rm("default", "test", force=True),
        ctr.containers_rm("default", "test"),
    ]


def test_remove_if_exists_takes_a_missing_container_as_done(lab, home: Path) -> None:
    missing = Reply(stderr=data_err("ctr/err-container-rm-missing.txt"), exit_code=1)
    other = Reply(stderr="ctr: failed to delete container: permission denied\n", exit_code=1)
    lab(
        *(
            FakeTransport(name)
            .on(argv_starts("test", "-e"), Reply(exit_code=1))
            .on(argv_has("tasks", "ls"), Reply())
            .on(argv_starts(*ctr.containers_rm("default", "test")), answer)
            for name, answer in (("node1", missing), ("node2", other))
        )
    )
    gone, refused = ops.rm(LabHome(home), target("node1", "node2"), "test", if_exists=True)
    assert gone.value == "absent"
    assert refused.error is not None and "permission denied" in refused.error.message
    (plain,) = ops.rm(LabHome(home), target("node1"), "test")
    assert plain.error is not None
    assert plain.error.message == 'node1: ctr: container "test" in namespace "default": not found'


def test_a_service_is_not_written_for_a_container_that_is_not_there(lab, home: Path) -> None:
    guests = lab(FakeTransport("node1").on(argv_has("containers", "info"), NOT_FOUND))
    (found,) = ops.service(LabHome(home), target("node1"), "nope")
    assert found.error is not None and "not found" in found.error.message
    assert guests["node1"].files == {}  # nothing written


def test_a_service_unit_is_written_then_enabled_and_started(lab, home: Path) -> None:
    unit = ctr.unit_name("default", "test")
    guests = lab(
        FakeTransport("node1")
        .on(argv_has("containers", "info"), Reply(data("ctr/c-info.txt")))
        .on(argv_starts("systemctl"), Reply())
    )
    (found,) = ops.service(LabHome(home), target("node1"), "test")
    assert found.value == unit
    g = guests["node1"]
    assert g.files[f"{ctr.UNIT_DIR}/{unit}"] == ctr.service_unit("default", "test").encode()
    assert [c for c in g.commands() if c[0] == "systemctl"] == [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", unit],
        ["systemctl", "restart", unit],
    ]


def test_pull_expands_a_short_name_and_an_exec_gets_an_id(lab, home: Path) -> None:
    guests = lab(FakeTransport("node1").on(argv_starts("ctr"), Reply()))
    full, _ = ops.images_pull(LabHome(home), target("node1"), "alpine")
    assert full == "docker.io/library/alpine:latest"
    chosen, _ = ops.tasks_exec(LabHome(home), target("node1"), "test", ["true"], None, False)
    assert chosen.startswith("labctl-")
    pulled, execed = guests["node1"].commands()
    assert pulled == ctr.images_pull("default", full)
    assert execed == ctr.tasks_exec("default", "test", chosen, ["true"], detach=False)

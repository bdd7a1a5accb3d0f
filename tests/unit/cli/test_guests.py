"""The commands that look inside guests, run as a user runs them (labctl's
entry point, in-process) against fake guests: what they print, in tables and
in --json, and the exit code when a machine fails or is down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.guest import ctr

from ..fakes import COMPUTERS, FakeTransport, Reply, argv_has, argv_starts, data, data_err, install
from ..labs import topology
from ..mysql_servers import checked, lab, mariadb

ALL = argv_starts("sh", "-c", ctr.PS_SCRIPT)


@pytest.fixture
def nodes(home: Path, monkeypatch: pytest.MonkeyPatch):
    spec = topology("nodes", count=2, name="demo")
    return lambda *fakes, down=(): install(
        monkeypatch, home, spec, fakes, dict.fromkeys(down, "stopped")
    )


def test_ctr_ps_table_and_json(cli, nodes) -> None:
    nodes(*(FakeTransport(n).on(ALL, Reply(data("ctr/ps-all.txt"))) for n in ("node1", "node2")))
    table = cli("ctr", "ps")
    assert table.code == 0, table.stderr
    assert "node1" in table.stdout and "svc" in table.stdout
    rows = json.loads(cli("ctr", "ps", "--json").stdout)
    assert {(r["vm"], r["container"]) for r in rows} >= {("node1", "test"), ("node2", "svc")}


def test_a_machine_down_is_named_and_the_exit_is_1(cli, nodes) -> None:
    nodes(FakeTransport("node1").on(ALL, Reply(data("ctr/ps-all.txt"))), down=("node2",))
    done = cli("ctr", "ps", "--json")
    assert done.code == 1
    rows = json.loads(done.stdout)
    assert any(r.get("vm") == "node2" and "not running" in r.get("error", "") for r in rows)
    assert "node2: not running" in done.stderr


def test_exec_on_every_machine_quotes_each_word(cli, nodes) -> None:
    guests = nodes(
        FakeTransport("node1").on(argv_starts("echo"), Reply("a b; c\n")),
        FakeTransport("node2").on(argv_starts("echo"), Reply(stderr="nope\n", exit_code=3)),
    )
    done = cli("exec", "--lab", "demo", "--json", "--", "echo", "a b; c")
    assert done.code == 1
    rows = {r["vm"]: r for r in json.loads(done.stdout)}
    assert rows["node1"]["rc"] == 0 and rows["node1"]["stdout"] == "a b; c\n"
    assert rows["node2"]["rc"] == 3
    assert guests["node1"].sent[0].argv == ["echo", "a b; c"]  # one word, never split by a shell


@pytest.fixture
def db(home: Path, monkeypatch: pytest.MonkeyPatch):
    """A mysql-pair lab with two replicas, as captured (192.168.56)."""
    spec = topology("mysql-pair", replicas=2, name="db", subnet="192.168.56")
    return lambda *fakes: install(monkeypatch, home, spec, fakes)


def test_mysql_commands_print_what_the_servers_say(cli, db) -> None:
    db(
        mariadb("primary", "primary"),
        mariadb("replica1", "replica"),
        mariadb("replica2", "replica"),
    )
    roles = cli("mysql", "role", "--lab", "db", "--json")
    assert roles.code == 0, roles.stderr
    assert [(r["vm"], r["role"]) for r in json.loads(roles.stdout)] == [
        ("primary", "primary"),
        ("replica1", "replica"),
        ("replica2", "replica"),
    ]
    verify = cli("mysql", "verify", "--lab", "db")
    assert verify.code == 0 and "replica1" in verify.stdout
    status = cli("mysql", "status", "--lab", "db", "--json")
    assert status.code == 0 and "mysql-bin.000001" in status.stdout
    table = cli("mysql", "role", "--lab", "db")
    assert "primary" in table.stdout and "192.168.56.20" in table.stdout


def test_jenkins_status_reads_the_rest_api_with_the_password_on_stdin(
    cli, home: Path, monkeypatch
) -> None:
    spec = topology("jenkins", agents=2, name="ci")
    answers = iter(
        [
            Reply('{"mode":"NORMAL"}\n200'),
            Reply(json.dumps(COMPUTERS) + "\n200"),
        ]
    )
    boss = spec.machines[0].name
    controller = (
        FakeTransport(boss)
        .on(argv_starts("sh", "-c"), Reply())
        .on(argv_starts("curl"), lambda argv, stdin: next(answers))
    )
    install(monkeypatch, home, spec, [controller])
    secret = home / "ci" / "secrets" / "jenkins-admin-password"
    secret.parent.mkdir(parents=True)
    secret.write_text("pa55word\n")
    done = cli("jenkins", "status", "--lab", "ci", "--json")
    assert done.code == 1, done.stderr  # agent2 is offline
    report = json.loads(done.stdout)
    assert "agent2" in json.dumps(report) and "pa55word" not in done.stdout + done.stderr
    curls = [s for s in controller.sent if s.argv[0] == "curl"]
    assert len(curls) == 2 and all(b"pa55word" in s.stdin for s in curls)
    assert not any("pa55word" in " ".join(s.argv) for s in controller.sent)


def test_inventory_and_graph_from_what_the_servers_say(cli, db) -> None:
    """A lab handed to the user's tools groups the mysql servers by their live
    roles, and the picture shows each replication edge and each machine's
    containerd tasks."""
    guests = [
        mariadb(name, "primary" if name == "primary" else "replica").on(
            ALL, Reply(data("ctr/ps-all.txt"))
        )
        for name in ("primary", "replica1", "replica2")
    ]
    db(*guests)
    inventory = cli("inventory", "db", "--format", "json")
    assert inventory.code == 0, inventory.stderr
    groups = json.loads(inventory.stdout)["all"]["children"]
    assert list(groups["mysql_primary"]["hosts"]) == ["primary"]
    assert list(groups["mysql_replica"]["hosts"]) == ["replica1", "replica2"]
    graph = cli("graph", "db", "--format", "mermaid")
    assert graph.code == 0, graph.stderr
    assert "primary" in graph.stdout and "replica2" in graph.stdout
    declared = cli("inventory", "db", "--declared", "--format", "json")
    assert declared.code == 0
    assert all(g.sent for g in guests)  # the live run asked each guest


def _ctr_answer(argv: list[str], stdin: bytes) -> Reply:
    """ctr 1.6 as captured, for whatever a command asks."""
    words = " ".join(argv)
    for asked, captured in (
        ("namespaces ls", "ctr/ns-ls.txt"),
        ("images ls", "ctr/images-ls.txt"),
        ("containers ls", "ctr/c-ls.txt"),
        ("containers info", "ctr/c-info.txt"),
        ("tasks ls", "ctr/t-ls.txt"),
        ("tasks ps", "ctr/t-ps.txt"),
    ):
        if asked in words:
            return Reply(data(captured))
    return Reply()


CTR_COMMANDS = [
    (["ctr", "ns", "ls"], "default"),
    (["ctr", "ns", "create", "team"], "node2: namespace team created"),
    (["ctr", "ns", "rm", "team"], "node2: namespace team removed"),
    (["ctr", "images", "ls"], "docker.io/labctl/busybox:latest"),
    (["ctr", "images", "pull", "alpine"], "docker.io/library/alpine:latest"),
    (["ctr", "images", "rm", "alpine"], "node2: removed alpine"),
    (["ctr", "images", "mount", "alpine", "/mnt"], "node2: ok"),
    (["ctr", "images", "unmount", "/mnt"], "node2: ok"),
    (["ctr", "c", "ls"], "io.containerd.runc.v2"),
    (["ctr", "c", "create", "alpine", "web", "--", "sleep", "9"], "node2: container web created"),
    (["ctr", "c", "info", "test"], "test"),
    (["ctr", "c", "rm", "web"], "node2: container web removed"),
    (["ctr", "t", "ls"], "RUNNING"),
    (["ctr", "t", "start", "-d", "web"], "node2: task web started"),
    (["ctr", "t", "exec", "--exec-id", "x1", "web", "--", "true"], "node2: x1 started in web"),
    (["ctr", "t", "ps", "test"], "1060   pro3"),
    (["ctr", "t", "kill", "web"], "node2: sent SIGTERM to web"),
    (["ctr", "t", "rm", "web"], "node2: task web deleted"),
    (["ctr", "run", "alpine", "job", "--", "true"], "node2: job running"),
    (["ctr", "rm", "web"], "node2: web removed"),
    (["ctr", "rm", "web", "--if-exists"], "node2: web removed"),
    (["ctr", "service", "test"], "node2: labctl-ctr-default-test.service enabled and running"),
]


@pytest.mark.parametrize(
    ("argv", "shown"), CTR_COMMANDS, ids=lambda a: " ".join(a) if isinstance(a, list) else None
)
def test_every_ctr_command_on_every_machine(cli, nodes, argv: list[str], shown: str) -> None:
    guests = nodes(
        *(
            FakeTransport(n)
            .on(argv_starts("ctr"), _ctr_answer)
            .on(argv_starts("test"), Reply(exit_code=1))
            .on(argv_starts("systemctl"), Reply())
            for n in ("node1", "node2")
        )
    )
    done = cli(*argv)
    assert done.code == 0, done.stderr
    assert shown in done.stdout + done.stderr
    for g in guests.values():
        assert g.sent and all(s.sudo for s in g.sent if s.argv[0] == "ctr")


def test_mysql_check_and_sql_as_printed(cli, db) -> None:
    db(checked("primary", "111"), checked("replica1", "111"), checked("replica2", "999"))
    done = cli("mysql", "check", "--lab", "db", "--rows", "10")
    assert done.code == 1  # replica2 differs
    assert "replica2: labctl_check.rows_written differs from primary" in done.stderr + done.stdout
    report = json.loads(cli("mysql", "check", "--lab", "db", "--rows", "10", "--json").stdout)
    assert report["problems"] and not report["ok"]
    assert {r["vm"] for r in report["tables"]} == {
        "primary",
        "replica1",
        "replica2",
    }
    shown = cli("mysql", "sql", "replica1", "SHOW SLAVE STATUS", "--lab", "db")
    assert shown.code == 0 and "192.168.56.20" in shown.stdout


def test_mysql_switchover_as_printed_and_its_exit_codes(
    cli, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers = lab(home, monkeypatch)
    done = cli("mysql", "switchover", "--to", "replica2", "--lab", "db")
    assert done.code == 0, done.stderr
    said = done.stderr.splitlines()
    assert said[0] == "   primary | read-only: it takes no more writes"  # each step, by machine
    assert said[-2].startswith("replica2 is the primary (was primary); ")
    assert said[-1] == "replication: replica2 -> primary, replica1"
    assert servers["replica2"].read_only is False
    refused = cli("mysql", "switchover", "--to", "replica2", "--lab", "db")
    assert refused.code == 2
    assert refused.stderr.splitlines()[0] == "labctl: error: replica2 is a primary already"
    back = cli("mysql", "switchover", "--lab", "db", "--json")  # the most advanced: the first
    assert back.code == 0 and json.loads(back.stdout)["new"] == "primary"


def test_mysql_info_at_a_glance(cli, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab(home, monkeypatch)
    shown = cli("mysql", "info", "--lab", "db", "--json")
    assert shown.code == 0, shown.stderr
    rows = {r["vm"]: r for r in json.loads(shown.stdout)}
    assert rows["primary"]["role"] == "primary" and rows["primary"]["read_only"] is False
    assert rows["replica1"]["role"] == "replica" and rows["replica1"]["read_only"] is True
    assert rows["replica1"]["source_host"] == "192.168.56.20"
    assert rows["replica1"]["server_id"] == 21 and rows["replica1"]["queries_per_s"] == 2.0
    assert rows["primary"]["gtid_written"] == "0-20-105" and rows["primary"]["schemas"] == ["app"]
    assert rows["primary"]["data_bytes"] == 1572864 and rows["primary"]["uptime_s"] == 3600
    table = cli("mysql", "info", "--lab", "db", "replica2")
    assert table.code == 0
    line = next(ln for ln in table.stdout.splitlines() if ln.startswith("replica2"))
    assert line.split()[:5] == ["replica2", "10.11.18", "replica", "closed", "22"]
    assert "1h0m" in line and "1.5 MiB" in line


def test_mysql_info_carries_every_figure_of_the_field_notes(
    cli, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab(home, monkeypatch)
    shown = cli("mysql", "info", "--lab", "db", "--json")
    assert shown.code == 0, shown.stderr
    rows = {r["vm"]: r for r in json.loads(shown.stdout)}
    for r in rows.values():
        assert r["log_bin"] == "ON" and r["binlog_format"] == "ROW"
        assert (r["binlog_retention_s"], r["binlog_retention_from"]) == (
            864000,
            "binlog_expire_logs_seconds",
        )
        assert set(r["stat"]) == {
            "threads",
            "questions",
            "slow_queries",
            "opens",
            "flush_tables",
            "open_tables",
            "queries_per_s_avg",
        }
        assert [b["name"] for b in r["binlogs"]] == ["mysql-bin.000001", "mysql-bin.000002"]
        assert r["binlogs"][0]["age_s"] == 3600 and r["binlogs"][1]["age_s"] == 0
        assert r["non_innodb_tables"] == [] and r["findings"] == []
        assert r["repl_accounts"] == [{"user": "repl", "host": "192.168.56.%"}]
    # who replicates from the primary, as it sees them; the mode its replicas tell
    threads = rows["primary"]["replicas_connected"]
    assert [(t["replica"], t["host"], t["user"], t["mode"]) for t in threads] == [
        ("replica1", "192.168.56.21", "repl", "file"),
        ("replica2", "192.168.56.22", "repl", "file"),
    ]
    assert rows["replica1"]["replicas_connected"] == []
    assert rows["replica1"]["source_log_file"] == "mysql-bin.000002"
    assert rows["replica1"]["replica_mode"] == "file"
    # grouped tables, each readable in 100 columns
    table = cli("mysql", "info", "--lab", "db")
    assert table.code == 0 and max(map(len, table.stdout.splitlines())) <= 100
    heads = [ln.split()[0] for ln in table.stdout.split("\n\n")]
    assert heads == ["VM", "VM", "VM", "VM", "SOURCE", "VM"]
    thread = next(ln for ln in table.stdout.split("\n\n")[4].splitlines() if "replica1" in ln)
    assert thread.split()[:4] == ["primary", "replica1", "repl", "file"]
    assert thread.endswith("Master has sent all binlog to slave; waiting for more updates")


def test_mysql_info_warns_of_a_myisam_table_and_a_grant_from_anywhere(
    cli, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers = lab(home, monkeypatch)
    servers["replica2"].myisam = ["legacy"]
    servers["primary"].repl_host = "%"
    shown = cli("mysql", "info", "--lab", "db", "--json")
    assert shown.code == 0, shown.stderr  # warnings do not fail it
    rows = {r["vm"]: r for r in json.loads(shown.stdout)}
    assert rows["replica2"]["non_innodb_tables"] == [
        {"schema": "app", "name": "legacy", "engine": "MyISAM"}
    ]
    [myisam] = rows["replica2"]["findings"]
    assert myisam["level"] == "warning" and myisam["vms"] == ["replica2"]
    assert myisam["message"].startswith("app.legacy is MyISAM: not crash-safe for replication")
    [grant] = rows["primary"]["findings"]
    assert grant["message"].startswith("repl@% may replicate from any host")
    said = cli("mysql", "info", "--lab", "db").stderr.splitlines()
    assert said[0].startswith("replica2: app.legacy is MyISAM") or said[1].startswith(
        "replica2: app.legacy is MyISAM"
    )
    assert any(s.startswith("primary: repl@% may replicate from any host") for s in said)


def test_mysql_info_fails_on_two_servers_with_one_server_id(
    cli, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers = lab(home, monkeypatch)
    servers["replica1"].server_id = 20  # the primary's
    shown = cli("mysql", "info", "--lab", "db", "--json")
    assert shown.code == 1
    rows = {r["vm"]: r for r in json.loads(shown.stdout)}
    assert [f["vms"] for f in rows["primary"]["findings"]] == [["primary", "replica1"]]
    assert [f["vms"] for f in rows["replica1"]["findings"]] == [["replica1", "primary"]]
    assert rows["replica2"]["findings"] == []
    table = cli("mysql", "info", "--lab", "db")
    assert table.code == 1
    errors = [ln for ln in table.stderr.splitlines() if ln.startswith("labctl: error:")]
    assert errors == [
        "labctl: error: primary: server_id 20 is on both primary and replica1: each server "
        "needs its own (a replica skips the events that carry its own id)"
    ]


def test_mysql_info_answers_for_the_others_when_one_server_is_down(
    cli, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers = lab(home, monkeypatch)
    servers["replica2"].dead = True
    shown = cli("mysql", "info", "--lab", "db", "--json")
    assert shown.code == 1
    rows = json.loads(shown.stdout)
    assert [r["vm"] for r in rows] == ["primary", "replica1", "replica2"]
    assert "version" in rows[0] and "version" in rows[1]
    assert rows[2]["error"].startswith("replica2: the MySQL/MariaDB server is not running")
    assert "labctl: error: replica2: the MySQL/MariaDB server is not running" in shown.stderr


def test_mysql_info_retention_margin(cli, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The primary keeps binlogs 10 days: no replica is near that, unless the
    margin is wider than the retention itself."""
    lab(home, monkeypatch)
    assert cli("mysql", "info", "--lab", "db").stderr == ""
    wide = cli("mysql", "info", "--lab", "db", "--retention-margin", "900000")
    assert wide.code == 0
    assert wide.stderr.splitlines() == [
        f"{r}: 0 s behind primary, which keeps binlogs only 10 d (the margin: 10 d 10 h): "
        "a replica stopped or behind longer cannot catch up"
        for r in ("replica1", "replica2")
    ]
    assert cli("mysql", "info", "--lab", "db", "--retention-margin", "-1").code == 2


def test_ctr_rm_if_exists_of_a_container_that_is_not_there_succeeds(cli, nodes) -> None:
    missing = Reply(stderr=data_err("ctr/err-container-rm-missing.txt"), exit_code=1)
    nodes(
        *(
            FakeTransport(n)
            .on(argv_starts("test"), Reply(exit_code=1))
            .on(argv_has("tasks", "ls"), Reply())
            .on(argv_has("containers", "rm"), missing)
            for n in ("node1", "node2")
        )
    )
    done = cli("ctr", "rm", "test", "--if-exists")
    assert (done.code, done.stdout) == (0, "node1: test was not there\nnode2: test was not there\n")
    assert cli("ctr", "rm", "test").code == 1

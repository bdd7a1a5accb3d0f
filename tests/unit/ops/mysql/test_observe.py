"""`labctl mysql` use cases through fake guests answering with MariaDB 10.11's
captured output (tests/data/mysql): which statements each sends, and what it
makes of every answer, failures included."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labctl.errors import SpecError
from labctl.lab.home import LabHome
from labctl.ops.mysql import observe as ops

from ...fakes import FakeTransport, Reply, data, install, sql_has
from ...labs import topology
from ...mysql_servers import NO_ROWS, checked, mariadb


@pytest.fixture
def pair(home: Path, monkeypatch: pytest.MonkeyPatch):
    spec = topology("mysql-pair", replicas=2, name="db", subnet="192.168.56")

    def make(*fakes: FakeTransport, down: tuple[str, ...] = ()):
        return install(monkeypatch, home, spec, fakes, {m: "stopped" for m in down})

    return make


def statements(t: FakeTransport) -> list[str]:
    return [s.sql.strip() for s in t.sent]


def test_roles_from_what_each_server_says(pair, home: Path) -> None:
    pair(
        mariadb("primary", "primary"),
        mariadb("replica1", "replica"),
        mariadb("replica2", "replica"),
    )
    rows = {o.vm: o.value for o in ops.roles(LabHome(home), "db")}
    assert rows["primary"].role == "primary"
    assert rows["primary"].replicas == ["mysql-replica2", "mysql-replica1"]
    assert rows["replica1"].role == "replica" and rows["replica1"].source_host == "192.168.56.20"
    assert (rows["replica1"].io_running, rows["replica1"].seconds_behind) == ("Yes", 0)


def test_every_statement_runs_as_root_on_the_clients_stdin(pair, home: Path) -> None:
    """No SQL on a command line: it would show in the guest's process list."""
    guests = pair(
        mariadb("primary", "primary"),
        mariadb("replica1", "replica"),
        mariadb("replica2", "replica"),
    )
    ops.roles(LabHome(home), "db")
    assert sorted(guests) == ["primary", "replica1", "replica2"]
    for g in guests.values():  # each server was asked its version and its replication
        said = statements(g)
        assert any("SELECT VERSION()" in x for x in said), said
        assert any("SHOW SLAVE STATUS" in x for x in said), said
    for g in guests.values():
        for sent in g.sent:
            assert sent.argv == ["mysql", "--batch", "--unbuffered"] and sent.sudo
            assert sent.sql


def test_verify_judges_each_declared_edge(pair, home: Path) -> None:
    broken = (
        FakeTransport("replica2")
        .on(sql_has("SELECT VERSION()"), Reply(data("mysql/mariadb-version.tab.txt")))
        .on(sql_has("SHOW SLAVE STATUS"), NO_ROWS)
    )
    pair(mariadb("primary", "primary"), mariadb("replica1", "replica"), broken)
    edges, down = ops.verify(LabHome(home), "db")
    assert [(e.replica, e.source, e.status) for e in edges] == [
        ("replica1", "primary", "ok"),
        ("replica2", "primary", "broken"),
    ]
    assert edges[1].detail == "not replicating from anything" and down == []


def test_a_server_down_is_named_not_hidden(pair, home: Path) -> None:
    pair(mariadb("primary", "primary"), mariadb("replica1", "replica"), down=("replica2",))
    edges, down = ops.verify(LabHome(home), "db")
    assert [o.vm for o in down] == ["replica2"]
    assert "replica2: not running" in (down[0].error.message if down[0].error else "")
    assert [e.status for e in edges] == ["ok", "broken"]


def test_status_of_sources_and_replicas(pair, home: Path) -> None:
    pair(
        mariadb("primary", "primary"),
        mariadb("replica1", "replica"),
        mariadb("replica2", "replica"),
    )
    report = ops.status(LabHome(home), "db")
    assert [(s.vm, s.binlog_file, s.binlog_position) for s in report.sources] == [
        ("primary", "mysql-bin.000001", 642308)
    ]
    assert [(r.vm, r.broken) for r in report.replicas] == [("replica1", False), ("replica2", False)]
    assert report.failed == []


def test_a_failed_statement_names_the_machine_and_hides_a_password(pair, home: Path) -> None:
    failing = FakeTransport("primary").on(
        sql_has("CHANGE MASTER"),
        Reply(
            stderr="ERROR 1064 (42000) at line 1: You have an error in your SQL syntax; "
            "near 'MASTER_PASSWORD='s3cret-Pa55', MASTER_CONNECT_RETRY=2' at line 1\n",
            exit_code=1,
        ),
    )
    pair(failing)
    with pytest.raises(ops.SqlError) as exc:
        ops.sql(LabHome(home), "db", "primary", "CHANGE MASTER TO MASTER_PASSWORD='s3cret-Pa55'")
    assert exc.value.message.startswith("primary: ERROR 1064")
    assert "s3cret" not in exc.value.message and "MASTER_PASSWORD='***'" in exc.value.message


def test_sql_reads_a_vertical_answer_and_refuses_nothing(pair, home: Path) -> None:
    guests = pair(
        FakeTransport("replica1").on(
            sql_has("SHOW SLAVE STATUS"), Reply(data("mysql/mariadb-replica-status.G.txt"))
        )
    )
    rows, vertical = ops.sql(LabHome(home), "db", "replica1", "SHOW SLAVE STATUS\\G")
    assert vertical and rows[0]["Master_Host"] == "192.168.56.20"
    assert guests["replica1"].sent[0].argv[-1] == "--vertical"
    with pytest.raises(SpecError, match="no statement given"):
        ops.sql(LabHome(home), "db", "replica1", " ; ")


def test_check_writes_on_the_primary_waits_then_compares_every_table(pair, home: Path) -> None:
    """The rows and the marker go to the primary in one session; each
    replica is asked for the marker, then every server's count and checksum
    of every table are compared with the primary's."""
    guests = pair(checked("primary", "111"), checked("replica1", "111"), checked("replica2", "999"))
    report = ops.check(LabHome(home), "db", count=10)
    written = [s for s in statements(guests["primary"]) if "rows_written" in s and "INSERT" in s]
    assert len(written) == 1 and written[0].count("), (") == 9  # ten rows, one statement
    token = re.search(r"marker VALUES \('([0-9a-f]{16})'\)", written[0])
    assert token, written[0]
    for name in ("replica1", "replica2"):
        asked = [s for s in statements(guests[name]) if "marker WHERE token" in s]
        assert asked and token.group(1) in asked[0]
        assert not any("INSERT" in s for s in statements(guests[name]))  # replicas are only read
    assert report.problems == [
        "replica2: labctl_check.marker differs from primary ((10, '999') vs (10, '111'))",
        "replica2: labctl_check.rows_written differs from primary ((10, '999') vs (10, '111'))",
    ]
    assert {(r.vm, r.same) for r in report.rows} == {
        ("primary", True),
        ("replica1", True),
        ("replica2", False),
    }


def test_check_refuses_a_count_below_one(pair, home: Path) -> None:
    pair()
    with pytest.raises(SpecError, match="--rows must be at least 1"):
        ops.check(LabHome(home), "db", count=0)


def test_a_replica_is_seeded_from_a_snapshot_taken_under_the_read_lock(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """up's set-up for a replica that replicates from nothing: the replication
    account made outside the binlog; FLUSH TABLES WITH READ LOCK held in one
    session while the position is read and the dump taken; the replica loads
    it outside its own binlog, then points at that very position; the
    password only ever on a client's stdin."""
    from labctl.events import ignore
    from labctl.guest.mysql import replication as repl
    from labctl.local.deadline import Deadline
    from labctl.roles.mysql import Mysql

    order: list[str] = []

    def lock_session(stdin: bytes) -> bytes:
        text = stdin.decode()
        marker = re.search(r"SELECT '(labctl-[0-9a-f]+):end'", text)
        if not marker:
            return b""
        state = "locked" if "UNLOCK" not in text else "unlocked"
        if order[-1:] != [state]:
            order.append(state)
        return (
            f"mysql-bin.000001\t642308\t\t\n{marker.group(1)}:gtid\t0-1-77\n{marker.group(1)}:end\n"
        ).encode()

    def dump(stdin: bytes) -> bytes:
        if "dumped" not in order:
            order.append("dumped")
        return b"CREATE DATABASE app;\n"

    primary = (
        mariadb("primary", "primary")
        .on(sql_has("server_id"), Reply("Variable_name\tValue\nserver_id\t1\n"))
        .on(sql_has("CREATE USER"), Reply())
        .on(sql_has("SET GLOBAL read_only"), Reply())
        .on(sql_has("information_schema.schemata"), Reply("s\napp\n"))
        .on_start(lambda argv, _: argv[0] == "mysql", lock_session)
        .on_start(lambda argv, _: argv[0] == "mysqldump", dump)
    )
    started: list[bool] = []
    replica = (
        FakeTransport("replica1")
        .on(sql_has("SELECT VERSION()"), Reply(data("mysql/mariadb-version.tab.txt")))
        .on(sql_has("server_id"), Reply("Variable_name\tValue\nserver_id\t2\n"))
        .on(
            sql_has("SHOW SLAVE STATUS"),
            lambda argv, stdin: (
                Reply(data("mysql/mariadb-replica-status.tab.txt")) if started else NO_ROWS
            ),
        )
        .on(sql_has("STOP SLAVE"), Reply())
        .on(sql_has("gtid_binlog_state = ''"), Reply("empty\n1\n"))
        .on(sql_has("RESET MASTER"), Reply())
        .on(sql_has("SET GLOBAL read_only"), Reply())
        .on(sql_has("SET SESSION sql_log_bin=0"), Reply())
        .on(sql_has("CHANGE MASTER TO"), lambda argv, stdin: started.append(True) or Reply())
    )
    spec = topology("mysql-pair", replicas=1, name="db", subnet="192.168.56")
    install(monkeypatch, home, spec, [primary, replica])
    password = "Repl-Pa55-word"
    (home / "db" / "secrets").mkdir()
    (home / "db" / "secrets" / repl.REPL_SECRET).write_text(password + "\n")

    notes = Mysql().setup(LabHome(home), spec, ignore, Deadline())
    assert notes == ["replication: primary -> replica1"]
    assert order == ["locked", "dumped", "unlocked"]  # the dump under the lock
    lock = primary.processes[0]
    assert lock.stdin.decode().startswith("FLUSH TABLES WITH READ LOCK;")
    assert lock.stdin.decode().endswith("UNLOCK TABLES;\n") and lock.stdin_closed
    user = next(s.sql for s in primary.sent if "CREATE USER" in s.sql)
    assert user.startswith("SET SESSION sql_log_bin=0;")
    assert "'repl'@'192.168.56.%'" in user
    said = statements(replica)
    load = next(s for s in said if "CREATE DATABASE app" in s)
    assert load.startswith("SET SESSION sql_log_bin=0;")
    change = next(s for s in said if "CHANGE MASTER TO" in s)
    assert "MASTER_HOST='192.168.56.20'" in change
    assert "MASTER_LOG_FILE='mysql-bin.000001', MASTER_LOG_POS=642308" in change
    assert change.rstrip().endswith("START SLAVE;")
    # MariaDB's GTIDs follow the snapshot whatever the lab's mode: the
    # replica's binlog starts at the position it holds (a switchover's
    # replicas will ask it for that position)
    gtids = next(s for s in said if "RESET MASTER" in s)
    assert gtids.splitlines() == [
        "RESET MASTER;",
        "SET GLOBAL gtid_binlog_state = '0-1-77';",
        "SET GLOBAL gtid_slave_pos = '0-1-77';",
    ]
    assert (
        said.index(next(s for s in said if "STOP SLAVE" in s))
        < said.index(load)
        < said.index(gtids)
        < said.index(change)
    )
    # every server starts read-only: the primary is opened, the replica stays closed
    assert statements(primary)[-1] == "SET GLOBAL read_only = OFF;"
    assert said[-1] == "SET GLOBAL read_only = ON;"
    assert primary.sent and replica.sent  # each was sent its statements
    for g in (primary, replica):
        assert not any(password in " ".join(s.argv) for s in g.sent)  # never on a command line

"""`labctl mysql drill`: its options, and its accounting from a recorded run
(what the writer had acknowledged, what the servers hold afterwards)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.errors import SpecError
from labctl.guest.mysql.writer import Tally
from labctl.lab.home import LabHome
from labctl.ops.mysql import drill, failover
from labctl.session.group import LabSession

from ...mysql_servers import lab


@pytest.mark.parametrize(
    ("fault", "rate", "before", "message"),
    [
        ("reboot", 200, 3, "--fault 'reboot': one of halt, kill-mysqld, cut"),
        ("halt", 0, 3, "--rate 0: from 1 to 2000"),
        ("halt", 200, 0.1, "--before 0.1: from 0.5 to 600 seconds"),
    ],
)
def test_bad_options(fault: str, rate: float, before: float, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        drill.check_options(fault, rate, before, 3)


def test_the_accounting_of_a_recorded_run(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run as recorded: the writer had rows 0..99 acknowledged and 100 in
    doubt; the old primary had sent up to 96 when it died. The new primary
    (replica1) has 0..96 and the in-doubt row never arrived: 97, 98, 99 lost.
    replica2 has what replica1 has; a replica that lags behind is reported."""
    servers = lab(home, monkeypatch)
    servers["replica1"].rows = list(range(97))
    servers["replica2"].rows = list(range(97))
    tally = Tally(acknowledged=list(range(100)), unknown=[100], longest_gap_ms=1250)
    done = failover.FailedOver(
        "primary",
        "replica1",
        "gone",
        "0-20-200",
        "primary",
        "0-20-197",
        [],
        [],
        80,
        {"primary": "replica1", "replica2": "replica1"},
    )
    with LabSession(LabHome(home), "db") as session:
        present, lost, replicas = drill.count_rows(session, done, tally)
    assert (present, lost, replicas) == (97, [97, 98, 99], {"replica2": True})
    assert "SELECT MASTER_GTID_WAIT('0-20-105', 30) AS waited" in servers["replica2"].log
    assert servers["primary"].log == []  # stale: never counted

    servers["replica2"].rows = list(range(95))
    with LabSession(LabHome(home), "db") as session:
        assert drill.count_rows(session, done, tally)[2] == {"replica2": False}


class Lost(Exception):
    pass


def fake_pymysql(servers: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """pymysql against the fake servers: an insert lands on the server the
    writer reached and, asynchronously, on the replicas that the test lets
    catch up (`sent`: how many rows each replica has received)."""
    import sys
    import types

    by_ip = {f"192.168.56.{20 + i}": s for i, s in enumerate(servers.values())}

    class MySQLError(Exception):
        pass

    class Cursor:
        def __init__(self, server) -> None:
            self.server, self.row = server, None

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            pass

        def execute(self, sql: str, args=None) -> None:
            s = self.server
            if s.dead:
                raise MySQLError(2013, "Lost connection to server during query")
            if sql == "SELECT @@GLOBAL.read_only":
                self.row = (int(s.read_only),)
                return
            if s.read_only:
                raise MySQLError(1290, "The MariaDB server is running with the --read-only option")
            s.rows.append(args[0])
            for r in servers.values():
                if r.source and r is not s and not r.dead:
                    r.rows.append(args[0])  # replicated at once, in this fake

        def fetchone(self):
            return self.row

    class Conn:
        def __init__(self, server) -> None:
            self.server = server

        def cursor(self):
            return Cursor(self.server)

        def close(self) -> None:
            pass

    def connect(**kw):
        server = by_ip[kw["host"]]
        if server.dead:
            raise MySQLError(2003, "Can't connect")
        return Conn(server)

    fake = types.ModuleType("pymysql")
    fake.connect = connect  # type: ignore[attr-defined]
    fake.MySQLError = MySQLError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pymysql", fake)


def test_a_drill_through_fake_servers(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kill -9 of mysqld on the primary under a writer: detected, failed over
    to the replica that has the most, the writer on the new primary, and the
    count: every acknowledged row there (replication is instant here)."""
    from ...fakes import argv_starts

    servers = lab(home, monkeypatch)
    fake_pymysql(servers, monkeypatch)
    primary = servers["primary"]
    primary.read_only = False
    killed = []

    def kill(argv, stdin):
        primary.dead = True
        killed.append(argv)
        from ...fakes import Reply

        return Reply()

    from labctl.session import group as session_mod

    backend = session_mod.BACKEND
    backend.transports["primary"].on(argv_starts("sh", "-c"), kill)
    monkeypatch.setattr(drill, "DETECT_TIMEOUT", 5.0)
    report = drill.drill(LabHome(home), "db", fault="kill-mysqld", rate=400, before=0.5, after=0.5)
    assert killed == [drill.KILL_MYSQLD]
    assert (report.old, report.fault, report.semi_sync) == ("primary", "kill-mysqld", False)
    assert report.new in ("replica1", "replica2")
    assert report.acknowledged > 50 and report.present == report.acknowledged
    assert report.lost == [] and len(report.in_doubt) <= 1  # the insert the kill cut short
    assert set(report.replicas) == {"replica1", "replica2"} - {report.new}
    assert report.detect_ms >= 0 and report.write_outage_ms > 0
    statements = servers["primary"].log
    assert statements[statements.index("DROP TABLE IF EXISTS labctl_writer.acked") + 1].startswith(
        "CREATE DATABASE IF NOT EXISTS labctl_writer"
    )
    spec = LabHome(home).load("db")
    from labctl.guest.mysql import topology as topo

    assert topo.stale(spec) == ["primary"]
    # a second drill waits for the stale server to rejoin
    with pytest.raises(Exception, match="failed in an earlier failover: rejoin first"):
        drill.drill(LabHome(home), "db", fault="kill-mysqld", before=0.5, after=0.5)

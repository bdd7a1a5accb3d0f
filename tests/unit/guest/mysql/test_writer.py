"""The host-side writer against servers that change roles under it: a fake
`pymysql` whose two servers answer as MariaDB does (read-only refusal 1290,
a connection lost in a commit 2013). The real client against real guests is
the end-to-end switchover test."""

from __future__ import annotations

import sys
import time
import types
from dataclasses import dataclass, field

import pytest

from labctl.guest.mysql import writer


class MySQLError(Exception):
    pass


@dataclass
class Server:
    read_only: bool
    rows: list[int] = field(default_factory=list)
    lose_next_commit: bool = False
    down: bool = False


class Cursor:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.row: tuple[int] | None = None

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, sql: str, args: tuple[int] | None = None) -> None:
        s = self.server
        if s.down:
            raise MySQLError(2013, "Lost connection to MySQL server during query")
        if sql == "SELECT @@GLOBAL.read_only":
            self.row = (1 if s.read_only else 0,)
            return
        assert sql == f"INSERT INTO {writer.TABLE} (n) VALUES (%s)" and args is not None
        if s.read_only:
            raise MySQLError(1290, "The MariaDB server is running with the --read-only option")
        s.rows.append(args[0])
        if s.lose_next_commit:
            s.lose_next_commit = False
            s.down = True
            raise MySQLError(2013, "Lost connection to MySQL server during query")

    def fetchone(self) -> tuple[int] | None:
        return self.row


class Connection:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.closed = False

    def cursor(self) -> Cursor:
        return Cursor(self.server)

    def close(self) -> None:
        if self.closed:
            raise MySQLError(0, "Already closed")
        self.closed = True


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> dict[str, Server]:
    lab = {"10.0.0.20": Server(read_only=False), "10.0.0.21": Server(read_only=True)}
    seen: list[dict] = []

    def connect(**kw):
        seen.append(kw)
        server = lab[kw["host"]]
        if server.down:
            raise MySQLError(2003, f"Can't connect to MySQL server on '{kw['host']}'")
        return Connection(server)

    fake = types.ModuleType("pymysql")
    fake.connect = connect  # type: ignore[attr-defined]
    fake.MySQLError = MySQLError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pymysql", fake)
    lab["seen"] = seen  # type: ignore[assignment]
    return lab


def wait_for(condition, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "the writer did not get there"
        time.sleep(0.005)


def test_the_writer_follows_a_switchover_and_loses_nothing(servers) -> None:
    old, new = servers["10.0.0.20"], servers["10.0.0.21"]
    w = writer.RowWriter({"primary": "10.0.0.20", "replica1": "10.0.0.21"}, "pw", rate=500).start()
    wait_for(lambda: len(old.rows) >= 20)
    old.read_only = True  # the switchover closes the old primary...
    time.sleep(0.05)
    new.read_only = False  # ...and opens the new one
    wait_for(lambda: len(new.rows) >= 20)
    tally = w.stop()
    assert tally.servers == ["primary", "replica1"]
    assert tally.acknowledged == list(range(len(tally.acknowledged)))  # numbered, no gap
    assert sorted(old.rows + new.rows) == tally.acknowledged  # every ack is somewhere, once
    assert tally.failures >= 1 and "read-only" in tally.last_error
    assert tally.longest_gap_ms >= 40 and tally.unknown == []
    # an ordinary account, never root; short time limits on the wire
    assert {kw["user"] for kw in servers["seen"]} == {writer.USER}
    assert all(kw["connect_timeout"] == 2.0 and kw["autocommit"] for kw in servers["seen"])


def test_a_commit_lost_with_its_connection_is_counted_as_unknown(servers) -> None:
    old, new = servers["10.0.0.20"], servers["10.0.0.21"]
    w = writer.RowWriter({"primary": "10.0.0.20", "replica1": "10.0.0.21"}, "pw", rate=500).start()
    wait_for(lambda: len(old.rows) >= 5)
    old.lose_next_commit = True  # the primary dies with a commit in flight
    wait_for(lambda: old.down)
    new.read_only = False
    wait_for(lambda: len(new.rows) >= 5)
    tally = w.stop()
    assert len(tally.unknown) == 1
    lost_in_flight = tally.unknown[0]
    assert lost_in_flight in old.rows and lost_in_flight not in tally.acknowledged
    assert lost_in_flight + 1 == new.rows[0]  # the next number goes on, on the new primary
    assert sorted(tally.acknowledged + tally.unknown) == list(range(len(tally.acknowledged) + 1))


def test_the_writers_account_and_table() -> None:
    said = writer.setup_statements("192.168.56", "pw'x")
    assert said[0] == "CREATE DATABASE IF NOT EXISTS labctl_writer"
    assert "'labctl_writer'@'192.168.56.%' IDENTIFIED BY 'pw\\'x'" in said[2]
    assert said[-1] == "GRANT SELECT, INSERT ON labctl_writer.* TO 'labctl_writer'@'192.168.56.%'"

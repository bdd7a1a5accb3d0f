"""A writer on the host: numbered rows at a steady rate into whichever server
of the lab takes writes, over the lab's private network, each acknowledged
commit recorded. When its server refuses (read-only) or goes away, it looks
for the one that takes writes and goes on: an application's view of a
switchover or failover.

It connects as an ordinary account (never root): read_only stops it, as it
stops an application.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMA = "labctl_writer"
TABLE = f"{SCHEMA}.acked"
USER = "labctl_writer"
RESTING_SECONDS = 5.0


def setup_statements(subnet: str, password: str) -> list[str]:
    """The writer's table and account (run as root on the primary)."""
    from labctl.guest.mysql.rules import account

    return [
        f"CREATE DATABASE IF NOT EXISTS {SCHEMA}",
        f"CREATE TABLE IF NOT EXISTS {TABLE} (n BIGINT PRIMARY KEY, "
        "at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB",
        *account(USER, subnet, password, f"SELECT, INSERT ON {SCHEMA}.*"),
    ]


@dataclass
class Tally:
    """What the writer saw: rows acknowledged, failed attempts, the servers
    it wrote to, and the longest time between two acknowledgements."""

    acknowledged: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)  # the connection died in the commit
    failures: int = 0
    servers: list[str] = field(default_factory=list)  # in the order used
    longest_gap_ms: int = 0
    last_error: str = ""


class RowWriter:
    """Insert rows 0, 1, 2... at `rate` per second until stopped."""

    def __init__(
        self,
        servers: Mapping[str, str],  # machine -> address
        password: str,
        rate: float = 200.0,
        connect_timeout: float = 2.0,
    ) -> None:
        self.servers = dict(servers)
        self.password = password
        self.rate = rate
        self.connect_timeout = connect_timeout
        self.tally = Tally()
        self._resting: dict[str, float] = {}  # server -> until when it is not asked
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="labctl-writer", daemon=True)

    def start(self) -> RowWriter:
        self._thread.start()
        return self

    def stop(self) -> Tally:
        self._stop.set()
        self._thread.join(timeout=30)
        return self.tally

    def _writable(self) -> tuple[str, Any] | None:
        """A connection to the server that takes writes now, if any does."""
        import pymysql

        now = time.monotonic()
        for name, address in self.servers.items():
            if self._resting.get(name, 0) > now:
                continue
            try:
                conn = pymysql.connect(
                    host=address,
                    user=USER,
                    password=self.password,
                    connect_timeout=self.connect_timeout,
                    read_timeout=self.connect_timeout * 3,
                    write_timeout=self.connect_timeout * 3,
                    autocommit=True,
                )
            except Exception as exc:  # pymysql's errors, or the socket's own
                self.tally.last_error = f"{name}: {exc}"
                self._rest(name)
                continue
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT @@GLOBAL.read_only")
                    row = cur.fetchone()
            except Exception as exc:
                self.tally.last_error = f"{name}: {exc}"
                _close(conn)
                continue
            if row and int(row[0]) == 0:
                return name, conn
            _close(conn)
        return None

    def _rest(self, name: str) -> None:
        """A server that failed is not asked for a few seconds: a halted one
        costs a connect timeout each time, which would delay finding the new
        primary."""
        self._resting[name] = time.monotonic() + RESTING_SECONDS

    def _run(self) -> None:
        import pymysql

        n = 0
        conn: Any = None
        last_ack: float | None = None
        next_at = time.monotonic()
        while not self._stop.is_set():
            if conn is None:
                found = self._writable()
                if found is None:
                    self._stop.wait(0.05)
                    continue
                name, conn = found
                self.tally.servers.append(name)
            try:
                with conn.cursor() as cur:
                    cur.execute(f"INSERT INTO {TABLE} (n) VALUES (%s)", (n,))
            except Exception as exc:  # a helper thread never dies with a traceback
                code = exc.args[0] if isinstance(exc, pymysql.MySQLError) and exc.args else 0
                self.tally.failures += 1
                self.tally.last_error = str(exc)
                if code in (2006, 2013):  # lost in the commit: it may have landed
                    self.tally.unknown.append(n)
                    n += 1
                self._rest(name)
                _close(conn)
                conn = None
                continue
            now = time.monotonic()
            if last_ack is not None:
                self.tally.longest_gap_ms = max(
                    self.tally.longest_gap_ms, int((now - last_ack) * 1000)
                )
            last_ack = now
            self.tally.acknowledged.append(n)
            n += 1
            next_at = max(next_at + 1 / self.rate, now - 1)
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        if conn is not None:
            _close(conn)


def _close(conn: Any) -> None:
    """A connection closed, whatever state it is in (a dead one raises)."""
    with contextlib.suppress(Exception):  # already closed, or the peer is gone
        conn.close()

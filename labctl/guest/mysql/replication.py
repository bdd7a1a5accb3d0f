"""Replication wired and checked on live servers: the replication account,
replicas seeded from a consistent snapshot (those of one source from one,
all at once), writes opened on primaries only, and the wait until every
replica runs. `up`'s set-up (roles/mysql.py)
and the moves of a primary (ops/mysql/switchover.py, failover, rejoin) share them.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from labctl.errors import GuestError
from labctl.events import OnEvent, info
from labctl.guest.mysql import rules as mysql
from labctl.guest.mysql.session import MysqlServer, Snapshot, SqlError, dump_argv
from labctl.local.deadline import tries
from labctl.session.group import Outcome, Outcomes, fan_out

REPL_SECRET = "mysql-repl-password"  # the replication account's password, in the lab's vault
HEALTHY_TIMEOUT = 90.0


def check_identities(servers: dict[str, MysqlServer]) -> None:
    """Refuse to wire servers that share a server_id or server_uuid."""
    seen: dict[tuple[str, str], str] = {}
    for name, server in servers.items():
        names = ["server_id", "server_uuid"] if server.is_mysql else ["server_id"]
        for key, value in server.variables(*names).items():
            other = seen.get((key, value))
            if other:
                raise GuestError(
                    f"{other} and {name} share {key} {value}: refusing to set up replication"
                )
            seen[(key, value)] = name


@contextmanager
def writable(server: MysqlServer) -> Iterator[MysqlServer]:
    """MySQL's super_read_only blocks even root: lift it while labctl loads or
    configures a replica, and put it back after."""
    was_on = server.is_mysql and server.variable("super_read_only") == "ON"
    if was_on:
        server.execute("SET GLOBAL super_read_only = OFF")
    try:
        yield server
    finally:
        if was_on:
            server.execute("SET GLOBAL super_read_only = ON")


def ensure_repl_user(server: MysqlServer, subnet: str, password: str) -> None:
    with writable(server):
        server.execute(*server.sql.create_repl_user(subnet, password), log_bin=False)


def _dump(source: MysqlServer, schemas: Sequence[str], spool: IO[bytes]) -> None:
    """mysqldump of `schemas` on source, into the local `spool` file, after a
    first line that keeps the load out of the replica's own binlog."""
    spool.write(b"SET SESSION sql_log_bin=0;\n")
    dump = source.t.start(dump_argv(source.sql, schemas), sudo=True)
    try:
        while chunk := dump.read():
            spool.write(chunk)
    finally:
        done = dump.wait(timeout=60)
    if not done.ok:
        raise SqlError(f"{source.name}: mysqldump failed: {done.stderr.strip()[-300:]}")


@dataclass(frozen=True)
class Dump:
    """A consistent snapshot of a source: its position and the file its schemas
    were dumped to (empty of statements when it has none)."""

    snap: Snapshot
    schemas: list[str]
    path: Path
    size: int


class SharedDump:
    """One snapshot of `source` for every replica seeded from it at once
    (dbdeployer's --concurrent): the first replica to need it takes it, the
    others wait for it and load the same file, each through a handle of its
    own. Taken once, the read lock is held once, however many replicas. The
    file is private (a 0700 temporary folder) and goes when the block ends."""

    def __init__(self, source: MysqlServer, gtid: bool, on_event: OnEvent) -> None:
        self.source, self.gtid, self.on_event = source, gtid, on_event
        self._lock = threading.Lock()
        self._dump: Dump | None = None
        self._failed = False
        self._folder = tempfile.TemporaryDirectory(prefix="labctl-dump-")

    def __enter__(self) -> SharedDump:
        return self

    def __exit__(self, *exc: object) -> None:
        self._folder.cleanup()

    def take(self, replica: str) -> Dump:
        """The snapshot, taken now by the first caller; the others wait for it.
        Once it has failed, the others fail at once, naming it."""
        with self._lock:
            if self._failed:
                raise GuestError(
                    f"{replica}: not seeded: the snapshot of {self.source.name} failed"
                )
            if self._dump is None:
                try:
                    self._dump = self._snapshot()
                except BaseException:  # an interrupt too: nobody takes it again
                    self._failed = True
                    raise
            return self._dump

    def _snapshot(self) -> Dump:
        """FLUSH TABLES WITH READ LOCK in one session; inside it the binlog
        position (or GTID position) is read and the schemas are listed and
        dumped; then the lock goes, and the source writes on."""
        source, path = self.source, Path(self._folder.name) / "dump.sql"
        with path.open("wb") as spool, source.read_lock() as snap:
            schemas = source.user_schemas()
            said = (
                f"snapshot of {source.name} under FLUSH TABLES WITH READ LOCK: "
                f"{snap.log_file}:{snap.log_pos}"
                + (f", GTID {snap.gtid or '(none yet)'}" if self.gtid else "")
                + f"; dumping {', '.join(schemas) or 'no schemas'}"
            )
            self.on_event(info(source.name, said))
            if schemas:
                _dump(source, schemas, spool)
            size = spool.tell()
        return Dump(snap, schemas, path, size)


def seed(
    source: MysqlServer,
    replica: MysqlServer,
    source_ip: str,
    password: str,
    gtid: bool,
    on_event: OnEvent,
    fresh: bool = False,
) -> None:
    """Start `replica` from a consistent snapshot of `source` (SharedDump):
    the replica stopped, the dump loaded while the primary writes on, then
    replicating from the snapshot's position."""
    with SharedDump(source, gtid, on_event) as dump:
        seed_from(dump, replica, source_ip, password, on_event, fresh)


def seed_from(
    dump: SharedDump,
    replica: MysqlServer,
    source_ip: str,
    password: str,
    on_event: OnEvent,
    fresh: bool = False,
) -> None:
    """Start `replica` from the snapshot `dump` holds (or takes now)."""
    rs, source = replica.sql, dump.source
    with writable(replica):
        replica.execute(rs.stop_replica(), rs.reset_replica())
        taken = dump.take(replica.name)
        snap = taken.snap
        if taken.schemas:
            on_event(info(replica.name, f"loading the dump ({taken.size // 1024} KiB)"))
            with taken.path.open("rb") as spool:
                replica.feed(spool, timeout=3600)
        if replica.is_mysql and dump.gtid:
            replica.execute(rs.reset_gtids(), f"SET GLOBAL gtid_purged = {mysql.quote(snap.gtid)}")
        elif not replica.is_mysql:
            _mariadb_position(replica, snap.gtid, fresh)
        replica.execute(
            rs.change_source(source_ip, password, snap.log_file, snap.log_pos, dump.gtid),
            rs.start_replica(),
        )
    on_event(info(replica.name, f"replicating from {source.name} ({source_ip})"))


def waves(edges: dict[str, str]) -> list[list[str]]:
    """The replicas of `edges` (replica -> source) in the order they can be
    seeded: first those whose source is not itself seeded here, then those
    replicating from them, and so on down the chains (the lab refuses cycles)."""
    left, found = dict(edges), []
    while left:
        wave = [r for r, s in left.items() if s not in left] or list(left)
        found.append(wave)
        for r in wave:
            del left[r]
    return found


def seed_all(
    servers: dict[str, MysqlServer],
    edges: dict[str, str],
    ips: dict[str, str],
    password: str,
    gtid: bool,
    on_event: OnEvent,
) -> Outcomes[None]:
    """Every replica of `edges` (replica -> source) seeded, all at once: the
    replicas of one source from one snapshot of it, several sources side by
    side; a replica whose source is seeded here too waits for it. One outcome
    per replica, in the order of `edges`: one that fails leaves the others
    to finish, and a replica of it is not seeded."""

    def one_wave(replicas: list[str]) -> Outcomes[None]:
        with ExitStack() as stack:  # one snapshot per source, gone after the wave
            dumps = {
                s: stack.enter_context(SharedDump(servers[s], gtid, on_event))
                for s in dict.fromkeys(edges[r] for r in replicas)
            }
            return fan_out(
                replicas,
                lambda r: seed_from(dumps[edges[r]], servers[r], ips[edges[r]], password, on_event),
            )

    done: dict[str, Outcome[None]] = {}
    for wave in waves(edges):
        todo = []
        for r in wave:
            if edges[r] in done and not done[edges[r]].ok:
                why = f"{r}: not seeded: its source {edges[r]} failed"
                done[r] = Outcome(r, error=GuestError(why))
            else:
                todo.append(r)
        done.update((o.vm, o) for o in one_wave(todo))
    return Outcomes(done[r] for r in edges)


def _mariadb_position(replica: MysqlServer, gtid: str, fresh: bool = False) -> None:
    """MariaDB keeps GTIDs in every lab, file/position ones too: the snapshot's
    position becomes what the replica has applied and, on a server whose
    binary log is still empty (or whose history is thrown away: `fresh`),
    where its own binlog starts. A switchover's replicas ask their new
    source for that position by GTID."""
    reset = fresh or (
        bool(gtid)
        and replica.query("SELECT @@GLOBAL.gtid_binlog_state = '' AS empty")[0]["empty"] == "1"
    )
    statements = ["RESET MASTER"] if reset else []
    if reset and gtid:
        statements.append(f"SET GLOBAL gtid_binlog_state = {mysql.quote(gtid)}")
    statements.append(f"SET GLOBAL gtid_slave_pos = {mysql.quote(gtid)}")
    replica.execute(*statements)


def open_writes(servers: dict[str, MysqlServer], primaries: Collection[str]) -> None:
    """Writes open on the primaries only: every server starts read-only
    (mysql.sh), so one that restarts never takes writes unasked."""
    for name, server in servers.items():
        server.execute(*server.sql.read_only(name not in primaries))


def wait_healthy(servers: Sequence[MysqlServer], timeout: float = HEALTHY_TIMEOUT) -> None:
    """Until every replica runs both threads; GuestError naming the others."""
    for last in tries(timeout, every=0.5):
        states = {s.name: s.replica() for s in servers}
        bad = {n: st for n, st in states.items() if st is None or not st.healthy}
        if not bad:
            return
        if last:
            detail = "; ".join(f"{n}: {_why(st)}" for n, st in bad.items())
            raise GuestError(f"replication did not start in {timeout:.0f} s: {detail}")


def _why(st: mysql.ReplicaState | None) -> str:
    return "not configured" if st is None else f"{st.threads} {st.last_error}".strip()

"""Replication wired and checked on live servers: the replication account,
a replica seeded from a consistent snapshot, writes opened on primaries
only, and the wait until every replica runs. `up`'s set-up (roles/mysql.py)
and the moves of a primary (ops/mysql/switchover.py, failover, rejoin) share them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import IO

from labctl.errors import GuestError
from labctl.events import OnEvent, info
from labctl.guest.mysql import rules as mysql
from labctl.guest.mysql.session import MysqlServer, SqlError, dump_argv
from labctl.local.deadline import tries

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


def seed(
    source: MysqlServer,
    replica: MysqlServer,
    source_ip: str,
    password: str,
    gtid: bool,
    on_event: OnEvent,
    fresh: bool = False,
) -> None:
    """Start `replica` from a consistent snapshot of `source`.

    FLUSH TABLES WITH READ LOCK in one session; inside it the binlog position
    (or GTID position) is read, the schemas are listed and dumped (spooled to
    a private temporary file here); then the lock goes, and the replica loads
    the dump and replicates from that position while the primary writes on.
    """
    rs = replica.sql
    with writable(replica), tempfile.TemporaryFile(prefix="labctl-dump-") as spool:
        replica.execute(rs.stop_replica(), rs.reset_replica())
        with source.read_lock() as snap:
            schemas = source.user_schemas()
            said = (
                f"snapshot of {source.name} under FLUSH TABLES WITH READ LOCK: "
                f"{snap.log_file}:{snap.log_pos}"
                + (f", GTID {snap.gtid or '(none yet)'}" if gtid else "")
                + f"; dumping {', '.join(schemas) or 'no schemas'}"
            )
            on_event(info(replica.name, said))
            if schemas:
                _dump(source, schemas, spool)
        # the lock is gone: the primary writes again while the replica loads
        if schemas:
            on_event(info(replica.name, f"loading the dump ({spool.tell() // 1024} KiB)"))
            spool.seek(0)
            replica.feed(spool, timeout=3600)
        if replica.is_mysql and gtid:
            replica.execute(rs.reset_gtids(), f"SET GLOBAL gtid_purged = {mysql.quote(snap.gtid)}")
        elif not replica.is_mysql:
            _mariadb_position(replica, snap.gtid, fresh)
        replica.execute(
            rs.change_source(source_ip, password, snap.log_file, snap.log_pos, gtid),
            rs.start_replica(),
        )
    on_event(info(replica.name, f"replicating from {source.name} ({source_ip})"))


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

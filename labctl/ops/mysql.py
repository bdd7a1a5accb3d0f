"""MySQL/MariaDB labs: replication wired from a consistent snapshot, then
verified and explained (`labctl mysql-pair`, `labctl mysql ...`)."""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from labctl import vault
from labctl.errors import GuestError, SpecError
from labctl.guest import mysql
from labctl.guest.mysql_session import MysqlServer, SqlError, dump_argv
from labctl.home import LabHome
from labctl.labs import MYSQL_ROLES, replication_sources
from labctl.ops.session import LabSession, Outcome, fan_out
from labctl.spec import LabSpec
from labctl.vagrant import Event

REPL_SECRET = "mysql-repl-password"
HEALTHY_TIMEOUT = 90.0
CATCH_UP_TIMEOUT = 120.0
CHECK_SCHEMA = "labctl_check"

Say = Callable[[str, str], None]  # (machine, text)


def _quiet(machine: str, text: str) -> None:
    pass


def _say(on_event: Callable[[Event], None] | None) -> Say:
    if on_event is None:
        return _quiet
    return lambda machine, text: on_event(Event(machine, "info", text))


def mysql_machines(spec: LabSpec) -> list[str]:
    """The lab's MySQL servers; SpecError for a lab without any."""
    names = [m.name for m in spec.machines if m.role in MYSQL_ROLES]
    if not names:
        raise SpecError(
            f"lab {spec.name!r} ({spec.topology}) has no MySQL servers", hint="labctl mysql-pair"
        )
    return names


def _sources(spec: LabSpec) -> dict[str, str]:
    return replication_sources(spec.settings, spec.machines)


def _connect(session: LabSession, names: Sequence[str]) -> dict[str, MysqlServer]:
    """MysqlServer per machine, versions detected, all in parallel."""
    outcomes = session.each(names, lambda t: _detected(MysqlServer(t)))
    failed = [o.error for o in outcomes if o.error]
    if failed:
        raise failed[0]
    return {o.vm: o.value for o in outcomes if o.value is not None}


def _detected(server: MysqlServer) -> MysqlServer:
    server.server  # noqa: B018 (SELECT VERSION(), once, in this thread)
    return server


# ---------------------------------------------------------------- set-up


def _check_identities(servers: dict[str, MysqlServer]) -> None:
    """Refuse to wire servers that share a server_id or server_uuid."""
    seen: dict[tuple[str, str], str] = {}
    for name, server in servers.items():
        names = ["server_id", "server_uuid"] if server.server.mysql else ["server_id"]
        for key, value in server.variables(*names).items():
            other = seen.get((key, value))
            if other:
                raise GuestError(
                    f"{other} and {name} share {key} {value}: refusing to set up replication"
                )
            seen[(key, value)] = name


@dataclass
class _Writable:
    """MySQL's super_read_only blocks even root: lift it while labctl loads or
    configures a replica, and put it back after."""

    server: MysqlServer
    was_on: bool = False

    def __enter__(self) -> MysqlServer:
        if self.server.server.mysql:
            self.was_on = self.server.variables("super_read_only").get("super_read_only") == "ON"
            if self.was_on:
                self.server.execute("SET GLOBAL super_read_only = OFF")
        return self.server

    def __exit__(self, *exc: object) -> None:
        if self.was_on:
            self.server.execute("SET GLOBAL super_read_only = ON")


def _ensure_repl_user(server: MysqlServer, subnet: str, password: str) -> None:
    with _Writable(server):
        server.execute(*server.server.create_repl_user(subnet, password), log_bin=False)


def _dump(source: MysqlServer, schemas: Sequence[str], spool: IO[bytes]) -> None:
    """mysqldump of `schemas` on source, into the local `spool` file, after a
    first line that keeps the load out of the replica's own binlog."""
    spool.write(b"SET SESSION sql_log_bin=0;\n")
    dump = source.t.start(dump_argv(source.server, schemas), sudo=True)
    try:
        while chunk := dump.read():
            spool.write(chunk)
    finally:
        done = dump.wait(timeout=60)
    if not done.ok:
        raise SqlError(f"{source.name}: mysqldump failed: {done.stderr.strip()[-300:]}")


def seed(
    source: MysqlServer, replica: MysqlServer, source_ip: str, password: str, gtid: bool, say: Say
) -> None:
    """Start `replica` from a consistent snapshot of `source`.

    FLUSH TABLES WITH READ LOCK in one session; inside it the binlog position
    (or GTID position) is read, the schemas are listed and dumped (spooled to
    a private temporary file here); then the lock goes, and the replica loads
    the dump and replicates from that position while the primary writes on.
    """
    rs = replica.server
    with _Writable(replica), tempfile.TemporaryFile(prefix="labctl-dump-") as spool:
        replica.execute(rs.stop_replica(), rs.reset_replica())
        with source.read_lock() as snap:
            schemas = source.user_schemas()
            say(
                replica.name,
                f"snapshot of {source.name} under FLUSH TABLES WITH READ LOCK: "
                f"{snap.log_file}:{snap.log_pos}"
                + (f", GTID {snap.gtid or '(none yet)'}" if gtid else "")
                + f"; dumping {', '.join(schemas) or 'no schemas'}",
            )
            if schemas:
                _dump(source, schemas, spool)
        # the lock is gone: the primary writes again while the replica loads
        if schemas:
            say(replica.name, f"loading the dump ({spool.tell() // 1024} KiB)")
            spool.seek(0)
            replica.feed(spool, timeout=3600)
        if gtid and rs.mysql:
            replica.execute(rs.reset_gtids(), f"SET GLOBAL gtid_purged = {mysql.quote(snap.gtid)}")
        elif gtid:
            replica.execute(f"SET GLOBAL gtid_slave_pos = {mysql.quote(snap.gtid)}")
        replica.execute(
            rs.change_source(source_ip, password, snap.log_file, snap.log_pos, gtid),
            rs.start_replica(),
        )
    say(replica.name, f"replicating from {source.name} ({source_ip})")


def wait_healthy(servers: Sequence[MysqlServer], timeout: float = HEALTHY_TIMEOUT) -> None:
    """Until every replica runs both threads; GuestError naming the others."""
    deadline = time.monotonic() + timeout
    while True:
        states = {s.name: s.replica() for s in servers}
        bad = {n: st for n, st in states.items() if st is None or not st.healthy}
        if not bad:
            return
        if time.monotonic() > deadline:
            detail = "; ".join(
                f"{n}: "
                + (
                    "not configured"
                    if st is None
                    else f"IO {st.io_running}, SQL {st.sql_running} {st.last_io_error or st.last_sql_error}".strip()
                )
                for n, st in bad.items()
            )
            raise GuestError(f"replication did not start in {timeout:.0f} s: {detail}")
        time.sleep(0.5)


def setup(
    home: LabHome, spec: LabSpec, on_event: Callable[[Event], None] | None = None
) -> list[str]:
    """After `vagrant up` of a MySQL lab: every declared edge replicating."""
    say = _say(on_event)
    sources = _sources(spec)
    password = vault.password(home.paths(spec.name), REPL_SECRET)
    ips = {m.name: m.ip for m in spec.machines}
    with LabSession(home, spec.name) as session:
        servers = _connect(session, mysql_machines(spec))
        _check_identities(servers)
        for name in dict.fromkeys(sources.values()):
            _ensure_repl_user(servers[name], spec.subnet, password)
        for replica, source in sources.items():
            live = servers[replica].replica()
            if live and live.healthy and live.source_host == ips[source]:
                say(replica, f"already replicating from {source}")
                continue
            seed(servers[source], servers[replica], ips[source], password, spec.settings.gtid, say)
        wait_healthy([servers[r] for r in sources])
    return [topology_line(spec)]


def topology_line(spec: LabSpec) -> str:
    names = mysql_machines(spec)
    if spec.settings.chain:
        return "replication (chain): " + " -> ".join(names)
    return f"replication (star): {names[0]} -> {', '.join(names[1:])}"


# ---------------------------------------------------------------- looking inside


@dataclass(frozen=True)
class RoleRow:
    vm: str
    role: str
    log_bin: str
    binlog_format: str
    io_running: str
    sql_running: str
    source_host: str
    seconds_behind: int | None
    replicas: list[str]


def _role_row(server: MysqlServer) -> RoleRow:
    r = server.role()
    st = r.replica
    return RoleRow(
        vm=server.name,
        role=r.role,
        log_bin=r.log_bin,
        binlog_format=r.binlog_format,
        io_running=st.io_running if st else "",
        sql_running=st.sql_running if st else "",
        source_host=st.source_host if st else "",
        seconds_behind=st.seconds_behind if st else None,
        replicas=r.replicas,
    )


def _targets(session: LabSession, machines: Sequence[str]) -> list[str]:
    if machines:
        return session.select(machines)
    mine = [m.name for m in session.spec.machines if m.role in MYSQL_ROLES]
    return mine or session.select(())


def roles(home: LabHome, lab: str | None, machines: Sequence[str] = ()) -> list[Outcome[RoleRow]]:
    """primary / replica / dual / standalone for each server, with the evidence."""
    with LabSession(home, lab) as session:
        return session.each(_targets(session, machines), lambda t: _role_row(MysqlServer(t)))


def verify(home: LabHome, lab: str | None) -> list[mysql.Edge]:
    """The declared topology, edge by edge, against what the servers report."""
    with LabSession(home, lab) as session:
        spec = session.spec
        sources = _sources(spec)
        mysql_machines(spec)
        by_name = {m.name: m for m in spec.machines}
        outcomes = session.each(list(sources), lambda t: MysqlServer(t).replica())
        edges = []
        for o in outcomes:
            source = by_name[sources[o.vm]]
            if o.error:
                edges.append(mysql.Edge(o.vm, source.name, "broken", o.error.message))
            else:
                edges.append(
                    mysql.judge_edge(o.vm, source.name, {source.ip, source.hostname}, o.value)
                )
        return edges


@dataclass(frozen=True)
class ReplicaStatus:
    vm: str
    source_host: str
    io_running: str
    sql_running: str
    seconds_behind: int | None
    last_io_error: str
    last_sql_error: str

    @property
    def broken(self) -> bool:
        return not (self.io_running == "Yes" and self.sql_running == "Yes")


@dataclass(frozen=True)
class SourceStatus:
    vm: str
    binlog_file: str
    binlog_position: int
    replicas: list[str]


@dataclass(frozen=True)
class StatusReport:
    replicas: list[ReplicaStatus]
    sources: list[SourceStatus]
    errors: list[str]


def _status_of(server: MysqlServer) -> tuple[ReplicaStatus | None, SourceStatus | None]:
    role = server.role()
    st = role.replica
    replica = None
    if st is not None:
        replica = ReplicaStatus(
            server.name,
            st.source_host,
            st.io_running,
            st.sql_running,
            st.seconds_behind,
            st.last_io_error,
            st.last_sql_error,
        )
    source = None
    # a source: replicas connected, or binary logging on and no source of its own
    if role.log_bin == "ON" and (role.replicas or st is None):
        log_file, pos = server.binlog()
        source = SourceStatus(server.name, log_file, pos, role.replicas)
    return replica, source


def status(home: LabHome, lab: str | None, machines: Sequence[str] = ()) -> StatusReport:
    """Per replica: threads, source, lag, errors; per source: binlog position, replicas."""
    with LabSession(home, lab) as session:
        outcomes = session.each(_targets(session, machines), lambda t: _status_of(MysqlServer(t)))
    return StatusReport(
        replicas=[o.value[0] for o in outcomes if o.value and o.value[0]],
        sources=[o.value[1] for o in outcomes if o.value and o.value[1]],
        errors=[o.error.message for o in outcomes if o.error],
    )


@dataclass(frozen=True)
class CheckRow:
    vm: str
    table: str
    rows: int
    checksum: str
    same: bool


def _tables(server: MysqlServer) -> list[str]:
    schemas = server.user_schemas()
    if not schemas:
        return []
    listed = ", ".join(mysql.quote(s) for s in schemas)
    rows = server.query(
        "SELECT CONCAT(table_schema, '.', table_name) AS t FROM information_schema.tables "
        f"WHERE table_schema IN ({listed}) AND table_type = 'BASE TABLE' ORDER BY 1"
    )
    return [r["t"] for r in rows]


def _fingerprint(server: MysqlServer, tables: Sequence[str]) -> dict[str, tuple[int, str]]:
    found = {}
    for table in tables:
        schema, name = table.split(".", 1)
        ident = f"{mysql.quote_ident(schema)}.{mysql.quote_ident(name)}"
        count = server.query(f"SELECT COUNT(*) AS n FROM {ident}")[0]["n"]
        checksum = server.query(f"CHECKSUM TABLE {ident}")[0]["Checksum"]
        found[table] = (int(count), checksum)
    return found


def _write_rows(primary: MysqlServer, count: int, token: str) -> None:
    table = f"{CHECK_SCHEMA}.rows_written"
    statements = [
        f"CREATE DATABASE IF NOT EXISTS {CHECK_SCHEMA}",
        f"CREATE TABLE IF NOT EXISTS {table} (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
        "token CHAR(16) NOT NULL, n INT NOT NULL, payload VARCHAR(64) NOT NULL) ENGINE=InnoDB",
        f"CREATE TABLE IF NOT EXISTS {CHECK_SCHEMA}.marker (token CHAR(16) PRIMARY KEY) ENGINE=InnoDB",
        "START TRANSACTION",
    ]
    for start in range(0, count, 1000):
        values = ", ".join(
            f"('{token}', {n}, '{secrets.token_hex(16)}')"
            for n in range(start, min(start + 1000, count))
        )
        statements.append(f"INSERT INTO {table} (token, n, payload) VALUES {values}")
    statements += ["COMMIT", f"INSERT INTO {CHECK_SCHEMA}.marker VALUES ('{token}')"]
    primary.execute(*statements)


def _wait_for_marker(server: MysqlServer, token: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            rows = server.query(
                f"SELECT COUNT(*) AS n FROM {CHECK_SCHEMA}.marker WHERE token = '{token}'"
            )
            if rows and rows[0]["n"] == "1":
                return True
        except SqlError:
            pass  # the schema has not arrived yet
        time.sleep(0.3)
    return False


def check(
    home: LabHome, lab: str | None, count: int = 1000, timeout: float = CATCH_UP_TIMEOUT
) -> tuple[list[CheckRow], list[str]]:
    """Write `count` rows on the primary, wait for every replica to apply them
    (a marker row written last), then compare every table's row count and
    CHECKSUM TABLE on every server. Returns (rows, problems)."""
    if count < 1:
        raise SpecError("--rows must be at least 1")
    with LabSession(home, lab) as session:
        spec = session.spec
        names = mysql_machines(spec)
        servers = _connect(session, names)
        primary, replicas = servers[names[0]], [servers[n] for n in names[1:]]
        token = secrets.token_hex(8)
        _write_rows(primary, count, token)
        caught_up = fan_out(
            [r.name for r in replicas], lambda n: _wait_for_marker(servers[n], token, timeout)
        )
        problems = [
            f"{o.vm}: did not catch up within {timeout:.0f} s"
            for o in caught_up
            if o.value is not True
        ]
        tables = _tables(primary)
        prints = {
            o.vm: o.value
            for o in fan_out(names, lambda n: _fingerprint(servers[n], tables))
            if o.value is not None
        }
    reference = prints.get(names[0], {})
    rows = []
    for vm in names:
        for table in tables:
            got = prints.get(vm, {}).get(table)
            same = got == reference.get(table)
            rows.append(CheckRow(vm, table, got[0] if got else -1, got[1] if got else "", same))
            if not same:
                problems.append(
                    f"{vm}: {table} differs from {names[0]} ({got} vs {reference.get(table)})"
                )
    return rows, problems


def sql(
    home: LabHome, lab: str | None, machine: str, statement: str
) -> tuple[list[dict[str, str]], bool]:
    """One statement as root in one guest: (rows, vertical). A statement ending
    in \\G is read in the vertical layout, as the mysql client shows it."""
    text = statement.strip().rstrip(";").strip()
    vertical = text.endswith("\\G")
    text = text.removesuffix("\\G").strip()
    if not text:
        raise SpecError("no statement given")
    with LabSession(home, lab) as session:
        session.spec.machine(machine)
        return MysqlServer(session.transport(machine)).query(
            text + ";", vertical=vertical
        ), vertical


def add_replica(home: LabHome, lab: str | None, on_event: Callable[[Event], None]) -> Any:
    """One more replica, started from a consistent snapshot while the primary
    keeps its data (and its writers)."""
    from labctl.ops import lifecycle

    name = home.resolve(lab)
    spec = home.load(name)
    if spec.topology != "mysql-pair":
        raise SpecError(f"lab {name!r} is a {spec.topology} lab, not mysql-pair")
    if spec.settings.replicas >= 5:
        raise SpecError(f"lab {name!r} already has 5 replicas, the most a pair can have")
    return lifecycle.up(
        home, name, None, lifecycle.Request(replicas=spec.settings.replicas + 1), on_event
    )

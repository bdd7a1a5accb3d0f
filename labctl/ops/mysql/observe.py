"""`labctl mysql ...`: replication in any lab with mysql machines, verified
and explained. The roles themselves (provisioning, seeding replicas) are
roles/mysql.py; a primary moved is ops/mysql/switchover.py, failover.py, rejoin.py."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from labctl.errors import SpecError
from labctl.events import OnEvent
from labctl.guest.mysql import rules as mysql
from labctl.guest.mysql import topology as topo
from labctl.guest.mysql.session import MysqlServer, SqlError
from labctl.lab.home import LabHome
from labctl.local.deadline import tries
from labctl.ops.rows import row_of
from labctl.session.group import LabSession, Outcome, fan_out

CATCH_UP_TIMEOUT = 120.0
CHECK_SCHEMA = "labctl_check"


# ---------------------------------------------------------------- looking inside


@dataclass(frozen=True)
class RoleRow:
    vm: str
    role: str
    log_bin: str
    binlog_format: str
    # the replica channel's, blank on a server with none
    io_running: str = ""
    sql_running: str = ""
    source_host: str = ""
    seconds_behind: int | None = None
    replicas: list[str] = field(default_factory=list)


def _role_row(server: MysqlServer) -> RoleRow:
    r = server.role()
    return row_of(RoleRow, r, r.replica, vm=server.name)


def targets(session: LabSession, machines: Sequence[str]) -> list[str]:
    """The machines asked for, else the lab's MySQL servers."""
    if machines:
        return session.select(machines)
    return topo.require(session.spec)


def roles(home: LabHome, lab: str | None, machines: Sequence[str] = ()) -> list[Outcome[RoleRow]]:
    """primary / replica / dual / standalone for each server, with the evidence."""
    with LabSession(home, lab) as session:
        stale = topo.stale(session.spec)
        outcomes = session.each(targets(session, machines), lambda t: _role_row(MysqlServer(t)))
    # a failed primary kept out of replication says so, whatever it looks like now
    return [
        replace(o, value=replace(o.value, role=topo.STALE_ROLE))
        if o.value is not None and o.vm in stale
        else o
        for o in outcomes
    ]


def verify(home: LabHome, lab: str | None) -> tuple[list[mysql.Edge], list[Outcome[Any]]]:
    """The declared topology, edge by edge, against what the servers report;
    and the lab's mysql machines that are not running."""
    with LabSession(home, lab) as session:
        spec = session.spec
        down = session.down(topo.require(spec))
        sources = topo.sources(spec)
        by_name = {m.name: m for m in spec.machines}
        stale = topo.stale(spec)
        outcomes = session.each(
            [r for r in sources if r not in stale], lambda t: MysqlServer(t).replica()
        )
        edges = [
            mysql.Edge(r, sources[r], "stale", f"a failed primary: labctl mysql rejoin {r}")
            for r in stale
        ]
        for o in outcomes:
            source = by_name[sources[o.vm]]
            if o.error:
                edges.append(mysql.Edge(o.vm, source.name, "broken", o.error.message))
            else:
                edges.append(
                    mysql.judge_edge(o.vm, source.name, {source.ip, source.hostname}, o.value)
                )
        order = list(sources)
        return sorted(edges, key=lambda e: order.index(e.replica)), down


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
    failed: list[Outcome[Any]]  # machines that did not answer


def _status_of(server: MysqlServer) -> tuple[ReplicaStatus | None, SourceStatus | None]:
    role = server.role()
    st = role.replica
    replica = row_of(ReplicaStatus, st, vm=server.name) if st is not None else None
    source = None
    # a source: replicas connected, or binary logging on and no source of its own
    if role.log_bin == "ON" and (role.replicas or st is None):
        log_file, pos = server.binlog()
        source = SourceStatus(server.name, log_file, pos, role.replicas)
    return replica, source


def status(home: LabHome, lab: str | None, machines: Sequence[str] = ()) -> StatusReport:
    """Per replica: threads, source, lag, errors; per source: binlog position, replicas."""
    with LabSession(home, lab) as session:
        outcomes = session.each(targets(session, machines), lambda t: _status_of(MysqlServer(t)))
    return StatusReport(
        replicas=[o.value[0] for o in outcomes if o.value and o.value[0]],
        sources=[o.value[1] for o in outcomes if o.value and o.value[1]],
        failed=outcomes.failed,
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
    for _ in tries(timeout, every=0.3):
        try:
            rows = server.query(
                f"SELECT COUNT(*) AS n FROM {CHECK_SCHEMA}.marker WHERE token = '{token}'"
            )
            if rows and rows[0]["n"] == "1":
                return True
        except SqlError:
            pass  # the schema has not arrived yet
    return False


@dataclass(frozen=True)
class CheckReport:
    rows: list[CheckRow]
    problems: list[str]
    failed: list[Outcome[Any]]  # machines that are not running: left out, named


def check(
    home: LabHome, lab: str | None, count: int = 1000, timeout: float = CATCH_UP_TIMEOUT
) -> CheckReport:
    """Write `count` rows on each primary, wait for its replicas to apply them
    (a marker row written last), then compare every table's row count and
    CHECKSUM TABLE on every server. A tree whose primary is not running is
    not checked; a replica not running is left out of its tree; both are named."""
    if count < 1:
        raise SpecError("--rows must be at least 1")
    rows: list[CheckRow] = []
    problems: list[str] = []
    with LabSession(home, lab) as session:
        spec = session.spec
        stale = topo.stale(spec)
        failed = session.down([n for n in topo.require(spec) if n not in stale])
        gone = {o.vm for o in failed} | set(stale)
        trees = [
            [n for n in names if n not in gone]
            for primary, names in topo.trees(spec).items()
            if primary not in gone
        ]
        servers = session.each([n for ns in trees for n in ns], MysqlServer.detected).check().values
        for names in trees:
            _check_tree([servers[n] for n in names], count, timeout, rows, problems)
    return CheckReport(rows, problems, failed)


def _check_tree(
    servers: list[MysqlServer],
    count: int,
    timeout: float,
    rows: list[CheckRow],
    problems: list[str],
) -> None:
    """The check on one primary (first) and the servers replicating from it."""
    primary, replicas = servers[0], servers[1:]
    by_name = {s.name: s for s in servers}
    token = secrets.token_hex(8)
    _write_rows(primary, count, token)
    caught_up = fan_out(
        [r.name for r in replicas], lambda n: _wait_for_marker(by_name[n], token, timeout)
    )
    problems += [
        f"{o.vm}: did not catch up within {timeout:.0f} s" for o in caught_up if o.value is not True
    ]
    tables = _tables(primary)
    prints = {
        o.vm: o.value
        for o in fan_out(list(by_name), lambda n: _fingerprint(by_name[n], tables))
        if o.value is not None
    }
    reference = prints.get(primary.name, {})
    for vm in by_name:
        for table in tables:
            got = prints.get(vm, {}).get(table)
            same = got == reference.get(table)
            rows.append(CheckRow(vm, table, got[0] if got else -1, got[1] if got else "", same))
            if not same:
                problems.append(
                    f"{vm}: {table} differs from {primary.name} ({got} vs {reference.get(table)})"
                )


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


def add_replica(home: LabHome, lab: str | None, on_event: OnEvent) -> Any:
    """One more replica of a `mysql-pair` lab, started from a consistent
    snapshot while the primary keeps its data (and its writers)."""
    from labctl.ops.up.apply import up
    from labctl.ops.up.source import Request

    name = home.resolve(lab)
    spec = home.load(name)
    if spec.origin.kind != "topology" or spec.origin.name != "mysql-pair":
        raise SpecError(
            f"lab {name!r} comes from {spec.origin.label}, not the mysql-pair topology",
            hint="add a machine with the role mysql-replica to its lab file, then labctl up -f FILE",
        )
    replicas = int(spec.origin.params.get("replicas", 1))
    if replicas >= 5:
        raise SpecError(f"lab {name!r} already has 5 replicas, the most a pair can have")
    return up(home, name, None, Request(params={"replicas": replicas + 1}), on_event)

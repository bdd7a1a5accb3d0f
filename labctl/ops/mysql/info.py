"""`labctl mysql info`: each server's check-up, as the field notes make it
(guest/mysql/checkup.py), and what only the lab as a whole can tell: two
servers with one server_id, a replica whose binlog its source is about to
purge, the replication mode behind a MariaDB source's dump threads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from labctl.guest.mysql import checkup as cu
from labctl.guest.mysql import rules
from labctl.guest.mysql import topology as topo
from labctl.guest.mysql.session import SYSTEM_SCHEMAS, MysqlServer
from labctl.lab.home import LabHome
from labctl.lab.spec import LabSpec
from labctl.ops.mysql.observe import targets
from labctl.session.group import LabSession, Outcome


@dataclass(frozen=True)
class ServerInfo:
    """One server at a glance."""

    vm: str
    version: str
    role: str
    read_only: bool
    server_id: int
    uptime_s: int
    connections: int
    queries_per_s: float  # since the server started
    log_bin: str
    binlog_format: str
    binlog_retention_s: int  # 0: kept for ever
    binlog_retention_from: str  # the variable that says so
    binlogs: list[cu.BinlogFile]
    gtid_written: str  # what it has written to its own binlog
    gtid_applied: str  # what it has applied from a source
    source_host: str
    source_log_file: str  # the source's binlog its IO thread reads
    replica_mode: str  # "gtid" or "file" on a replica, else ""
    seconds_behind: int | None
    semi_sync: str  # "source", "replica", "source+replica" or ""
    stat: cu.Stat  # the `\s` figures
    schemas: list[str]
    data_bytes: int
    non_innodb_tables: list[cu.Table]
    replicas_connected: list[cu.DumpThread]
    repl_accounts: list[cu.Account]
    findings: list[cu.Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[cu.Finding]:
        return [f for f in self.findings if f.level == "error"]


def _info_of(server: MysqlServer, stale: bool, subnet: str) -> ServerInfo:
    head = server.query(
        "SELECT VERSION() AS version, @@GLOBAL.server_id AS server_id, "
        "@@GLOBAL.read_only AS read_only"
    )[0]
    status = {
        r["Variable_name"]: r["Value"]
        for r in server.query(cu.status_statement(cu.STAT_VARIABLES + cu.SEMI_SYNC_VARIABLES))
    }
    sql = server.sql
    written, applied = sql.gtid_binlog_variable(), sql.gtid_applied_variable()
    # one question for every variable info shows (the role's among them)
    variables = server.variables(*cu.BINLOG_VARIABLES, written, applied)
    keeps = cu.retention(variables)
    binlogs: list[cu.BinlogFile] = []
    if variables.get("log_bin") == "ON":
        listed = server.query(cu.BINARY_LOGS)
        paths = cu.binlog_paths(variables.get("log_bin_basename", ""), listed)
        binlogs = cu.binlog_files(listed, cu.ages(server.file_times(paths), paths))
    tables = cu.tables(server.query(cu.non_innodb_statement(SYSTEM_SCHEMAS)))
    accounts = cu.repl_accounts(server.query(cu.REPL_ACCOUNTS))
    size = server.query(
        "SELECT COALESCE(SUM(data_length + index_length), 0) AS bytes "
        "FROM information_schema.tables WHERE table_schema NOT IN "
        f"({', '.join(rules.quote(x) for x in SYSTEM_SCHEMAS)})"
    )[0]["bytes"]
    found = rules.decide_role(variables, server.replica_rows(), server.replicas())
    channel = found.replica
    figures = cu.stat(status)
    semi = [
        name
        for name, key in (
            ("source", "Rpl_semi_sync_master_status"),
            ("replica", "Rpl_semi_sync_slave_status"),
        )
        if status.get(key) == "ON"
    ]
    return ServerInfo(
        vm=server.name,
        version=head["version"],
        role=topo.STALE_ROLE if stale else found.role,
        read_only=head["read_only"] == "1",
        server_id=int(head["server_id"]),
        uptime_s=cu.counter(status, "Uptime"),
        connections=figures.threads,
        queries_per_s=round(figures.queries_per_s_avg, 1),
        log_bin=found.log_bin,
        binlog_format=found.binlog_format,
        binlog_retention_s=keeps.seconds,
        binlog_retention_from=keeps.variable,
        binlogs=binlogs,
        gtid_written=variables.get(written, ""),
        gtid_applied=variables.get(applied, ""),
        source_host=channel.source_host if channel else "",
        source_log_file=channel.received[0] if channel else "",
        replica_mode=("gtid" if channel.gtid else "file") if channel else "",
        seconds_behind=channel.seconds_behind if channel else None,
        semi_sync="+".join(semi),
        stat=figures,
        schemas=server.user_schemas(),
        data_bytes=int(size or 0),
        non_innodb_tables=tables,
        replicas_connected=cu.dump_threads(server.query(cu.DUMP_THREADS), server.is_mysql),
        repl_accounts=accounts,
        findings=[
            *cu.engine_findings(server.name, tables),
            *cu.account_findings(server.name, accounts, subnet),
        ],
    )


def _addresses(spec: LabSpec) -> dict[str, str]:
    """Every way a server of the lab may be named by another (address,
    hostname, name) -> its name."""
    found = {}
    for m in topo.machines(spec):
        found.update({m.name: m.name, m.hostname: m.name, m.ip: m.name})
    return found


def lab_findings(
    spec: LabSpec, infos: Sequence[ServerInfo], margin_s: int = cu.RETENTION_MARGIN_S
) -> list[ServerInfo]:
    """Each server's info with what the lab as a whole tells of it."""
    names = _addresses(spec)
    by_vm = {i.vm: i for i in infos}
    said: list[cu.Finding] = cu.duplicate_ids({i.vm: i.server_id for i in infos})
    declared = topo.sources(spec)
    for i in infos:
        fed = [r for r, s in declared.items() if s == i.vm]
        fed += [names.get(d.host, d.host) for d in i.replicas_connected]
        if finding := cu.log_bin_finding(i.vm, i.log_bin, sorted(set(fed))):
            said.append(finding)
        source = by_vm.get(names.get(i.source_host, ""))
        if source is not None:
            keeps = cu.Retention(source.binlog_retention_s, source.binlog_retention_from)
            finding = cu.purge_finding(
                i.vm,
                source.vm,
                keeps,
                i.source_log_file,
                source.binlogs,
                i.seconds_behind,
                margin_s,
            )
            if finding:
                said.append(finding)
    return [
        replace(
            i,
            findings=[*i.findings, *(f for f in said if f.vms[0] == i.vm)],
            replicas_connected=[_with_mode(d, names, by_vm) for d in i.replicas_connected],
        )
        for i in infos
    ]


def _with_mode(
    thread: cu.DumpThread, names: dict[str, str], by_vm: dict[str, ServerInfo]
) -> cu.DumpThread:
    """The thread with the lab's name of its replica; and its mode, which a
    MariaDB source cannot tell and its replica can."""
    replica = by_vm.get(names.get(thread.host, ""))
    if replica is None:
        return thread
    return replace(thread, replica=replica.vm, mode=thread.mode or replica.replica_mode)


def info(
    home: LabHome,
    lab: str | None,
    machines: Sequence[str] = (),
    margin_s: int = cu.RETENTION_MARGIN_S,
) -> list[Outcome[ServerInfo]]:
    """Each server at a glance: version, role, writes open or not, the `\\s`
    figures, binary logging and its retention, GTID positions, replication
    both ways, semi-sync, the engine mix, the replication accounts, schemas
    and their size; with what is wrong, per server and across the lab."""
    with LabSession(home, lab) as session:
        spec = session.spec
        stale = set(topo.stale(spec))
        outcomes = session.each(
            targets(session, machines),
            lambda t: _info_of(MysqlServer(t), t.name in stale, spec.subnet),
        )
    infos = {i.vm: i for i in lab_findings(spec, [o.value for o in outcomes if o.value], margin_s)}
    return [replace(o, value=infos[o.vm]) if o.value is not None else o for o in outcomes]

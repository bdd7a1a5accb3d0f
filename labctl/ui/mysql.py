"""Drawing for `labctl mysql`: a server's units, the client's vertical layout,
what a move of the primary did (switchover, failover, rejoin; on stderr) and
what a drill counted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from labctl.ui.console import error, info, line, rows, success, table, warn

if TYPE_CHECKING:
    from labctl.ops.mysql.drill import DrillReport
    from labctl.ops.mysql.failover import FailedOver
    from labctl.ops.mysql.info import ServerInfo
    from labctl.ops.mysql.rejoin import Rejoined
    from labctl.ops.mysql.switchover import Switched


def switched(done: Switched) -> None:
    """The new primary, how long no server took writes, and the replication after."""
    success(
        f"{done.new} is the primary (was {done.old}); "
        f"{done.read_only_ms} ms without a writable server"
    )
    info(f"replication: {done.replication}")


def failed_over(done: FailedOver) -> None:
    """The new primary, the positions compared, what may be lost and who is left out."""
    success(f"{done.new} is the primary ({done.why}); promoted in {done.promote_ms} ms")
    info(f"{done.old}'s last known position: {done.old_position or '-'} ({done.known_from})")
    info(f"{done.new}'s position when it opened: {done.new_position or '-'}")
    if done.may_be_lost:
        warn(
            f"may be lost ({done.old} had them, {done.new} has not): " + ", ".join(done.may_be_lost)
        )
    else:
        info("nothing known to be lost")
    for vm in done.left_out:
        warn(f"{vm}: not running, still points at {done.old}: labctl up, then labctl mysql verify")
    info(f"{done.old} is stale (was primary): labctl mysql rejoin {done.old}")


def rejoined(done: Rejoined) -> None:
    """What a rejoined server threw away, and whom it replicates from now."""
    if done.diverged:
        warn(
            f"{done.vm} had what {done.source} has not, now discarded: " + ", ".join(done.diverged)
        )
    success(f"{done.vm} {done.how}: a replica of {done.source}")


def drilled(report: DrillReport) -> None:
    """The drill's numbers, one a row; the rows lost (the first 20)."""
    measures = {
        "fault": f"{report.fault} on {report.old}" + (" (semi-sync)" if report.semi_sync else ""),
        "new primary": report.new,
        "rows acknowledged": report.acknowledged,
        "on the new primary": report.present,
        "lost": len(report.lost),
        "in doubt (connection died in the commit)": len(report.in_doubt),
        **{f"{vm}: same rows": "yes" if same else "NO" for vm, same in report.replicas.items()},
        "write outage": f"{report.write_outage_ms} ms",
        "time to detect": f"{report.detect_ms} ms",
        "time to promote": f"{report.promote_ms} ms",
    }
    table(["MEASURE", "VALUE"], measures.items())
    if report.lost:
        more = " ..." if len(report.lost) > 20 else ""
        warn(f"lost rows: {', '.join(map(str, report.lost[:20]))}{more}")
    info(f"{report.old} is stale: labctl up, then labctl mysql rejoin {report.old}")


def duration(seconds: int) -> str:
    """`1d2h`, `3h4m`, `5m6s`: two units, the largest first."""
    if seconds >= 86400:
        return f"{seconds // 86400}d{seconds % 86400 // 3600}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60}m"
    return f"{seconds // 60}m{seconds % 60}s"


def size(n: int) -> str:
    """Bytes in binary units, one decimal (`512 B`, `1.5 MiB`)."""
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def vertical(rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows one field a line, as the mysql client's \\G shows them."""
    width = max(len(k) for r in rows for k in r)
    for n, r in enumerate(rows, start=1):
        line(f"*************************** {n}. row ***************************")
        for key, value in r.items():
            line(f"{key:>{width}}: {value}")


def server_info(servers: Sequence[ServerInfo]) -> None:
    """`mysql info` in tables of a few columns each (every one fits in 100
    columns), then what was found, each on the server it is about."""
    rows(
        "VM, VERSION, ROLE, WRITES, ID=server_id, UP, CONN=connections, Q/S=queries_per_s, DATA",
        servers,
        made={
            "VERSION": lambda r: r.version.split("-")[0],
            "WRITES": lambda r: "closed" if r.read_only else "open",
            "UP": lambda r: duration(r.uptime_s),
            "DATA": lambda r: size(r.data_bytes),
        },
        styles={"WRITES": lambda v: "green" if v == "open" else ""},
    )
    _section()
    # the client's `\s` line
    rows(
        "VM, THREADS, QUESTIONS, SLOW, OPENS, FLUSH TABLES, OPEN TABLES, Q/S AVG",
        [{"vm": r.vm, **{k: getattr(r.stat, f) for k, f in _STAT.items()}} for r in servers],
    )
    _section()
    rows(
        "VM, LOG_BIN, FORMAT=binlog_format, KEEPS, FILES, SIZE, GTID=gtid_written",
        servers,
        made={
            "KEEPS": lambda r: duration(r.binlog_retention_s) if r.binlog_retention_s else "ever",
            "FILES": lambda r: len(r.binlogs),
            "SIZE": lambda r: size(sum(b.bytes for b in r.binlogs)),
            "GTID": lambda r: r.gtid_written or "-",
        },
    )
    replicas = [r for r in servers if r.source_host]
    if replicas:
        _section()
        rows(
            "VM, SOURCE=source_host, MODE=replica_mode, READS=source_log_file, LAG, SEMI-SYNC, "
            "APPLIED=gtid_applied",
            replicas,
            made={
                "LAG": lambda r: "" if r.seconds_behind is None else f"{r.seconds_behind} s",
                "SEMI-SYNC": lambda r: r.semi_sync or "-",
            },
        )
    threads = [(r.vm, t) for r in servers for t in r.replicas_connected]
    if threads:
        _section()
        table(
            ["SOURCE", "REPLICA", "USER", "MODE", "STATE"],
            [(vm, t.replica or t.host, t.user, t.mode or "?", t.state) for vm, t in threads],
        )
    accounts = [(r.vm, a.label) for r in servers for a in r.repl_accounts]
    if accounts:
        _section()
        table(["VM", "REPLICATION ACCOUNT"], accounts)
    engines = [
        (r.vm, f"{t.schema}.{t.name}", t.engine) for r in servers for t in r.non_innodb_tables
    ]
    if engines:
        _section()
        table(["VM", "NOT INNODB", "ENGINE"], engines)
    findings(servers)


_STAT = {
    "threads": "threads",
    "questions": "questions",
    "slow": "slow_queries",
    "opens": "opens",
    "flush tables": "flush_tables",
    "open tables": "open_tables",
    "q/s avg": "queries_per_s_avg",
}


def findings(servers: Sequence[ServerInfo]) -> None:
    """Each finding once (a duplicate server_id is about two servers): errors
    as errors, warnings in yellow, on stderr."""
    seen = {
        (f.level, f.message, frozenset(f.vms)): f
        for r in reversed(servers)
        for f in reversed(r.findings)
    }
    for f in reversed(seen.values()):
        if f.level == "error":
            error(f"{f.vms[0]}: {f.message}")
        else:
            warn(f"{f.vms[0]}: {f.message}")


def _section() -> None:
    line("")

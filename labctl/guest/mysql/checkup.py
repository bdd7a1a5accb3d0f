"""A server's check-up, as the field notes make it (pure): the `\\s` figures,
binary logging and its retention, the engine mix, who replicates from the
server and from where its replication account may connect; and what of that
is a warning or an error, for one server or across a lab.

The statements are here beside their parsers; ops/mysql/info.py runs them
on each server (SQL over the client, the binlog files' ages with stat) and
hands the results back to the rules below.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from labctl.guest.mysql.rules import Row, first, quote

# A replica whose binlog on its source is purged within this is warned of.
RETENTION_MARGIN_S = 3600

# What `\s` (the client's status, COM_STATISTICS on the server) prints, as
# global status variables: Threads, Questions, Slow queries, Opens, Flush
# tables, Open tables; Uptime for the average of queries per second.
STAT_VARIABLES = (
    "Uptime",
    "Threads_connected",
    "Questions",
    "Slow_queries",
    "Opened_tables",
    "Flush_commands",
    "Com_flush",
    "Open_tables",
)
SEMI_SYNC_VARIABLES = ("Rpl_semi_sync_master_status", "Rpl_semi_sync_slave_status")
# expire_logs_days is all MariaDB before 10.6 and MySQL before 8.0 have;
# MySQL 8.4 has only binlog_expire_logs_seconds.
BINLOG_VARIABLES = (
    "log_bin",
    "binlog_format",
    "log_bin_basename",
    "binlog_expire_logs_seconds",
    "expire_logs_days",
)
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Stat:
    """The `\\s` line's figures (the counters since the server started)."""

    threads: int
    questions: int
    slow_queries: int
    opens: int
    flush_tables: int
    open_tables: int
    queries_per_s_avg: float


def counter(status: Mapping[str, str], name: str) -> int:
    """A status counter (0 where the server has none of that name)."""
    value = status.get(name, "")
    return int(value) if value.isdigit() else 0


def stat(status: Mapping[str, str]) -> Stat:
    """SHOW GLOBAL STATUS (Variable_name -> Value) -> the `\\s` figures."""
    uptime = counter(status, "Uptime")
    return Stat(
        threads=counter(status, "Threads_connected"),
        questions=counter(status, "Questions"),
        slow_queries=counter(status, "Slow_queries"),
        opens=counter(status, "Opened_tables"),
        # MariaDB has no Flush_commands (its \\s shows no Flush tables): the
        # FLUSH statements it ran instead
        flush_tables=counter(
            status, "Flush_commands" if "Flush_commands" in status else "Com_flush"
        ),
        open_tables=counter(status, "Open_tables"),
        # \s divides by the uptime and shows three decimals
        queries_per_s_avg=round(counter(status, "Questions") / max(uptime, 1), 3),
    )


def status_statement(names: Sequence[str]) -> str:
    return f"SHOW GLOBAL STATUS WHERE Variable_name IN ({', '.join(map(quote, names))})"


@dataclass(frozen=True)
class Retention:
    """How long the server keeps its binary logs; 0 seconds: for ever."""

    seconds: int
    variable: str  # the one that said so ("" when neither is set)


def retention(variables: Mapping[str, str]) -> Retention:
    """binlog_expire_logs_seconds where set (it wins on MySQL 8 when both
    are), else expire_logs_days (the only one older servers have)."""
    seconds = variables.get("binlog_expire_logs_seconds", "")
    if seconds.isdigit() and int(seconds) > 0:
        return Retention(int(seconds), "binlog_expire_logs_seconds")
    days = variables.get("expire_logs_days", "")
    try:
        whole = float(days)  # MariaDB takes fractions of a day
    except ValueError:
        whole = 0.0
    if whole > 0:
        return Retention(round(whole * 86400), "expire_logs_days")
    return Retention(0, "")


@dataclass(frozen=True)
class BinlogFile:
    name: str
    bytes: int
    age_s: int | None  # since it was last written (what purging goes by)


BINARY_LOGS = "SHOW BINARY LOGS"


def binlog_paths(basename: str, rows: Sequence[Row]) -> list[str]:
    """The files SHOW BINARY LOGS names, as paths beside log_bin_basename."""
    folder = posixpath.dirname(basename) or "/var/lib/mysql"
    return [posixpath.join(folder, first(r, "Log_name")) for r in rows]


def binlog_files(rows: Sequence[Row], ages: Mapping[str, int]) -> list[BinlogFile]:
    """SHOW BINARY LOGS rows, each with its age (by file name) where known."""
    found = []
    for r in rows:
        name = first(r, "Log_name")
        size = first(r, "File_size")
        found.append(BinlogFile(name, int(size) if size.isdigit() else 0, ages.get(name)))
    return found


def epoch_lines(text: str) -> list[int]:
    """`date +%s` and `stat --format=%Y` output: one epoch second a line
    (nothing where a line is not one: a file gone meanwhile fails the stat)."""
    found = text.split()
    return [int(x) for x in found] if found and all(x.isdigit() for x in found) else []


def ages(stat_output: str, paths: Sequence[str]) -> dict[str, int]:
    """The guest's clock, then each path's time (file_times) -> age by file name."""
    found = epoch_lines(stat_output)
    if len(found) != len(paths) + 1:
        return {}
    now = found[0]
    return {posixpath.basename(p): max(0, now - t) for p, t in zip(paths, found[1:], strict=True)}


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    engine: str


def non_innodb_statement(system_schemas: Sequence[str]) -> str:
    """The field notes' query, naming the tables rather than counting them."""
    return (
        "SELECT table_schema AS s, table_name AS t, engine AS e FROM information_schema.tables "
        "WHERE engine <> 'InnoDB' AND table_type = 'BASE TABLE' "
        f"AND table_schema NOT IN ({', '.join(map(quote, system_schemas))}) ORDER BY 1, 2"
    )


def tables(rows: Sequence[Row]) -> list[Table]:
    return [Table(r["s"], r["t"], r["e"]) for r in rows]


@dataclass(frozen=True)
class DumpThread:
    """A replica reading this server's binlog, as the source sees it."""

    user: str
    host: str  # the replica's address (its port dropped)
    mode: str  # "gtid", "file", or "" where the source cannot tell
    state: str
    seconds: int
    replica: str = ""  # the lab's machine at that address, where it is one


DUMP_THREADS = (
    "SELECT USER AS user, HOST AS host, COMMAND AS command, STATE AS state, TIME AS time "
    "FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%' ORDER BY HOST"
)


def dump_threads(rows: Sequence[Row], mysql: bool) -> list[DumpThread]:
    """MySQL names a GTID replica's thread `Binlog Dump GTID`; MariaDB calls
    both `Binlog Dump` (the replica alone knows: its Using_Gtid)."""

    def mode(command: str) -> str:
        if command == "Binlog Dump GTID":
            return "gtid"
        return "file" if mysql else ""

    return [
        DumpThread(
            r["user"],
            r["host"].rsplit(":", 1)[0],
            mode(r["command"]),
            "" if r["state"] == "NULL" else r["state"],
            int(r["time"]) if r["time"].isdigit() else 0,
        )
        for r in rows
    ]


@dataclass(frozen=True)
class Account:
    user: str
    host: str  # the pattern it may connect from

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}"


# Repl_slave_priv: a column of mysql.user on MySQL 8, and of the view
# MariaDB 10.4+ keeps under that name.
REPL_ACCOUNTS = (
    "SELECT User AS user, Host AS host FROM mysql.user WHERE Repl_slave_priv = 'Y' ORDER BY 1, 2"
)


def repl_accounts(rows: Sequence[Row]) -> list[Account]:
    """Accounts that may replicate from elsewhere than this machine."""
    return [Account(r["user"], r["host"]) for r in rows if r["host"] not in _LOCAL_HOSTS]


# ---------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding:
    """Something a check-up found: an error makes `mysql info` exit 1."""

    level: str  # "warning" or "error"
    vms: tuple[str, ...]  # the servers it is about, the one it is shown on first
    message: str


def warning(vm: str, message: str, *others: str) -> Finding:
    return Finding("warning", (vm, *others), message)


def error(vm: str, message: str, *others: str) -> Finding:
    return Finding("error", (vm, *others), message)


def engine_findings(vm: str, found: Sequence[Table]) -> list[Finding]:
    said = []
    for t in found:
        name = f"{t.schema}.{t.name}"
        if t.engine.upper() == "MYISAM":
            said.append(
                warning(
                    vm,
                    f"{name} is MyISAM: not crash-safe for replication "
                    "(a crash can leave a replica apart), and every write locks the whole table",
                )
            )
        else:
            said.append(warning(vm, f"{name} is {t.engine}, not InnoDB: not transactional"))
    return said


def account_findings(vm: str, accounts: Sequence[Account], subnet: str) -> list[Finding]:
    return [
        warning(
            vm,
            f"{a.label} may replicate from any host: grant it the lab's subnet "
            f"({a.user}@'{subnet}.%')",
        )
        for a in accounts
        if a.host == "%"
    ]


def duplicate_ids(server_ids: Mapping[str, int]) -> list[Finding]:
    """Two servers of a lab with one server_id: a replica skips every event
    carrying its own id, so it silently misses the other's writes."""
    by_id: dict[int, list[str]] = {}
    for vm, sid in server_ids.items():
        by_id.setdefault(sid, []).append(vm)
    return [
        error(
            vm,
            f"server_id {sid} is on both {' and '.join(vms)}: each server needs its own "
            "(a replica skips the events that carry its own id)",
            *[v for v in vms if v != vm],
        )
        for sid, vms in by_id.items()
        if len(vms) > 1
        for vm in vms
    ]


def log_bin_finding(vm: str, log_bin: str, replicas: Sequence[str]) -> Finding | None:
    """A source must write a binlog; one with log_bin off has nothing to send."""
    if log_bin == "ON" or not replicas:
        return None
    return error(
        vm,
        f"binary logging is off, yet {', '.join(replicas)} replicate from it: "
        "a source must have log_bin on",
        *replicas,
    )


def purge_finding(
    replica: str,
    source: str,
    keeps: Retention,
    needed: str,
    files: Sequence[BinlogFile],
    lag_s: int | None,
    margin_s: int = RETENTION_MARGIN_S,
) -> Finding | None:
    """The binlog a replica still needs from its source (the file its IO
    thread reads), against how long the source keeps it: gone is an error;
    purged within the margin, or a lag that close to the retention, a warning."""
    if keeps.seconds <= 0 or not needed:
        return None
    by_name = {f.name: f for f in files}
    if files and needed not in by_name:
        return error(
            replica,
            f"needs {needed}, which {source} has purged: labctl mysql rejoin {replica}",
            source,
        )
    # the file being written is never purged, however old the retention says it is
    age = by_name[needed].age_s if needed in by_name and needed != files[-1].name else None
    left = None if age is None else keeps.seconds - age
    if left is not None and left < margin_s:
        return warning(
            replica,
            f"{source} purges {needed} (which it still needs) in {_span(max(left, 0))}: "
            f"it keeps binlogs {_span(keeps.seconds)}",
            source,
        )
    if lag_s is not None and keeps.seconds - lag_s < margin_s:
        return warning(
            replica,
            f"{lag_s} s behind {source}, which keeps binlogs only {_span(keeps.seconds)} "
            f"(the margin: {_span(margin_s)}): a replica stopped or behind longer cannot catch up",
            source,
        )
    return None


_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def _span(seconds: int) -> str:
    """`10 d`, `1 h 30 min`, `29 min 57 s`: the largest unit and the next, each whole."""
    for i, (unit, size) in enumerate(_UNITS):
        if seconds >= size:
            said = f"{seconds // size} {unit}"
            if i + 1 < len(_UNITS) and (rest := seconds % size // _UNITS[i + 1][1]):
                said += f" {rest} {_UNITS[i + 1][0]}"
            return said
    return "0 s"

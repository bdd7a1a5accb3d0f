"""MySQL and MariaDB: statements by server version, output parsers, role rules (pure).

Which statement a server understands is decided here and nowhere else:
- MySQL 8.0.22: SHOW REPLICA STATUS, START/STOP REPLICA, SHOW REPLICAS;
- MySQL 8.0.23: CHANGE REPLICATION SOURCE TO (SOURCE_* options);
- MySQL 8.2.0:  SHOW BINARY LOG STATUS;
- MySQL 8.4:    SHOW MASTER STATUS, SHOW SLAVE HOSTS, CHANGE MASTER TO are gone;
- MariaDB keeps the old names (SHOW SLAVE STATUS, CHANGE MASTER TO ...).
Field names differ too (Replica_IO_Running / Slave_IO_Running, Source_Host /
Master_Host ...); `replica_state()` reads either.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

Row = dict[str, str]

# A replica further behind than this is "lagging" in `mysql verify`.
LAG_LIMIT_SECONDS = 30
CONNECT_RETRY_SECONDS = 2
REPL_USER = "repl"


def _by_version(since: tuple[int, ...], new: str, old: str) -> Callable[[Server], str]:
    """A Server method: `new` on MySQL `since` that version (any MySQL for ()), else `old`."""

    def statement(self: Server) -> str:
        return new if self.at_least(*since) else old

    return statement


@dataclass(frozen=True)
class Server:
    """Flavor and version of a server, from SELECT VERSION()."""

    flavor: str  # "mysql" or "mariadb"
    version: tuple[int, int, int]

    @property
    def mysql(self) -> bool:
        return self.flavor == "mysql"

    def at_least(self, *version: int) -> bool:
        return self.mysql and self.version >= version

    # ---------------------------------------------------------- statements
    # Each renamed by MySQL at the version given; MariaDB keeps the old name.
    replica_status = _by_version((8, 0, 22), "SHOW REPLICA STATUS", "SHOW SLAVE STATUS")
    start_replica = _by_version((8, 0, 22), "START REPLICA", "START SLAVE")
    stop_replica = _by_version((8, 0, 22), "STOP REPLICA", "STOP SLAVE")
    reset_replica = _by_version((8, 0, 22), "RESET REPLICA ALL", "RESET SLAVE ALL")
    replicas = _by_version((8, 0, 22), "SHOW REPLICAS", "SHOW SLAVE HOSTS")
    binlog_status = _by_version((8, 2, 0), "SHOW BINARY LOG STATUS", "SHOW MASTER STATUS")
    reset_gtids = _by_version((8, 4, 0), "RESET BINARY LOGS AND GTIDS", "RESET MASTER")
    # What a server has written to its own binary log, as GTIDs (a source's
    # position); and what a replica has applied from its source.
    gtid_binlog_variable = _by_version((), "gtid_executed", "gtid_binlog_pos")
    gtid_applied_variable = _by_version((), "gtid_executed", "gtid_slave_pos")

    def read_only(self, on: bool) -> list[str]:
        """Writes closed (or opened) to every client; on MySQL to root too
        (super_read_only), while MariaDB's root keeps its READ ONLY ADMIN."""
        if self.mysql:
            if on:
                return ["SET GLOBAL super_read_only = ON"]
            return ["SET GLOBAL super_read_only = OFF", "SET GLOBAL read_only = OFF"]
        return [f"SET GLOBAL read_only = {'ON' if on else 'OFF'}"]

    def wait_for_gtid(self, position: str, seconds: int) -> str:
        """A SELECT answering `waited` = 0 once this server has applied
        `position`, else (after `seconds`) a timeout: -1 MariaDB, 1 MySQL."""
        fn = "WAIT_FOR_EXECUTED_GTID_SET" if self.mysql else "MASTER_GTID_WAIT"
        return f"SELECT {fn}({quote(position)}, {int(seconds)}) AS waited"

    def semi_sync_source(self, timeout_ms: int) -> list[str]:
        """A primary that acknowledges a commit once a replica has it
        (AFTER_SYNC: before its own clients see it). MariaDB's built-in
        names; MySQL needs its plugins installed first, which labctl does not."""
        return [
            "SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC",
            f"SET GLOBAL rpl_semi_sync_master_timeout = {int(timeout_ms)}",
            "SET GLOBAL rpl_semi_sync_master_enabled = ON",
        ]

    def semi_sync_replica(self) -> list[str]:
        """A replica that acknowledges what it receives; its IO thread restarted
        so the source sees it as semi-synchronous."""
        return [
            "SET GLOBAL rpl_semi_sync_slave_enabled = ON",
            self.stop_io_thread(),
            f"{self.start_replica()} IO_THREAD",
        ]

    def stop_io_thread(self) -> str:
        """Stop receiving (a failed source must send nothing more) but go on applying."""
        return f"{self.stop_replica()} IO_THREAD"

    def promote(self) -> list[str]:
        """A replica made a primary: its replication stopped and forgotten."""
        return [self.stop_replica(), self.reset_replica()]

    def demote(self, host: str, password: str) -> list[str]:
        """A (read-only, caught-up) primary made a replica of `host` by GTID.
        MariaDB starts a replica at gtid_slave_pos, which is empty on a server
        that has only ever been a source: its own binlog position is what it has."""
        own = [] if self.mysql else ["SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos"]
        if not self.mysql:
            # a replica that passes on what it applies would wait for its own
            # (absent) replicas' acknowledgements, were it left a semi-sync source
            own.append("SET GLOBAL rpl_semi_sync_master_enabled = OFF")
        return [*self.promote(), *own, *self._follow(host, password)]

    def repoint(self, host: str, password: str) -> list[str]:
        """A replica moved to another source, by GTID (both have applied the same)."""
        return [self.stop_replica(), *self._follow(host, password)]

    def _follow(self, host: str, password: str) -> list[str]:
        """Replicating from `host`, by GTID."""
        return [self.change_source(host, password, gtid=True), self.start_replica()]

    def change_source(
        self, host: str, password: str, log_file: str = "", log_pos: int = 0, gtid: bool = False
    ) -> str:
        """The statement pointing a replica at its source."""
        modern = self.at_least(8, 0, 23)
        key = "SOURCE" if modern else "MASTER"
        opts = [
            f"{key}_HOST={quote(host)}",
            f"{key}_USER={quote(REPL_USER)}",
            f"{key}_PASSWORD={quote(password)}",
            f"{key}_CONNECT_RETRY={CONNECT_RETRY_SECONDS}",
        ]
        if self.mysql:
            # caching_sha2_password over a plain connection: the replica must
            # fetch the source's RSA key, or it cannot reconnect after the
            # source restarts (its password cache is empty then).
            opts.append(f"GET_{key}_PUBLIC_KEY=1")
        if gtid:
            opts.append(f"{key}_AUTO_POSITION=1" if self.mysql else "MASTER_USE_GTID=slave_pos")
        else:
            opts += [f"{key}_LOG_FILE={quote(log_file)}", f"{key}_LOG_POS={int(log_pos)}"]
        verb = "CHANGE REPLICATION SOURCE TO" if modern else "CHANGE MASTER TO"
        return f"{verb} {', '.join(opts)}"

    def create_repl_user(self, subnet: str, password: str) -> list[str]:
        """The replication account, only from the lab's subnet. Run with
        sql_log_bin=0: the statement (and its password) stays out of the binlog."""
        return account(REPL_USER, subnet, password, "REPLICATION SLAVE ON *.*")


def account(user: str, subnet: str, password: str, grant: str) -> list[str]:
    """An account usable only from the lab's subnet, with `password` (set
    again if it existed) and `grant` ("PRIVILEGES ON what")."""
    name = f"{quote(user)}@{quote(subnet + '.%')}"
    return [
        f"CREATE USER IF NOT EXISTS {name} IDENTIFIED BY {quote(password)}",
        f"ALTER USER {name} IDENTIFIED BY {quote(password)}",
        f"GRANT {grant} TO {name}",
    ]


def quote(value: str) -> str:
    """An SQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def parse_version(text: str) -> Server:
    """SELECT VERSION(): '10.11.6-MariaDB-0+deb12u1' or '8.0.36-0ubuntu0.22.04.1'."""
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", text.strip())
    if not m:
        raise ValueError(f"not a server version: {text!r}")
    version = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    return Server("mariadb" if "mariadb" in text.lower() else "mysql", version)


def _gtid_parts(text: str) -> list[str]:
    """A GTID position or set cut into its entries (one per domain or server)."""
    return [part for part in re.split(r"[,\s]+", text.strip()) if part]


def gtid_count(text: str) -> int:
    """How much a GTID position holds, comparable between servers of one
    topology. MariaDB: '0-1-105,1-2-7' (domain-server-sequence, one per
    domain): the sequences added. MySQL: 'uuid:1-100:102-110,uuid2:1-5'
    (sets of intervals): the transactions counted."""
    total = 0
    for part in _gtid_parts(text):
        fields = part.split(":")
        if len(fields) == 1:  # MariaDB
            seq = part.rsplit("-", 1)[-1]
            if not seq.isdigit():
                raise ValueError(f"not a GTID position: {text!r}")
            total += int(seq)
            continue
        for interval in fields[1:]:
            low, _, high = interval.partition("-")
            if not low.isdigit() or (high and not high.isdigit()):
                raise ValueError(f"not a GTID set: {text!r}")
            total += int(high or low) - int(low) + 1
    return total


def _mariadb_entries(text: str) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for part in _gtid_parts(text):
        domain, server, seq = part.split("-")
        found[(domain, server)] = max(found.get((domain, server), 0), int(seq))
    return found


def _mysql_sets(text: str) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    for part in _gtid_parts(text):
        uuid, *intervals = part.split(":")
        numbers = found.setdefault(uuid.lower(), set())
        for interval in intervals:
            low, _, high = interval.partition("-")
            numbers.update(range(int(low), int(high or low) + 1))
    return found


def missing_from(old: str, new: str) -> list[str]:
    """What `old` has written that `new` lacks, as GTIDs: empty when `new`
    holds all of it (the old server can replicate from the new one);
    otherwise their histories diverged. MariaDB: gtid_binlog_state per
    domain and server; MySQL: gtid_executed sets."""
    if ":" in old or ":" in new:
        have = _mysql_sets(new)
        extra = []
        for uuid, numbers in _mysql_sets(old).items():
            lacking = sorted(numbers - have.get(uuid, set()))
            if lacking:
                extra.append(f"{uuid}:{lacking[0]}-{lacking[-1]} ({len(lacking)})")
        return extra
    have_seq = _mariadb_entries(new)
    return [
        f"{domain}-{server}-{have_seq.get((domain, server), 0) + 1}..{seq} "
        f"({seq - have_seq.get((domain, server), 0)})"
        for (domain, server), seq in _mariadb_entries(old).items()
        if seq > have_seq.get((domain, server), 0)
    ]


def most_advanced(positions: Mapping[str, str]) -> str:
    """The server whose GTID position holds the most (the first of equals, in
    the order given)."""
    if not positions:
        raise ValueError("no server to choose from")
    counts = {name: gtid_count(text) for name, text in positions.items()}
    best = max(counts.values())
    return next(name for name, count in counts.items() if count == best)


# ---------------------------------------------------------------- output


def unescape(value: str) -> str:
    """mysql --batch escapes tab, newline, NUL and backslash in values."""
    return re.sub(
        r"\\([\\tn0])", lambda m: {"\\": "\\", "t": "\t", "n": "\n", "0": "\0"}[m.group(1)], value
    )


def parse_tab(text: str) -> list[Row]:
    """`mysql --batch` output: a header line, then one tab-separated line per row."""
    lines = text.rstrip("\n").split("\n") if text.strip() else []
    if not lines:
        return []
    header = lines[0].split("\t")
    return [
        dict(zip(header, (unescape(v) for v in line.split("\t")), strict=False))
        for line in lines[1:]
    ]


def parse_vertical(text: str) -> list[Row]:
    """`\\G` (or mysql --vertical) output: '*** N. row ***' blocks of 'Name: value'."""
    rows: list[Row] = []
    current: Row | None = None
    for line in text.splitlines():
        if re.match(r"^\*+ \d+\. row \*+$", line.strip()):
            current = {}
            rows.append(current)
            continue
        if current is None or ":" not in line:
            continue
        name, _, value = line.partition(":")
        current[name.strip()] = value.strip()
    return rows


def first(row: Mapping[str, str], *names: str, default: str = "") -> str:
    """A field under the first of `names` the row has."""
    for n in names:
        if n in row:
            return row[n]
    return default


def _either(row: Mapping[str, str], name: str, default: str = "") -> str:
    """A field under its new (MySQL 8.0.22+) name, or its old one: MySQL
    renamed Master to Source and Slave to Replica, and nothing else."""
    old = name.replace("Source", "Master").replace("Replica", "Slave")
    return first(row, name, old, default=default)


@dataclass(frozen=True)
class ReplicaState:
    """One replication channel, flavor-neutral."""

    source_host: str
    io_running: str  # Yes / No / Connecting
    sql_running: str
    seconds_behind: int | None
    last_io_error: str
    last_sql_error: str
    received: tuple[str, int] = ("", 0)  # the source's binlog read up to (file, position)
    applied: tuple[str, int] = ("", 0)  # ... and applied up to
    gtid: bool = False  # it asks its source by GTID, not by file and position

    @property
    def configured(self) -> bool:
        return bool(self.source_host)

    @property
    def healthy(self) -> bool:
        return self.io_running == "Yes" and self.sql_running == "Yes"

    @property
    def threads(self) -> str:
        return f"IO {self.io_running}, SQL {self.sql_running}"

    @property
    def last_error(self) -> str:
        return self.last_io_error or self.last_sql_error

    @property
    def relay_applied(self) -> bool:
        """Everything received from the source is applied (the relay log is done)."""
        return self.applied == self.received


def replica_state(row: Mapping[str, str]) -> ReplicaState:
    """SHOW REPLICA STATUS / SHOW SLAVE STATUS row -> ReplicaState."""
    lag = _either(row, "Seconds_Behind_Source")
    return ReplicaState(
        source_host=_either(row, "Source_Host"),
        io_running=_either(row, "Replica_IO_Running", default="No"),
        sql_running=_either(row, "Replica_SQL_Running", default="No"),
        seconds_behind=int(lag) if lag.isdigit() else None,
        last_io_error=first(row, "Last_IO_Error"),
        last_sql_error=first(row, "Last_SQL_Error"),
        received=(_either(row, "Source_Log_File"), _int(_either(row, "Read_Source_Log_Pos"))),
        applied=(_either(row, "Relay_Source_Log_File"), _int(_either(row, "Exec_Source_Log_Pos"))),
        # MySQL: Auto_Position 1; MariaDB: Using_Gtid Slave_Pos or Current_Pos
        gtid=first(row, "Auto_Position") == "1" or first(row, "Using_Gtid", default="No") != "No",
    )


def _int(text: str) -> int:
    return int(text) if text.isdigit() else 0


def connected_replicas(
    replica_rows: Sequence[Mapping[str, str]], processlist: Sequence[Mapping[str, str]] = ()
) -> list[str]:
    """Replicas of this server: SHOW REPLICAS / SHOW SLAVE HOSTS rows (need
    report_host), else Binlog Dump threads in the process list."""
    hosts = [first(r, "Host") or first(r, "Server_Id", "Server_id") for r in replica_rows]
    if hosts:
        return hosts
    dumps = [p for p in processlist if first(p, "Command", "COMMAND").startswith("Binlog Dump")]
    return [first(p, "Host", "HOST").rsplit(":", 1)[0] for p in dumps]


@dataclass(frozen=True)
class Role:
    """What a server is, and the evidence."""

    role: str  # primary, replica, dual, standalone
    log_bin: str
    binlog_format: str
    replica: ReplicaState | None
    replicas: list[str] = field(default_factory=list)


def active_channel(replica_rows: Sequence[Mapping[str, str]]) -> ReplicaState | None:
    """The replication channel in use, if any (SHOW REPLICA/SLAVE STATUS rows)."""
    return next((c for c in map(replica_state, replica_rows) if c.configured), None)


def decide_role(
    variables: Mapping[str, str], replica_rows: Sequence[Mapping[str, str]], replicas: Sequence[str]
) -> Role:
    """primary: replicas connected; replica: an active channel; dual: both (a
    cascading replica); standalone: neither. log_bin=ON alone proves nothing:
    MySQL 8 has binary logging on by default."""
    channel = active_channel(replica_rows)
    is_replica = channel is not None
    has_replicas = bool(replicas)
    role = {
        (True, True): "dual",
        (True, False): "replica",
        (False, True): "primary",
        (False, False): "standalone",
    }[(is_replica, has_replicas)]
    return Role(
        role=role,
        log_bin=variables.get("log_bin", ""),
        binlog_format=variables.get("binlog_format", ""),
        replica=channel,
        replicas=list(replicas),
    )


def binlog_coordinates(rows: Sequence[Mapping[str, str]]) -> tuple[str, int]:
    """(file, position) from SHOW MASTER STATUS / SHOW BINARY LOG STATUS."""
    if not rows or not rows[0].get("File"):
        raise ValueError("binary logging is off on this server")
    return rows[0]["File"], int(rows[0]["Position"])


@dataclass(frozen=True)
class Edge:
    """One replication edge of the declared topology, and how it is live."""

    replica: str
    source: str
    status: str  # ok, wrong source, broken, lagging
    detail: str


def judge_edge(replica: str, source: str, source_ips: set[str], state: ReplicaState | None) -> Edge:
    """Compare a declared edge (replica replicates from source) with the live channel."""
    edge = partial(Edge, replica, source)
    if state is None or not state.configured:
        return edge("broken", "not replicating from anything")
    if state.source_host not in source_ips:
        return edge("wrong source", f"replicates from {state.source_host}")
    if not state.healthy:
        error = state.last_error
        return edge("broken", state.threads + (f": {error}" if error else ""))
    if state.seconds_behind is None or state.seconds_behind > LAG_LIMIT_SECONDS:
        behind = "unknown" if state.seconds_behind is None else f"{state.seconds_behind} s"
        return edge("lagging", f"{behind} behind")
    return edge("ok", f"{state.seconds_behind} s behind")


# A password as the client may quote it back in an error (a statement's text
# after "near '...'"): the value after MASTER_PASSWORD=, SOURCE_PASSWORD=,
# IDENTIFIED BY or PASSWORD(, quoted, or cut off where the client cut the quote.
_SECRET = re.compile(
    r"(?i)((?:MASTER|SOURCE)_PASSWORD\s*=\s*|IDENTIFIED\s+(?:WITH\s+\S+\s+)?BY\s+|PASSWORD\s*\(\s*)"
    r"(['\"])(?:\\.|(?!\2).)*(?:\2|$)"
)


def mask_secrets(text: str) -> str:
    """`text` with every password a statement carried replaced by '***'."""
    return _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}***{m.group(2)}", text)

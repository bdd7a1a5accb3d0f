"""Fake MySQL and MariaDB servers for the tests of the mysql use cases and
commands (ops/mysql/, cli/): guests that answer from captured outputs
(mariadb, checked), and servers whose replication state the statements
they get change (FakeServer; lab, a mysql-pair lab of them)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from labctl.guest.mysql import replication as repl
from labctl.guest.mysql import topology as topo
from labctl.lab.spec import LabSpec

from .fakes import FakeTransport, Match, Reply, data, install, sql_has
from .labs import topology

MARIADB = data("mysql/mariadb-version.tab.txt").splitlines()[1]
PASSWORD = "Repl-Pa55-word"


# ---------------------------------------------------------------- as captured


NO_ROWS = Reply("")


def mariadb(name: str, role: str) -> FakeTransport:
    """A MariaDB server as captured in a mysql-pair lab: the primary, or a
    replica replicating from it (192.168.56.20)."""
    t = FakeTransport(name).on(
        sql_has("SELECT VERSION()"), Reply(data("mysql/mariadb-version.tab.txt"))
    )
    if role == "primary":
        return (
            t.on(
                sql_has("SHOW GLOBAL VARIABLES"),
                Reply(data("mysql/mariadb-primary-variables.tab.txt")),
            )
            .on(sql_has("SHOW SLAVE STATUS"), NO_ROWS)
            .on(sql_has("SHOW SLAVE HOSTS"), Reply(data("mysql/mariadb-slave-hosts.tab.txt")))
            .on(sql_has("SHOW MASTER STATUS"), Reply(data("mysql/mariadb-master-status.tab.txt")))
        )
    return (
        t.on(
            sql_has("SHOW GLOBAL VARIABLES"), Reply(data("mysql/mariadb-replica-variables.tab.txt"))
        )
        .on(sql_has("SHOW SLAVE STATUS"), Reply(data("mysql/mariadb-replica-status.tab.txt")))
        .on(sql_has("SHOW SLAVE HOSTS"), NO_ROWS)
        .on(sql_has("SHOW PROCESSLIST"), NO_ROWS)
    )


def checked(name: str, checksum: str) -> FakeTransport:
    """A server that takes `mysql check`'s rows (or sees them arrive) and
    answers every table's count and CHECKSUM TABLE with `checksum`."""
    tables = Reply("t\nlabctl_check.marker\nlabctl_check.rows_written\n")
    return (
        mariadb(name, "primary" if name == "primary" else "replica")
        .on(sql_has("INSERT INTO labctl_check.rows_written"), Reply())
        .on(sql_has("FROM labctl_check.marker WHERE token"), Reply("n\n1\n"))
        .on(sql_has("information_schema.schemata"), Reply("s\nlabctl_check\n"))
        .on(sql_has("information_schema.tables"), tables)
        .on(sql_has("SELECT COUNT(*) AS n FROM"), Reply("n\n10\n"))
        .on(sql_has("CHECKSUM TABLE"), Reply(f"Table\tChecksum\nx\t{checksum}\n"))
    )


# ---------------------------------------------------------------- with a replication state


@dataclass
class FakeServer:
    """A server's replication state, changed by the statements it gets."""

    name: str
    version: str = MARIADB
    source: str = ""  # the source's address; "" for none
    binlog_pos: str = ""
    applied: str = ""
    read_only: bool = True
    gtid_mode: str = "ON"
    late: bool = False
    rows: list[int] = field(default_factory=list)  # the drill writer's table
    io: str = "Yes"  # the IO thread: Yes, Connecting, No
    relay_behind: int = 0  # status polls before the relay log is applied
    binlog_state: str = ""
    log: list[str] = field(default_factory=list)
    journal: list[str] = field(default_factory=list)  # every server's statements, in order

    @property
    def mariadb(self) -> bool:
        return "MariaDB" in self.version

    dead: bool = False  # mysqld killed
    ip: str = ""
    peers: dict[str, FakeServer] = field(default_factory=dict)  # every server, by address
    dumps: dict[int, str] = field(default_factory=dict)  # dump thread id -> replica address
    started: list[list[str]] = field(default_factory=list)  # processes left running (lock, dump)
    gate: threading.Barrier | None = None  # a dump's load waits here for the other loaders
    fails_on: str = ""  # a statement it refuses (its disk full)
    server_id: int = 0  # 0: its address's last number
    myisam: list[str] = field(default_factory=list)  # its tables not InnoDB
    repl_host: str = "192.168.56.%"  # where the replication account may connect from

    def connect_dump(self) -> None:
        """This replica's IO thread connected: a dump thread on its source,
        which stays until killed (as a real one does until its next heartbeat)."""
        source = self.peers.get(self.source)
        with _CONNECTING:  # replicas seeded at once start at once
            if source is not None and self.ip not in source.dumps.values():
                source.dumps[len(source.dumps) + 100] = self.ip

    def transport(self) -> FakeTransport:
        return (
            FakeTransport(self.name)
            .on(lambda argv, stdin: argv[:1] == ["mysql"], lambda argv, stdin: self.answer(stdin))
            .on_start(self._starts("mysql"), self.lock_session)
            .on_start(self._starts("mysqldump"), self.mysqldump)
            # the binlog files' times: its clock, then a file an hour old and a new one
            .on(
                lambda argv, stdin: argv[:2] == ["sh", "-c"] and "stat" in argv[2],
                Reply("10000\n6400\n10000\n"),
            )
        )

    @property
    def sid(self) -> str:
        return str(self.server_id or self.ip.rsplit(".", 1)[-1] or "1")

    def _starts(self, program: str) -> Match:
        def match(argv: list[str], stdin: bytes) -> bool:
            if argv[:1] != [program]:
                return False
            self.started.append(argv)
            return True

        return match

    def lock_session(self, stdin: bytes) -> bytes:
        """FLUSH TABLES WITH READ LOCK's session: the binlog coordinates, then
        the marker that ends them."""
        marker = re.search(r"SELECT '(labctl-[0-9a-f]+):end'", stdin.decode())
        if not marker:
            return b""
        tag = marker.group(1)
        return f"mysql-bin.000002\t900\t\t\n{tag}:gtid\t{self.binlog_pos}\n{tag}:end\n".encode()

    def mysqldump(self, stdin: bytes) -> bytes:
        """The application schema and the writer's rows, as statements."""
        rows = ", ".join(f"({n})" for n in self.rows)
        return b"CREATE DATABASE app;\n" + (
            f"INSERT INTO labctl_writer.acked VALUES {rows};\n".encode() if rows else b""
        )

    def answer(self, stdin: bytes) -> Reply:
        if self.dead:
            return Reply(
                "",
                "ERROR 2002 (HY000): Can't connect to local server through socket "
                "'/run/mysqld/mysqld.sock' (2)\n",
                1,
            )
        out = ""
        for statement in (s.strip() for s in stdin.decode().split(";\n")):
            if statement:
                self.log.append(statement)
                self.journal.append(f"{self.name}: {statement}")
                if self.fails_on and statement.startswith(self.fails_on):
                    error = 'ERROR 1030 (HY000) at line 2: Got error 28 "No space left on device"'
                    return Reply("", error + "\n", 1)
                out = self.one(statement)
        return Reply(out)

    def one(self, sql: str) -> str:
        if sql == "SELECT VERSION() AS version":
            return f"version\n{self.version}\n"
        if sql.startswith("SHOW GLOBAL VARIABLES"):
            values = {
                "gtid_binlog_pos": self.binlog_pos,
                "gtid_slave_pos": self.applied,
                "gtid_executed": self.binlog_pos,
                "gtid_mode": self.gtid_mode,
                "gtid_binlog_state": self.binlog_state or self.binlog_pos,
                "log_bin": "ON",
                "binlog_format": "ROW",
                "super_read_only": "ON" if self.read_only else "OFF",
                "server_id": self.sid,
                "log_bin_basename": "/var/lib/mysql/mysql-bin",
                "binlog_expire_logs_seconds": "864000",
                "expire_logs_days": "10.000000",
                "server_uuid": f"uuid-{self.name}",
            }
            wanted = re.findall(r"'(\w+)'", sql)
            return "Variable_name\tValue\n" + "".join(f"{n}\t{values[n]}\n" for n in wanted)
        if sql in ("SHOW SLAVE STATUS", "SHOW REPLICA STATUS"):
            if not self.source:
                return ""
            read, done = 900, 900 - min(self.relay_behind, 1) * 100
            self.relay_behind = max(0, self.relay_behind - 1)
            return (
                "Master_Host\tSlave_IO_Running\tSlave_SQL_Running\tSeconds_Behind_Master\t"
                "Master_Log_File\tRead_Master_Log_Pos\tRelay_Master_Log_File\tExec_Master_Log_Pos\n"
                f"{self.source}\t{self.io}\tYes\t0\tmysql-bin.000002\t{read}\t"
                f"mysql-bin.000002\t{done}\n"
            )
        if sql.startswith("SELECT VERSION() AS version, @@GLOBAL.server_id"):
            return f"version\tserver_id\tread_only\n{self.version}\t{self.sid}\t{int(self.read_only)}\n"
        if sql.startswith("SHOW GLOBAL STATUS WHERE Variable_name IN"):
            return (
                "Variable_name\tValue\nQuestions\t7200\nRpl_semi_sync_master_status\tOFF\n"
                "Rpl_semi_sync_slave_status\tOFF\nThreads_connected\t3\nUptime\t3600\n"
            )
        if "FROM information_schema.schemata" in sql:
            return "s\napp\n"
        if sql.startswith("SELECT COALESCE(SUM(data_length + index_length), 0) AS bytes"):
            return "bytes\n1572864\n"
        if sql == "SHOW BINARY LOGS":
            return "Log_name\tFile_size\nmysql-bin.000001\t688\nmysql-bin.000002\t638\n"
        if sql.startswith("SELECT USER AS user, HOST AS host, COMMAND AS command"):
            return "user\thost\tcommand\tstate\ttime\n" + "".join(
                f"repl\t{h}:40000\tBinlog Dump\tMaster has sent all binlog to slave; "
                "waiting for more updates\t14\n"
                for h in sorted(self.dumps.values())
            )
        if sql.startswith("SELECT User AS user, Host AS host FROM mysql.user"):
            return f"user\thost\nrepl\t{self.repl_host}\nroot\tlocalhost\n"
        if sql.startswith("SELECT table_schema AS s, table_name AS t, engine AS e"):
            return "s\tt\te\n" + "".join(f"app\t{t}\tMyISAM\n" for t in self.myisam)
        if m := re.match(r"SET GLOBAL server_id = (\d+)$", sql):
            self.server_id = int(m.group(1))
            return ""
        if sql == "SELECT n FROM labctl_writer.acked":
            return "n\n" + "".join(f"{n}\n" for n in self.rows)
        if sql == "CHECKSUM TABLE labctl_writer.acked":
            return f"Table\tChecksum\nlabctl_writer.acked\t{hash(tuple(sorted(self.rows)))}\n"
        if sql in ("SHOW SLAVE HOSTS", "SHOW REPLICAS"):
            hosts = [p.name for p in self.peers.values() if p.ip in self.dumps.values()]
            return ("Server_id\tHost\n" + "".join(f"1\t{h}\n" for h in hosts)) if hosts else ""
        if sql == "SHOW PROCESSLIST":
            return ""
        if sql == "SELECT @@GLOBAL.read_only AS ro":
            return f"ro\n{int(self.read_only)}\n"
        if sql in ("STOP SLAVE IO_THREAD", "STOP REPLICA IO_THREAD"):
            self.io = "No"
            return ""
        if "GTID_WAIT" in sql or "WAIT_FOR_EXECUTED_GTID_SET" in sql:
            timeout = "-1" if self.mariadb else "1"
            return f"waited\n{timeout if self.late else '0'}\n"
        if m := re.match(r"SET GLOBAL (super_)?read_only = (ON|OFF)", sql):
            self.read_only = m.group(2) == "ON"
            return ""
        if sql.startswith(("RESET SLAVE ALL", "RESET REPLICA ALL")):
            self.source = ""
            return ""
        if m := re.match(r"CHANGE (?:MASTER|REPLICATION SOURCE) TO \w+_HOST='([^']+)'", sql):
            self.source = m.group(1)
            return ""
        if sql in ("START SLAVE", "START REPLICA"):
            self.io = "Yes"
            self.connect_dump()
            return ""
        if sql.startswith("SELECT ID AS id, HOST AS host FROM information_schema.PROCESSLIST"):
            return "id\thost\n" + "".join(f"{i}\t{h}:40000\n" for i, h in self.dumps.items())
        if m := re.match(r"KILL (\d+)$", sql):
            self.dumps.pop(int(m.group(1)))
            return ""
        if sql == "SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos":
            self.applied = self.binlog_pos
            return ""
        if sql == "SELECT @@GLOBAL.gtid_binlog_state = '' AS empty":
            return f"empty\n{int(not (self.binlog_state or self.binlog_pos))}\n"
        if sql == "RESET MASTER":
            self.binlog_pos = self.binlog_state = ""
            return ""
        if m := re.match(r"SET GLOBAL (gtid_binlog_state|gtid_slave_pos) = '([^']*)'$", sql):
            if m.group(1) == "gtid_slave_pos":
                self.applied = m.group(2)
            else:
                self.binlog_state = self.binlog_pos = m.group(2)
            return ""
        if m := re.match(r"INSERT INTO labctl_writer\.acked VALUES (.+)$", sql):
            if self.gate is not None:
                self.gate.wait()  # BrokenBarrierError unless the others load meanwhile
            self.rows += [int(n) for n in re.findall(r"\((\d+)\)", m.group(1))]
            return ""
        if sql.startswith(
            ("STOP ", "START ", "SET SESSION sql_log_bin", "CREATE USER", "ALTER USER", "GRANT")
        ):
            return ""
        if sql.startswith(("DROP TABLE", "CREATE DATABASE", "CREATE TABLE", "SET GLOBAL rpl_semi")):
            return ""
        raise AssertionError(f"{self.name}: unexpected statement {sql!r}")


_CONNECTING = threading.Lock()


def lab(home: Path, monkeypatch: pytest.MonkeyPatch, version: str = MARIADB, **kw) -> dict:
    """A mysql-pair lab with two replicas (or as `kw` says), each server fake."""
    spec = topology("mysql-pair", name="db", subnet="192.168.56", **{"replicas": 2, **kw})
    return fake_servers(home, monkeypatch, spec, version)


def fake_servers(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    spec: LabSpec,
    version: str = MARIADB,
    position: str = "0-20-105",
) -> dict:
    """`spec` recorded as a lab, each mysql machine a fake server replicating
    as the lab says, every one at `position`."""
    servers = {}
    journal: list[str] = []
    for m in topo.machines(spec):
        source = m.option(topo.REPLICA, "source")
        servers[m.name] = FakeServer(
            m.name,
            version,
            journal=journal,
            source="" if source is None else spec.machine(source).ip,
            binlog_pos=position,
            applied="" if source is None else position,
            read_only=source is not None,
            ip=m.ip,
        )
    peers = {s.ip: s for s in servers.values()}
    for server in servers.values():
        server.peers = peers
        server.connect_dump()
    install(monkeypatch, home, spec, [s.transport() for s in servers.values()])
    secrets = home / spec.name / "secrets"
    secrets.mkdir()
    (secrets / repl.REPL_SECRET).write_text(PASSWORD + "\n")
    return servers


def writes(servers: dict) -> list[str]:
    """The statements that changed something, in the order sent."""
    journal = next(iter(servers.values())).journal
    return [line for line in journal if not line.split(": ", 1)[1].startswith(("SELECT", "SHOW"))]

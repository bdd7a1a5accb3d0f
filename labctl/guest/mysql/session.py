"""A MySQL/MariaDB server in a guest, driven over a transport.

SQL always travels on the client's stdin, never on its command line, so no
statement (and no password in one) shows up in a process list. The client
runs as root through sudo: both distributions authenticate root@localhost by
its Unix socket, so no password file is needed in the guest.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from labctl.errors import GuestError
from labctl.guest.mysql import rules as mysql
from labctl.transport.interface import RemoteProcess, Transport

CLIENT = ["mysql", "--batch", "--unbuffered"]
SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")


class SqlError(GuestError):
    """A statement failed on a server; the message names the machine."""


class MysqlServer:
    """One server: queries, its version, its replication state."""

    def __init__(self, transport: Transport) -> None:
        self.t = transport
        self.name = transport.name
        self._sql: mysql.Server | None = None

    @classmethod
    def detected(cls, transport: Transport) -> MysqlServer:
        """A server whose version is asked now, in the calling thread (each()
        runs it on every machine at once), so later calls need not ask."""
        server = cls(transport)
        server.sql  # noqa: B018 (SELECT VERSION(), once)
        return server

    def query(
        self, sql: str, timeout: float | None = 60.0, vertical: bool = False
    ) -> list[mysql.Row]:
        """Rows of the (last) result set of `sql`; vertical: the client's \\G layout."""
        out = self._client(sql.encode(), timeout, ["--vertical"] if vertical else [])
        return mysql.parse_vertical(out) if vertical else mysql.parse_tab(out)

    def feed(self, script: IO[bytes], timeout: float | None) -> None:
        """A long script (a dump) streamed to the client."""
        self._client(script, timeout)

    def _client(
        self, stdin: bytes | IO[bytes], timeout: float | None, flags: Sequence[str] = ()
    ) -> str:
        """The client's output; SqlError with its last error line."""
        result = self.t.run([*CLIENT, *flags], sudo=True, stdin=stdin, timeout=timeout)
        if not result.ok:
            lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
            reason = mysql.mask_secrets(lines[-1]) if lines else f"exit status {result.exit_code}"
            if result.exit_code == 127 or "command not found" in reason:
                raise SqlError(
                    f"{self.name}: no MySQL/MariaDB client here",
                    hint="is it a MySQL lab? labctl mysql-pair",
                )
            if "ERROR 2002" in reason:
                raise SqlError(f"{self.name}: the MySQL/MariaDB server is not running ({reason})")
            raise SqlError(f"{self.name}: {reason}")
        return result.stdout

    def execute(self, *statements: str, log_bin: bool = True) -> None:
        """Run statements in one session; with log_bin=False they stay out of the binlog."""
        prefix = [] if log_bin else ["SET SESSION sql_log_bin=0"]
        self.query("".join(f"{s};\n" for s in (*prefix, *statements)))

    @property
    def sql(self) -> mysql.Server:
        """The statements this server understands (its flavor and version)."""
        if self._sql is None:
            rows = self.query("SELECT VERSION() AS version")
            self._sql = mysql.parse_version(rows[0]["version"])
        return self._sql

    @property
    def is_mysql(self) -> bool:
        """MySQL, not MariaDB."""
        return self.sql.mysql

    def variables(self, *names: str) -> dict[str, str]:
        wanted = ", ".join(mysql.quote(n) for n in names)
        rows = self.query(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({wanted})")
        return {r["Variable_name"]: r["Value"] for r in rows}

    def variable(self, name: str) -> str:
        """One global variable ("" where the server has none of that name)."""
        return self.variables(name).get(name, "")

    def gtid_written(self) -> str:
        """What this server has written to its own binlog, as GTIDs."""
        return self.variable(self.sql.gtid_binlog_variable())

    def gtid_applied(self) -> str:
        """What this server has applied from a source, as GTIDs."""
        return self.variable(self.sql.gtid_applied_variable())

    def replica_rows(self) -> list[mysql.Row]:
        return self.query(self.sql.replica_status())

    def replica(self) -> mysql.ReplicaState | None:
        return mysql.active_channel(self.replica_rows())

    def replicas(self) -> list[str]:
        listed = self.query(self.sql.replicas())
        processes = [] if listed else self.query("SHOW PROCESSLIST")
        return mysql.connected_replicas(listed, processes)

    def role(self) -> mysql.Role:
        return mysql.decide_role(
            self.variables("log_bin", "binlog_format"), self.replica_rows(), self.replicas()
        )

    def drop_dump_threads(self, hosts: set[str]) -> list[str]:
        """End this server's binlog dump threads to `hosts` (addresses of
        replicas that now replicate from elsewhere): a dump thread notices a
        gone replica only at its next heartbeat, and lists it as a replica
        until then. The hosts whose threads were ended."""
        rows = self.query(
            "SELECT ID AS id, HOST AS host FROM information_schema.PROCESSLIST "
            "WHERE COMMAND LIKE 'Binlog Dump%'"
        )
        ended = []
        for row in rows:
            host = row["host"].rsplit(":", 1)[0]
            if host in hosts and row["id"].isdigit():
                try:
                    self.execute(f"KILL {int(row['id'])}")
                except SqlError as exc:
                    if "Unknown thread id" not in exc.message:
                        raise
                ended.append(host)
        return ended

    def binlog(self) -> tuple[str, int]:
        return mysql.binlog_coordinates(self.query(self.sql.binlog_status()))

    def file_times(self, paths: Sequence[str]) -> str:
        """The guest's clock, then each path's modification time (epoch
        seconds, one a line): the guest's clock, since a VM's may not be ours."""
        if not paths:
            return ""
        script = 'date +%s && exec stat --format=%Y -- "$@"'
        result = self.t.run(["sh", "-c", script, "sh", *paths], sudo=True, timeout=30)
        return result.stdout if result.ok else ""

    def user_schemas(self) -> list[str]:
        excluded = ", ".join(mysql.quote(s) for s in SYSTEM_SCHEMAS)
        rows = self.query(
            f"SELECT schema_name AS s FROM information_schema.schemata WHERE schema_name NOT IN ({excluded})"
        )
        return sorted(r["s"] for r in rows)

    @contextmanager
    def read_lock(self) -> Iterator[Snapshot]:
        """FLUSH TABLES WITH READ LOCK, held by one client session for as long
        as the block runs; the coordinates are read inside that same session
        (the lock lives and dies with it)."""
        session = self.t.start([*CLIENT, "--skip-column-names"], sudo=True)
        try:
            yield Snapshot.take(session, self.sql)
            session.write(b"UNLOCK TABLES;\n")
            session.close_stdin()
            done = session.wait(timeout=30)
            if not done.ok:
                why = mysql.mask_secrets(done.stderr.strip()) or "lock session failed"
                raise SqlError(f"{self.name}: {why}")
        finally:
            session.kill()


@dataclass(frozen=True)
class Snapshot:
    """The source's position while its read lock is held."""

    log_file: str
    log_pos: int
    gtid: str

    @classmethod
    def take(cls, session: RemoteProcess, server: mysql.Server) -> Snapshot:
        marker = f"labctl-{secrets.token_hex(4)}"
        session.write(
            (
                "FLUSH TABLES WITH READ LOCK;\n"
                f"{server.binlog_status()};\n"
                f"SELECT '{marker}:gtid', @@GLOBAL.{server.gtid_binlog_variable()};\n"
                f"SELECT '{marker}:end';\n"
            ).encode()
        )
        lines = session.read_until(f"{marker}:end\n".encode()).decode().splitlines()
        gtid_line = next(ln for ln in lines if ln.startswith(f"{marker}:gtid"))
        status = lines[: lines.index(gtid_line)]
        if not status or not status[0].split("\t")[0]:
            raise SqlError(f"{session.host}: binary logging is off, so it cannot be a source")
        fields = status[0].split("\t")
        gtid = gtid_line.split("\t", 1)[1] if "\t" in gtid_line else ""
        return cls(
            fields[0],
            int(fields[1]),
            "" if gtid == "NULL" else mysql.unescape(gtid).replace("\n", ""),
        )


def dump_argv(server: mysql.Server, schemas: Sequence[str]) -> list[str]:
    """mysqldump of the application schemas. The caller holds FTWRL, so the
    position is already known: no --master-data/--source-data (on MySQL
    8.0.26+ --master-data adds a warning that corrupts the dump)."""
    argv = [
        "mysqldump",
        "--single-transaction",
        "--routines",
        "--events",
        "--triggers",
        "--hex-blob",
    ]
    if server.mysql:
        argv.append("--set-gtid-purged=OFF")
    return [*argv, "--databases", *schemas]

"""`labctl mysql switchover`: the candidate chosen from GTID positions, the
statements each server gets per flavor (through fake servers that keep
their replication state), refusals that change nothing, and the lab's
record following the move (the new topology itself: test_mysql_topology)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from labctl import roles
from labctl.errors import GuestError, SpecError
from labctl.guest.mysql import replication as repl
from labctl.guest.mysql import rules as mysql
from labctl.guest.mysql import topology as topo
from labctl.lab.home import LabHome
from labctl.lab.spec import LabSpec
from labctl.ops.mysql import switchover

from ...fakes import FakeTransport, Reply, data, install
from ...labs import from_text, topology

MARIADB = data("mysql/mariadb-version.tab.txt").splitlines()[1]
MYSQL8 = "8.0.36-0ubuntu0.22.04.1"
PASSWORD = "Repl-Pa55-word"


# ---------------------------------------------------------------- the candidate


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("", 0),
        ("0-20-105", 105),  # MariaDB gtid_slave_pos, one domain
        ("0-21-7,1-20-40", 47),  # two domains
        ("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5", 5),  # MySQL, one interval
        ("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-100:102-110,\n4a1b:1-5", 114),
        ("3e11fa47-71ca-11e1-9e33-c80aa9429562:7", 1),
    ],
)
def test_gtid_positions_are_counted_per_flavor(text: str, count: int) -> None:
    assert mysql.gtid_count(text) == count


def test_the_most_advanced_replica_is_chosen_the_first_of_equals() -> None:
    assert mysql.most_advanced({"r1": "0-20-99", "r2": "0-20-105", "r3": "0-20-105"}) == "r2"
    assert mysql.most_advanced({"va": "u1:1-10", "vb": "u1:1-10,u2:1-2", "vc": "u1:1-11"}) == "vb"
    with pytest.raises(ValueError, match="not a GTID"):
        mysql.gtid_count("0-20-x")


# ---------------------------------------------------------------- statements per flavor


def test_switchover_statements_for_mariadb() -> None:
    s = mysql.parse_version(MARIADB)
    assert s.read_only(True) == ["SET GLOBAL read_only = ON"]
    assert s.read_only(False) == ["SET GLOBAL read_only = OFF"]
    assert s.wait_for_gtid("0-20-7", 30) == "SELECT MASTER_GTID_WAIT('0-20-7', 30) AS waited"
    assert s.promote() == ["STOP SLAVE", "RESET SLAVE ALL"]
    demote = s.demote("10.0.0.21", "pw")
    assert demote[:4] == [
        "STOP SLAVE",
        "RESET SLAVE ALL",
        "SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos",
        "SET GLOBAL rpl_semi_sync_master_enabled = OFF",
    ]
    assert demote[4].startswith("CHANGE MASTER TO MASTER_HOST='10.0.0.21'")
    assert demote[4].endswith("MASTER_USE_GTID=slave_pos") and demote[5] == "START SLAVE"
    assert s.repoint("10.0.0.21", "pw")[0] == "STOP SLAVE"
    assert s.semi_sync_source(60000) == [
        "SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC",
        "SET GLOBAL rpl_semi_sync_master_timeout = 60000",
        "SET GLOBAL rpl_semi_sync_master_enabled = ON",
    ]
    assert s.semi_sync_replica() == [
        "SET GLOBAL rpl_semi_sync_slave_enabled = ON",
        "STOP SLAVE IO_THREAD",
        "START SLAVE IO_THREAD",
    ]


def test_switchover_statements_for_mysql_8() -> None:
    s = mysql.parse_version(MYSQL8)
    assert s.read_only(True) == ["SET GLOBAL super_read_only = ON"]
    assert s.read_only(False) == ["SET GLOBAL super_read_only = OFF", "SET GLOBAL read_only = OFF"]
    assert (
        s.wait_for_gtid("u:1-5", 30) == "SELECT WAIT_FOR_EXECUTED_GTID_SET('u:1-5', 30) AS waited"
    )
    assert s.promote() == ["STOP REPLICA", "RESET REPLICA ALL"]
    demote = s.demote("10.0.0.21", "pw")
    assert demote[:2] == ["STOP REPLICA", "RESET REPLICA ALL"]  # MySQL needs no position
    assert demote[2].startswith("CHANGE REPLICATION SOURCE TO SOURCE_HOST='10.0.0.21'")
    assert "SOURCE_AUTO_POSITION=1" in demote[2] and demote[3] == "START REPLICA"


# ---------------------------------------------------------------- fake servers


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

    def connect_dump(self) -> None:
        """This replica's IO thread connected: a dump thread on its source,
        which stays until killed (as a real one does until its next heartbeat)."""
        source = self.peers.get(self.source)
        if source is not None and self.ip not in source.dumps.values():
            source.dumps[len(source.dumps) + 100] = self.ip

    def transport(self) -> FakeTransport:
        return FakeTransport(self.name).on(
            lambda argv, stdin: argv[:1] == ["mysql"], lambda argv, stdin: self.answer(stdin)
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
            sid = self.ip.rsplit(".", 1)[-1] or "1"
            return f"version\tserver_id\tread_only\n{self.version}\t{sid}\t{int(self.read_only)}\n"
        if sql.startswith("SHOW GLOBAL STATUS WHERE Variable_name IN"):
            return (
                "Variable_name\tValue\nQuestions\t7200\nRpl_semi_sync_master_status\tOFF\n"
                "Rpl_semi_sync_slave_status\tOFF\nThreads_connected\t3\nUptime\t3600\n"
            )
        if "FROM information_schema.schemata" in sql:
            return "s\napp\n"
        if sql.startswith("SELECT COALESCE(SUM(data_length + index_length), 0) AS bytes"):
            return "bytes\n1572864\n"
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
        if sql.startswith(
            ("STOP ", "START ", "SET SESSION sql_log_bin", "CREATE USER", "ALTER USER", "GRANT")
        ):
            return ""
        if sql.startswith(("DROP TABLE", "CREATE DATABASE", "CREATE TABLE", "SET GLOBAL rpl_semi")):
            return ""
        raise AssertionError(f"{self.name}: unexpected statement {sql!r}")


IPS = {"primary": "192.168.56.20", "replica1": "192.168.56.21", "replica2": "192.168.56.22"}


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


def test_switchover_on_mariadb_end_to_end_through_the_statements(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers = lab(home, monkeypatch)
    servers["replica2"].applied = "0-20-104"  # replica1 has applied the most: chosen
    done = switchover.switchover(LabHome(home), "db")
    assert (done.old, done.new, done.position) == ("primary", "replica1", "0-20-105")
    assert done.edges == {"primary": "replica1", "replica2": "replica1"}
    p, r1, r2 = servers["primary"], servers["replica1"], servers["replica2"]
    # the primary closes first; every replica waits for its position
    assert p.log.index("SET GLOBAL read_only = ON") < p.log.index(
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('gtid_binlog_pos')"
    )
    for r in (r1, r2):
        assert "SELECT MASTER_GTID_WAIT('0-20-105', 30) AS waited" in r.log
    # the new primary: the replication account, outside the binlog; then it stops replicating
    r1_writes = [line for line in r1.log if not line.startswith(("SELECT", "SHOW"))]
    assert r1_writes[0] == "SET SESSION sql_log_bin=0"
    assert r1_writes[1].startswith("CREATE USER IF NOT EXISTS 'repl'@'192.168.56.%'")
    assert r1_writes[-3:] == ["STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only = OFF"]
    # the old primary: its own binlog position is what it has applied
    demoted = [line for line in p.log if not line.startswith(("SELECT", "SHOW"))]
    assert demoted[1:5] == [
        "STOP SLAVE",
        "RESET SLAVE ALL",
        "SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos",
        "SET GLOBAL rpl_semi_sync_master_enabled = OFF",
    ]
    assert demoted[5].startswith("CHANGE MASTER TO MASTER_HOST='192.168.56.21'")
    assert "MASTER_USE_GTID=slave_pos" in demoted[5]
    # the end: one writable server, every other replicating from the new one
    assert {n: (s.read_only, s.source) for n, s in servers.items()} == {
        "primary": (True, "192.168.56.21"),
        "replica1": (False, ""),
        "replica2": (True, "192.168.56.21"),
    }
    # the new primary opened last, after every replica moved
    order = writes(servers)
    opened = order.index("replica1: SET GLOBAL read_only = OFF")
    assert opened > max(i for i, w in enumerate(order) if "START SLAVE" in w)
    # the password only on stdin, never on a command line
    assert PASSWORD in "".join(p.log)
    spec = LabHome(home).load("db")
    assert topo.sources(spec) == {"primary": "replica1", "replica2": "replica1"}
    assert [m.name for m in spec.with_role(topo.PRIMARY)] == ["replica1"]
    # the old primary's dump threads to its former replicas ended: the roles read
    # right at once, not after the next heartbeat
    assert "KILL 100" in p.log and p.dumps == {}
    from labctl.ops.mysql import observe as ops

    roles = {o.vm: o.value.role for o in ops.roles(LabHome(home), "db") if o.value}
    assert roles == {"primary": "replica", "replica1": "primary", "replica2": "replica"}


def test_switchover_on_mysql_8_with_gtids(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    servers = lab(home, monkeypatch, MYSQL8)
    for s in servers.values():
        s.binlog_pos = s.applied = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-105"
    done = switchover.switchover(LabHome(home), "db", "replica2")
    assert done.new == "replica2"
    r2 = servers["replica2"]
    assert (
        "SELECT WAIT_FOR_EXECUTED_GTID_SET('3e11fa47-71ca-11e1-9e33-c80aa9429562:1-105', 30) "
        "AS waited"
    ) in r2.log
    assert r2.log[-2:] == ["SET GLOBAL super_read_only = OFF", "SET GLOBAL read_only = OFF"]
    moved = [line for line in servers["primary"].log if "SOURCE_HOST" in line]
    assert moved and "SOURCE_HOST='192.168.56.22'" in moved[0]
    assert "SOURCE_AUTO_POSITION=1" in moved[0] and "GET_SOURCE_PUBLIC_KEY=1" in moved[0]
    assert not any("gtid_slave_pos" in line for line in servers["primary"].log)


def test_mysql_without_gtids_is_refused_before_anything_changes(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers = lab(home, monkeypatch, MYSQL8)
    for s in servers.values():
        s.gtid_mode = "OFF"
    with pytest.raises(SpecError, match="MySQL without GTIDs"):
        switchover.switchover(LabHome(home), "db")
    assert writes(servers) == []


def test_a_chain_stays_a_chain(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    servers = lab(home, monkeypatch, chain=True)
    assert servers["replica2"].source == IPS["replica1"]
    done = switchover.switchover(LabHome(home), "db", "replica1")
    assert done.edges == {"primary": "replica1", "replica2": "primary"}
    assert servers["replica2"].source == IPS["primary"]
    assert topo.sources(LabHome(home).load("db")) == done.edges


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("primary", "primary is a primary already"),
        ("nosuch", "has no machine 'nosuch'"),
    ],
)
def test_a_bad_target_is_refused_and_nothing_changes(
    home: Path, monkeypatch: pytest.MonkeyPatch, target: str, message: str
) -> None:
    servers = lab(home, monkeypatch)
    before = (home / "db" / "lab.json").read_text()
    with pytest.raises(SpecError, match=message):
        switchover.switchover(LabHome(home), "db", target)
    assert writes(servers) == [] and (home / "db" / "lab.json").read_text() == before


def test_a_target_that_is_not_a_mysql_machine(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = from_text(
        "name: db\nmachines:\n  web: {}\n  sql1:\n    roles: [mysql-primary]\n"
        "  sql2:\n    roles: [mysql-replica]\n",
        name="db",
    ).spec
    install(monkeypatch, home, spec)
    with pytest.raises(SpecError, match="web is not a mysql machine"):
        switchover.switchover(LabHome(home), "db", "web")


def test_a_stopped_server_is_refused(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    servers = lab(home, monkeypatch)
    spec = LabHome(home).load("db")
    install(
        monkeypatch, home, spec, [s.transport() for s in servers.values()], {"replica2": "stopped"}
    )
    with pytest.raises(GuestError, match="needs every server of primary's tree running: replica2"):
        switchover.switchover(LabHome(home), "db", "replica1")
    assert writes(servers) == []


def test_broken_replication_is_refused(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    servers = lab(home, monkeypatch)
    servers["replica2"].source = ""
    with pytest.raises(GuestError, match="replica2 does not replicate from primary"):
        switchover.switchover(LabHome(home), "db", "replica1")
    assert writes(servers) == []


def test_a_replica_that_cannot_catch_up_leaves_the_primary_as_it_was(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers = lab(home, monkeypatch)
    servers["replica2"].late = True
    before = (home / "db" / "lab.json").read_text()
    with pytest.raises(
        GuestError, match=r"replica2 did not apply primary's last writes within 30 s"
    ):
        switchover.switchover(LabHome(home), "db", "replica1")
    assert writes(servers) == [
        "primary: SET GLOBAL read_only = ON",
        "primary: SET GLOBAL read_only = OFF",
    ]
    assert (home / "db" / "lab.json").read_text() == before
    assert not (home / "db" / ".labctl" / "moved-roles.json").exists()


# ---------------------------------------------------------------- the record follows


FILE = (
    "name: db\nmachines:\n"
    "  sql1:\n    roles: [mysql-primary]\n"
    "  sql2:\n    roles: [mysql-replica]\n"
    "  sql3:\n    roles: [mysql-replica]\n"
)


def test_a_file_as_it_was_keeps_the_moved_roles_an_edited_one_wins() -> None:
    declared = from_text(FILE, name="db").spec
    live = topo.moved(declared, {"sql1": "sql2", "sql3": "sql2"})
    moves = roles.moves(declared, live, {})
    assert set(moves) == {"sql1", "sql2", "sql3"}
    # the same file again: built with the roles as they are now
    again = from_text(FILE, name="db", moved=moves).spec
    assert topo.sources(again) == {"sql1": "sql2", "sql3": "sql2"}
    assert [m.name for m in again.with_role(topo.PRIMARY)] == ["sql2"]
    # the file edited where labctl moved a role: the file wins, whole
    edited = FILE.replace(
        "  sql3:\n    roles: [mysql-replica]\n",
        "  sql3:\n    roles:\n      - mysql-replica: {source: sql2}\n",
    )
    mine = from_text(edited, name="db", moved=moves).spec
    assert topo.sources(mine) == {"sql2": "sql1", "sql3": "sql2"}
    # a machine added beside the moved ones: the moves still hold
    grown = from_text(FILE + "  web: {}\n", name="db", moved=moves).spec
    assert topo.sources(grown) == topo.sources(again)


def test_moves_carry_on_and_drop_out_when_back_where_the_file_said() -> None:
    declared = from_text(FILE, name="db").spec
    once = topo.moved(declared, {"sql1": "sql2", "sql3": "sql2"})
    first = roles.moves(declared, once, {})
    twice = topo.moved(once, {"sql2": "sql3", "sql1": "sql3"})
    second = roles.moves(once, twice, first)
    assert second["sql1"]["declared"] == {"mysql-primary": {}}  # what the file said, kept
    assert second["sql3"]["live"] == {"mysql-primary": {}}
    back = topo.moved(twice, {"sql2": "sql1", "sql3": "sql1"})
    assert roles.moves(twice, back, second) == {}  # as the file declares: nothing to follow


def test_up_of_the_same_file_after_a_switchover_plans_nothing(
    home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`up -f` of the unchanged file neither undoes the switchover nor
    reprovisions a machine: the plan shows the roles as they are."""
    from labctl.ops.up.prepare import Purpose, prepare
    from labctl.ops.up.source import Request

    lab_file = tmp_path / "db.yaml"
    lab_file.write_text(FILE)
    first = prepare(LabHome(home), None, None, Request(file=str(lab_file)), Purpose.VALIDATE)
    fake_servers(home, monkeypatch, first.spec, position="0-10-7")
    (home / "db" / "lab.yaml").write_text(FILE)
    for m in first.spec.machines:  # made by Vagrant
        (home / "db" / ".vagrant" / "machines" / m.name / "docker").mkdir(parents=True)
        (home / "db" / ".vagrant" / "machines" / m.name / "docker" / "id").write_text(m.name)

    switchover.switchover(LabHome(home), "db", "sql3")
    again = prepare(LabHome(home), None, None, Request(file=str(lab_file)), Purpose.VALIDATE)
    assert topo.sources(again.spec) == {"sql1": "sql3", "sql2": "sql3"}
    assert again.changes == []
    assert topo.sources(LabHome(home).load("db")) == {"sql1": "sql3", "sql2": "sql3"}

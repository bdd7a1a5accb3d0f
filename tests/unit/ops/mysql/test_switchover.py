"""`labctl mysql switchover`: the candidate chosen from GTID positions, the
statements each server gets per flavor (through fake servers that keep
their replication state), refusals that change nothing, and the lab's
record following the move (the new topology itself: test_mysql_topology)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl import roles
from labctl.errors import GuestError, SpecError
from labctl.guest.mysql import rules as mysql
from labctl.guest.mysql import topology as topo
from labctl.lab.home import LabHome
from labctl.ops.mysql import switchover

from ...fakes import install
from ...labs import from_text
from ...mysql_servers import MARIADB, PASSWORD, fake_servers, lab, writes

MYSQL8 = "8.0.36-0ubuntu0.22.04.1"


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


# ---------------------------------------------------------------- through fake servers


IPS = {"primary": "192.168.56.20", "replica1": "192.168.56.21", "replica2": "192.168.56.22"}


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

"""`labctl mysql drill`: a failover rehearsed under load, and what it cost.

A writer on the host inserts numbered rows into the primary and records
every acknowledged commit; the fault hits the primary (its machine halted,
mysqld killed, or its links cut); labctl notices, fails over, and the writer
goes on against the new primary. Then the rows are counted: acknowledged,
present on the new primary, lost, and the same on every replica.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from labctl.errors import GuestError, LabctlError, SpecError
from labctl.events import OnEvent, ignore, info
from labctl.guest.mysql import topology as topo
from labctl.guest.mysql import writer
from labctl.guest.mysql.session import MysqlServer
from labctl.lab.home import LabHome
from labctl.local.deadline import tries
from labctl.ops import link
from labctl.ops.mysql import failover, handover
from labctl.session.group import LabSession
from labctl.vagrant.driver import VagrantDriver

FAULTS = ("halt", "kill-mysqld", "cut")
DETECT_TIMEOUT = 60.0
KILL_MYSQLD = ["sh", "-c", "pkill -KILL -x mariadbd || pkill -KILL -x mysqld"]


@dataclass(frozen=True)
class DrillReport:
    """The numbers of one drill (times in milliseconds)."""

    fault: str
    semi_sync: bool
    rate: float
    old: str
    new: str
    acknowledged: int
    present: int  # of the acknowledged rows, on the new primary
    lost: list[int]  # acknowledged, not on the new primary
    in_doubt: list[int]  # the connection died in the commit: unknown to the writer
    replicas: dict[str, bool] = field(default_factory=dict)  # same rows as the new primary
    write_outage_ms: int = 0
    detect_ms: int = 0
    promote_ms: int = 0
    may_be_lost: list[str] = field(default_factory=list)


def check_options(fault: str, rate: float, before: float, after: float) -> None:
    if fault not in FAULTS:
        raise SpecError(f"--fault {fault!r}: one of {', '.join(FAULTS)}")
    if not 1 <= rate <= 2000:
        raise SpecError(f"--rate {rate:g}: from 1 to 2000 rows a second")
    for name, value in (("--before", before), ("--after", after)):
        if not 0.5 <= value <= 600:
            raise SpecError(f"{name} {value:g}: from 0.5 to 600 seconds")


def drill(
    home: LabHome,
    lab: str | None,
    fault: str = "halt",
    rate: float = 200.0,
    semi_sync: bool = False,
    before: float = 3.0,
    after: float = 3.0,
    on_event: OnEvent | None = None,
) -> DrillReport:
    check_options(fault, rate, before, after)
    on_event = on_event or ignore
    name = home.resolve(lab)
    with home.lock(name, "drill"), LabSession(home, name, hold=False) as session:
        spec = session.spec
        if topo.stale(spec):
            raise GuestError(
                f"{', '.join(topo.stale(spec))} failed in an earlier failover: rejoin first",
                hint=f"labctl mysql rejoin {topo.stale(spec)[0]}",
            )
        checked = handover.ready(session, None, "a drill")
        old, tree, servers, edges = checked.old, checked.tree, checked.servers, checked.edges
        if semi_sync:
            _semi_sync(servers, old, on_event)
        password = secrets.token_urlsafe(18)
        _prepare_table(servers, old, spec.subnet, password)
        addresses = {n: spec.machine(n).ip for n in tree}
        load = writer.RowWriter(addresses, password, rate).start()
        try:
            time.sleep(before)
            on_event(info(old, f"fault: {fault}"))
            hit = time.monotonic()
            _fault(session, servers, old, fault, edges)
            direct = [r for r, s in edges.items() if s == old]
            gone = _detect(session, old, direct)
            detect_ms = int((time.monotonic() - hit) * 1000)
            on_event(info(old, f"found gone {detect_ms} ms after the fault began"))
            done = failover.failover_in(session, home, None, on_event, gone=gone)
            if semi_sync and [r for r in done.edges if r != done.old]:
                # the new primary waits for its replicas as the old one did
                _semi_sync_source(MysqlServer(session.transport(done.new)))
                on_event(info(done.new, "semi-synchronous source now"))
            time.sleep(after)
        finally:
            tally = load.stop()
            if fault == "cut":
                link.heal_in(session, link.links(session, old, [r for r in edges if r != old]))
        present, lost, replicas = count_rows(session, done, tally)
    return DrillReport(
        fault=fault,
        semi_sync=semi_sync,
        rate=rate,
        old=done.old,
        new=done.new,
        acknowledged=len(tally.acknowledged),
        present=present,
        lost=lost,
        in_doubt=tally.unknown,
        replicas=replicas,
        write_outage_ms=tally.longest_gap_ms,
        detect_ms=detect_ms,
        promote_ms=done.promote_ms,
        may_be_lost=done.may_be_lost,
    )


def _semi_sync(servers: dict[str, MysqlServer], old: str, on_event: OnEvent) -> None:
    """Semi-synchronous replication on every server of the tree: a commit is
    acknowledged once a replica has it (AFTER_SYNC: before the primary's
    own clients can see it)."""
    if any(s.is_mysql for s in servers.values()):
        raise SpecError("--semi-sync is set up on MariaDB only (MySQL needs its plugins installed)")
    # every replica acknowledges; only the primary waits for an acknowledgement
    # (a replica passing on what it applies would wait for replicas it has not)
    for name, server in servers.items():
        if name != old:
            server.execute(*server.sql.semi_sync_replica())
    _semi_sync_source(servers[old])
    on_event(info(old, "semi-synchronous replication (AFTER_SYNC): a commit waits for a replica"))


def _semi_sync_source(server: MysqlServer) -> None:
    # long enough never to fall back to asynchronous during the drill
    server.execute(*server.sql.semi_sync_source(timeout_ms=60000))


def _prepare_table(servers: dict[str, MysqlServer], old: str, subnet: str, password: str) -> None:
    """A fresh table and the writer's account on the primary, on every
    replica before the writer starts."""
    primary = servers[old]
    primary.execute(
        f"DROP TABLE IF EXISTS {writer.TABLE}", *writer.setup_statements(subnet, password)
    )
    position = primary.gtid_written()
    for name, server in servers.items():
        if name != old and not handover.caught_up(server, position, 30):
            raise GuestError(f"{name} did not get the drill's table within 30 s")


def _fault(
    session: LabSession,
    servers: dict[str, MysqlServer],
    old: str,
    fault: str,
    edges: dict[str, str],
) -> None:
    if fault == "halt":
        VagrantDriver(session.paths.root).halt([old])
        session.forget_states()
    elif fault == "kill-mysqld":
        servers[old].t.run(KILL_MYSQLD, sudo=True)
    else:
        link.cut_off(session, old, [r for r in edges if r != old])


def _detect(session: LabSession, old: str, direct: list[str]) -> tuple[str, MysqlServer | None]:
    """Ask until the primary counts as gone (as `failover` judges it)."""
    for last in tries(DETECT_TIMEOUT, every=0.2):
        session.forget_states()
        try:
            return failover.primary_gone(session, old, direct)
        except GuestError:
            if last:
                raise
        except LabctlError:
            pass
    raise GuestError(f"{old} did not fail within {DETECT_TIMEOUT:.0f} s")


def count_rows(
    session: LabSession, done: failover.FailedOver, tally: writer.Tally
) -> tuple[int, list[int], dict[str, bool]]:
    """Of the acknowledged rows: how many the new primary has, and which it
    lacks; each replica's table against the new primary's (CHECKSUM TABLE,
    once it has applied all the new primary has)."""
    new = MysqlServer(session.transport(done.new))
    found = {int(r["n"]) for r in new.query(f"SELECT n FROM {writer.TABLE}", timeout=120)}
    acked = set(tally.acknowledged)
    position = new.gtid_written()
    reference = new.query(f"CHECKSUM TABLE {writer.TABLE}")[0]["Checksum"]
    replicas = {}
    for name in done.edges:
        if name == done.old:
            continue  # stale: its rows are the old primary's
        server = MysqlServer(session.transport(name))
        caught = handover.caught_up(server, position, 30)
        same = server.query(f"CHECKSUM TABLE {writer.TABLE}")[0]["Checksum"] == reference
        replicas[name] = caught and same
    return len(acked & found), sorted(acked - found), replicas

"""`labctl mysql failover`: the primary is gone; the replica that has
received the most applies its relay log and becomes the primary, the old
primary's other replicas replicate from it, and the old primary is recorded
stale (it stays read-only) until `labctl mysql rejoin`. What may have been
lost is said, by GTID.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from labctl.errors import GuestError, LabctlError
from labctl.events import OnEvent, ignore, info
from labctl.guest.mysql import replication as repl
from labctl.guest.mysql import rules as mysql
from labctl.guest.mysql import topology as topo
from labctl.guest.mysql.session import MysqlServer
from labctl.lab import vault
from labctl.lab.home import LabHome
from labctl.local.deadline import tries
from labctl.ops.mysql import handover
from labctl.session.group import LabSession

DRAIN_EVERY = 0.2  # seconds between looks at a draining replica's relay log


@dataclass(frozen=True)
class FailedOver:
    """What a failover did, and what it may have cost."""

    old: str
    new: str
    why: str  # how the old primary was found gone
    old_position: str  # the old primary's last known GTID position
    known_from: str  # where that position comes from
    new_position: str  # the new primary's, when it opened
    may_be_lost: list[str]  # GTIDs the old primary had that the new one lacks
    left_out: list[str]  # replicas that could not be repointed (not running...)
    promote_ms: int
    edges: dict[str, str] = field(default_factory=dict)


def primary_gone(
    session: LabSession, old: str, direct: list[str]
) -> tuple[str, MysqlServer | None]:
    """Why the primary counts as gone; its server when it still answers (a
    partition: then it is fenced read-only first). GuestError when it is
    alive and its replicas are connected: that is a switchover's job."""
    st = session.states().of(old)
    if st is not None and not st.running:
        return f"{old} is not running ({st.describe()})", None
    try:
        server = MysqlServer(session.transport(old))
        read_only = server.query("SELECT @@GLOBAL.read_only AS ro", timeout=10)[0]["ro"]
    except LabctlError as exc:
        return f"{old} does not answer ({exc.message})", None
    if read_only == "1":
        return f"{old} is read-only (restarted, or fenced)", server
    connected = [
        r
        for r in direct
        if (s := MysqlServer(session.transport(r)).replica()) and s.io_running == "Yes"
    ]
    if connected:
        raise GuestError(
            f"{old} answers, takes writes and {', '.join(connected)} replicate from it: "
            "it has not failed",
            hint="a planned change of primary is labctl mysql switchover",
        )
    server.execute(*server.sql.read_only(True))
    return f"{old} is cut off from its replicas (fenced: read-only now)", server


def _drain(server: MysqlServer, seconds: int) -> str:
    """Stop receiving from the failed source, apply what was received; the
    GTID position applied then."""
    server.execute(server.sql.stop_io_thread())
    for last in tries(seconds, every=DRAIN_EVERY):
        state = server.replica()
        if state is None or state.relay_applied or state.sql_running != "Yes":
            break
        if last:
            raise GuestError(f"{server.name} did not apply its relay log within {seconds} s")
    return server.gtid_applied()


def failover(
    home: LabHome,
    lab: str | None,
    target: str | None = None,
    on_event: OnEvent | None = None,
    catch_up: int = handover.CATCH_UP_SECONDS,
) -> FailedOver:
    """The primary is gone: its most advanced running replica (or `target`)
    takes its place; see the module's docstring."""
    name = home.resolve(lab)
    with home.lock(name, "failover"), LabSession(home, name, hold=False) as session:
        return failover_in(session, home, target, on_event or ignore, catch_up)


def failover_in(
    session: LabSession,
    home: LabHome,
    target: str | None,
    on_event: OnEvent,
    catch_up: int = handover.CATCH_UP_SECONDS,
    gone: tuple[str, MysqlServer | None] | None = None,
) -> FailedOver:
    """failover() in a session of a lab whose lock the caller holds; `gone`:
    the primary already found gone (the drill's probe)."""
    spec = session.spec
    name = spec.name
    old, tree = handover.tree(spec, target)
    edges = {r: s for r, s in topo.sources(spec).items() if r in tree}
    direct = [r for r, s in edges.items() if s == old and r not in topo.stale(spec)]
    left_out = [o.vm for o in session.down(direct)]
    reachable = [r for r in direct if r not in left_out]
    why, old_server = gone or primary_gone(session, old, reachable)
    on_event(info(old, why))
    if not reachable:
        raise GuestError(f"no replica of {old} is running to take its place")
    if target is not None and target not in reachable:
        raise GuestError(f"{target} is not a running direct replica of {old}")
    servers = session.each(reachable, MysqlServer.detected).check().values
    handover.check_gtid(servers)
    applied = {r: _drain(servers[r], catch_up) for r in reachable}
    new = _promoted(applied, target)
    started = time.monotonic()
    password = vault.password(home.paths(name), repl.REPL_SECRET)
    repl.ensure_repl_user(servers[new], spec.subnet, password)
    after = {r: new for r in reachable if r != new}
    handover.hand_over(servers, old, new, after, {new: (spec.machine(new).ip, password)}, on_event)
    promote_ms = int((time.monotonic() - started) * 1000)
    new_position = applied[new]
    on_event(info(new, f"the primary, open for writes at {new_position or '(no GTID yet)'}"))

    if old_server is not None:
        old_position, known_from = old_server.gtid_written(), old
    else:
        # its replicas have applied all they received: the most of that is
        # what is known of it (it may have written more, never sent)
        old_position = max(applied.values(), key=mysql.gtid_count)
        known_from = "what its replicas received"
    lost = mysql.missing_from(old_position, new_position) if old_position else []
    before = topo.stale(spec)
    kept = {r: s for r, s in topo.sources(spec).items() if r not in {*direct, old, *before}}
    failed = {r: new for r in [*before, old] if r in tree}
    recorded = {**kept, **after, **failed}
    handover.record(home, spec, topo.moved(spec, recorded, stale=[*before, old]))
    repl.wait_healthy([servers[r] for r in after])
    moved = {r: s for r, s in recorded.items() if r in tree}
    return FailedOver(
        old, new, why, old_position, known_from, new_position, lost, left_out, promote_ms, moved
    )


def _promoted(applied: dict[str, str], target: str | None) -> str:
    """The replica to promote: `target`, unless another has applied more."""
    best = mysql.most_advanced(applied)
    new = target or best
    if mysql.gtid_count(applied[new]) < mysql.gtid_count(applied[best]):
        raise GuestError(
            f"{new} has applied less than {best} ({applied[new] or 'nothing'} vs "
            f"{applied[best]}): promoting it would lose what {best} has",
            hint=f"--to {best}, or leave --to out",
        )
    return new

"""`labctl mysql switchover`: a replica takes the primary's place with
nothing lost, and the lab's record follows.

The sequence (each server's statements are guest/mysql/rules.py's, per flavor):
the primary goes read-only; its GTID position is read; every server of its
tree waits until it has applied that position (else the primary is opened
again and nothing has changed); the target stops replicating; the old
primary and every other server replicate from their new sources by GTID;
the target opens for writes. Only then is the record rewritten.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from labctl.errors import GuestError, SpecError
from labctl.events import OnEvent, ignore, info
from labctl.guest.mysql import replication as repl
from labctl.guest.mysql import rules as mysql
from labctl.guest.mysql import topology as topo
from labctl.guest.mysql.session import MysqlServer
from labctl.lab import vault
from labctl.lab.home import LabHome
from labctl.ops.mysql import handover
from labctl.session.group import LabSession, fan_out


@dataclass(frozen=True)
class Switched:
    """What a switchover did."""

    old: str
    new: str
    position: str  # the GTID position every server had applied at the switch
    read_only_ms: int  # from the old primary closed to the new one open
    edges: dict[str, str] = field(default_factory=dict)  # replica -> source, after

    @property
    def replication(self) -> str:
        return topo.edges_line(self.edges)


def _choose(servers: dict[str, MysqlServer], edges: dict[str, str], old: str) -> str:
    """The direct replica of `old` that has applied the most."""
    direct = [r for r, s in edges.items() if s == old]
    if not direct:
        raise SpecError(f"{old} has no direct replica to hand its role to")
    return mysql.most_advanced({r: servers[r].gtid_applied() for r in direct})


def switchover(
    home: LabHome,
    lab: str | None,
    target: str | None = None,
    on_event: OnEvent | None = None,
    catch_up: int = handover.CATCH_UP_SECONDS,
) -> Switched:
    """The primary's role handed to `target` (default: its most advanced
    direct replica) with no acknowledged write lost."""
    on_event = on_event or ignore
    name = home.resolve(lab)
    with home.lock(name, "switchover"), LabSession(home, name, hold=False) as session:
        spec = session.spec
        checked = handover.ready(session, target, "a switchover")
        old, tree, servers, edges = checked.old, checked.tree, checked.servers, checked.edges
        new = target or _choose(servers, edges, old)
        swapped = topo.swapped(edges, old, new)
        after = {n: swapped[n] for n in tree if n in swapped}  # in the lab's order
        ips = {m.name: m.ip for m in spec.machines}
        password = vault.password(home.paths(name), repl.REPL_SECRET)

        primary = servers[old]
        started = time.monotonic()
        primary.execute(*primary.sql.read_only(True))
        on_event(info(old, "read-only: it takes no more writes"))
        position = _quiesce(primary, [servers[n] for n in tree if n != old], catch_up)
        applied = position or "everything (no GTID yet)"
        on_event(info(old, f"every server of its tree has applied {applied}"))

        for source in dict.fromkeys(after.values()):
            if source not in edges.values():
                repl.ensure_repl_user(servers[source], spec.subnet, password)
        sources = {n: (ips[n], password) for n in after.values()}
        handover.hand_over(servers, old, new, after, sources, on_event)
        closed_ms = int((time.monotonic() - started) * 1000)
        _forget_moved(servers, edges, after, ips)
        on_event(
            info(new, f"the primary, open for writes ({closed_ms} ms without a writable server)")
        )

        whole = [*tree, *checked.stale]
        others = {r: s for r, s in topo.sources(spec).items() if r not in whole}
        stale = {r: new for r in checked.stale}  # rejoin joins them to the primary of the day
        handover.record(
            home, spec, topo.moved(spec, {**others, **after, **stale}, topo.stale(spec))
        )
        repl.wait_healthy([servers[r] for r in after])
    return Switched(old, new, position, closed_ms, after)


def _forget_moved(
    servers: dict[str, MysqlServer],
    before: dict[str, str],
    after: dict[str, str],
    ips: dict[str, str],
) -> None:
    """Each source's dump threads to the replicas that left it, ended: the
    roles read right at once (SHOW SLAVE HOSTS), not after a heartbeat."""
    for source in dict.fromkeys(before.values()):
        gone = {ips[r] for r, s in before.items() if s == source and after.get(r) != source}
        if gone and source in servers:
            servers[source].drop_dump_threads(gone)


def _quiesce(primary: MysqlServer, replicas: list[MysqlServer], seconds: int) -> str:
    """The read-only primary's position, once every replica has applied it.
    When one cannot, the primary takes writes again and nothing has changed."""
    try:
        position = primary.gtid_written()
        by_name = {r.name: r for r in replicas}
        waits = fan_out(list(by_name), lambda n: handover.caught_up(by_name[n], position, seconds))
        late = [o.vm + (f" ({o.error.message})" if o.error else "") for o in waits if not o.value]
        if late:
            raise GuestError(
                f"{', '.join(late)} did not apply {primary.name}'s last writes within "
                f"{seconds} s: nothing was changed, {primary.name} takes writes again"
            )
        return position
    except BaseException as exc:
        try:
            primary.execute(*primary.sql.read_only(False))
        except Exception as undo:
            raise GuestError(
                f"{primary.name} stays read-only: {getattr(undo, 'message', undo)}",
                hint="labctl up LAB opens the lab's primary again",
            ) from exc
        raise

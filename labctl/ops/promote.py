"""`labctl mysql switchover`: a replica takes the primary's place with
nothing lost, and the lab's record follows.

The sequence (each server's statements are guest/mysql.py's, per flavor):
the primary goes read-only; its GTID position is read; every server of its
tree waits until it has applied that position (else the primary is opened
again and nothing has changed); the target stops replicating; the old
primary and every other server replicate from their new sources by GTID;
the target opens for writes. Only then is the record rewritten.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from labctl import inventory, render, roles, vault
from labctl.deadline import tries
from labctl.errors import GuestError, LabctlError, SpecError
from labctl.fsutil import atomic_write
from labctl.guest import mysql
from labctl.guest.mysql_session import MysqlServer
from labctl.home import LabHome
from labctl.roles import mysql as role
from labctl.session import LabSession, fan_out
from labctl.spec import LabSpec

if TYPE_CHECKING:
    from labctl.vagrant import Event

CATCH_UP_SECONDS = 30
DRAIN_EVERY = 0.2  # seconds between looks at a draining replica's relay log


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
        return role.edges_line(self.edges)


def _tree(spec: LabSpec, target: str | None) -> tuple[str, list[str]]:
    """The primary whose role moves, and its tree (the primary first)."""
    role.require(spec)
    trees = role.trees(spec)
    if target is not None:
        m = spec.machine(target)
        if not m.has(*role.NAMES):
            raise SpecError(f"{target} is not a mysql machine of lab {spec.name!r}")
        if m.has(role.PRIMARY):
            raise SpecError(f"{target} is a primary already", hint="--to names a replica")
        top = next(t for t, names in trees.items() if target in names)
        return top, trees[top]
    if len(trees) > 1:
        raise SpecError(
            f"lab {spec.name!r} has {len(trees)} primaries ({', '.join(trees)})",
            hint="name the replica to promote: --to VM",
        )
    top, names = next(iter(trees.items()))
    if len(names) == 1:
        raise SpecError(f"{top} has no replica to hand its role to")
    return top, names


@dataclass(frozen=True)
class Ready:
    """A tree about to move: its primary, its servers (stale ones left out),
    each connected, and its replication edges, all healthy."""

    old: str
    tree: list[str]
    servers: dict[str, MysqlServer]
    edges: dict[str, str]
    stale: list[str]  # failed primaries of the tree: not moved


def ready(session: LabSession, target: str | None, doing: str) -> Ready:
    """The tree of `target` (or the lab's one primary) checked for `doing`:
    every server running, GTIDs to move by, every edge replicating as the
    lab says. SpecError or GuestError, with nothing changed, otherwise."""
    spec = session.spec
    old, whole = _tree(spec, target)
    stale = [n for n in whole if n in role.stale(spec)]
    tree = [n for n in whole if n not in stale]
    down = session.down(tree)
    if down:
        why = "; ".join(o.error.message for o in down if o.error)
        raise GuestError(f"{doing} needs every server of {old}'s tree running: {why}")
    servers = role.connect(session, tree)
    _check_gtid(servers)
    edges = {r: s for r, s in role.sources(spec).items() if r in tree}
    _check_replication(servers, edges, spec)
    return Ready(old, tree, servers, edges, stale)


def _check_replication(
    servers: dict[str, MysqlServer], edges: dict[str, str], spec: LabSpec
) -> None:
    """Every edge of the tree replicating as declared (lag is waited for)."""
    by_name = {m.name: m for m in spec.machines}
    for replica, source in edges.items():
        m = by_name[source]
        edge = mysql.judge_edge(replica, source, {m.ip, m.hostname}, servers[replica].replica())
        if edge.status not in ("ok", "lagging"):
            raise GuestError(
                f"{replica} does not replicate from {source} as the lab says ({edge.detail}): "
                "nothing was changed",
                hint=f"labctl mysql verify shows the edges; labctl up {spec.name} repairs them",
            )


def _check_gtid(servers: dict[str, MysqlServer]) -> None:
    """MariaDB always has GTIDs; MySQL only in GTID mode (mysql: {gtid: true})."""
    for name, server in servers.items():
        if server.server.mysql and server.variables("gtid_mode").get("gtid_mode") != "ON":
            raise SpecError(
                f"{name}: MySQL without GTIDs cannot move its replicas to a new source safely",
                hint="a lab file with `mysql: {gtid: true}` (or --gtid) replicates by GTID",
            )


def caught_up(server: MysqlServer, position: str, seconds: int) -> bool:
    rows = server.query(server.server.wait_for_gtid(position, seconds), timeout=seconds + 30)
    return bool(rows) and rows[0].get("waited") == "0"


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
    on_event: Callable[[Event], None] | None = None,
    catch_up: int = CATCH_UP_SECONDS,
) -> Switched:
    """The primary's role handed to `target` (default: its most advanced
    direct replica) with no acknowledged write lost."""
    say = role.say_to(on_event)
    name = home.resolve(lab)
    with home.lock(name, "switchover"), LabSession(home, name, hold=False) as session:
        spec = session.spec
        checked = ready(session, target, "a switchover")
        old, tree, servers, edges = checked.old, checked.tree, checked.servers, checked.edges
        new = target or _choose(servers, edges, old)
        swapped = role.swapped(edges, old, new)
        after = {n: swapped[n] for n in tree if n in swapped}  # in the lab's order
        ips = {m.name: m.ip for m in spec.machines}
        password = vault.password(home.paths(name), role.REPL_SECRET)

        primary = servers[old]
        started = time.monotonic()
        primary.execute(*primary.server.read_only(True))
        say(old, "read-only: it takes no more writes")
        position = _quiesce(primary, [servers[n] for n in tree if n != old], catch_up)
        say(old, f"every server of its tree has applied {position or 'everything (no GTID yet)'}")

        for source in dict.fromkeys(after.values()):
            if source not in edges.values():
                role.ensure_repl_user(servers[source], spec.subnet, password)
        _hand_over(servers, old, new, after, {n: (ips[n], password) for n in after.values()}, say)
        closed_ms = int((time.monotonic() - started) * 1000)
        _forget_moved(servers, edges, after, ips)
        say(new, f"the primary, open for writes ({closed_ms} ms without a writable server)")

        whole = [*tree, *checked.stale]
        others = {r: s for r, s in role.sources(spec).items() if r not in whole}
        stale = {r: new for r in checked.stale}  # rejoin joins them to the primary of the day
        _record(home, spec, role.moved(spec, {**others, **after, **stale}, role.stale(spec)))
        role.wait_healthy([servers[r] for r in after])
    return Switched(old, new, position, closed_ms, after)


def _hand_over(
    servers: dict[str, MysqlServer],
    old: str,
    new: str,
    after: dict[str, str],
    sources: dict[str, tuple[str, str]],  # source -> (address, replication password)
    say: role.Say,
) -> None:
    """The quiesced tree rewired: `new` stops replicating, every other server
    replicates from its source in `after` (the old primary from its own binlog
    position), and `new` opens for writes, last."""
    chosen = servers[new]
    chosen.execute(*chosen.server.promote())
    for replica, source in after.items():
        server = servers[replica]
        moves = server.server.demote if replica == old else server.server.repoint
        with role.Writable(server):
            server.execute(*moves(*sources[source]))
        say(replica, f"replicates from {source} now")
    chosen.execute(*chosen.server.read_only(False))


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
        waits = fan_out(list(by_name), lambda n: caught_up(by_name[n], position, seconds))
        late = [o.vm + (f" ({o.error.message})" if o.error else "") for o in waits if not o.value]
        if late:
            raise GuestError(
                f"{', '.join(late)} did not apply {primary.name}'s last writes within "
                f"{seconds} s: nothing was changed, {primary.name} takes writes again"
            )
        return position
    except BaseException as exc:
        try:
            primary.execute(*primary.server.read_only(False))
        except Exception as undo:
            raise GuestError(
                f"{primary.name} stays read-only: {getattr(undo, 'message', undo)}",
                hint="labctl up LAB opens the lab's primary again",
            ) from exc
        raise


def _record(home: LabHome, before: LabSpec, after: LabSpec) -> None:
    """lab.json with the moved roles, and what the lab file declared for them
    (so `up -f` keeps the moves while the file says what it said)."""
    paths = home.paths(before.name)
    moved = roles.moves(before, after, home.moved(before.name))
    if moved:
        atomic_write(paths.moved, json.dumps(moved, indent=2) + "\n")
    else:
        paths.moved.unlink(missing_ok=True)
    atomic_write(paths.record, render.record_text(after), mode=0o644)
    inventory.invalidate(paths)


# ---------------------------------------------------------------- failover


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
    server.execute(*server.server.read_only(True))
    return f"{old} is cut off from its replicas (fenced: read-only now)", server


def _drain(server: MysqlServer, seconds: int) -> str:
    """Stop receiving from the failed source, apply what was received; the
    GTID position applied then."""
    server.execute(server.server.stop_io_thread())
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
    on_event: Callable[[Event], None] | None = None,
    catch_up: int = CATCH_UP_SECONDS,
) -> FailedOver:
    """The primary is gone: the replica that has received the most applies
    its relay log and becomes the primary; the old primary's other replicas
    replicate from it; the old primary is recorded stale (it stays
    read-only) until `labctl mysql rejoin`."""
    name = home.resolve(lab)
    with home.lock(name, "failover"), LabSession(home, name, hold=False) as session:
        return failover_in(session, home, target, role.say_to(on_event), catch_up)


def failover_in(
    session: LabSession,
    home: LabHome,
    target: str | None,
    say: role.Say,
    catch_up: int = CATCH_UP_SECONDS,
    gone: tuple[str, MysqlServer | None] | None = None,
) -> FailedOver:
    """failover() in a session of a lab whose lock the caller holds; `gone`:
    the primary already found gone (the drill's probe)."""
    spec = session.spec
    name = spec.name
    old, tree = _tree(spec, target)
    edges = {r: s for r, s in role.sources(spec).items() if r in tree}
    direct = [r for r, s in edges.items() if s == old and r not in role.stale(spec)]
    left_out = [o.vm for o in session.down(direct)]
    reachable = [r for r in direct if r not in left_out]
    why, old_server = gone or primary_gone(session, old, reachable)
    say(old, why)
    if not reachable:
        raise GuestError(f"no replica of {old} is running to take its place")
    if target is not None and target not in reachable:
        raise GuestError(f"{target} is not a running direct replica of {old}")
    servers = role.connect(session, reachable)
    _check_gtid(servers)
    applied = {r: _drain(servers[r], catch_up) for r in reachable}
    new = _promoted(applied, target)
    started = time.monotonic()
    password = vault.password(home.paths(name), role.REPL_SECRET)
    role.ensure_repl_user(servers[new], spec.subnet, password)
    after = {r: new for r in reachable if r != new}
    _hand_over(servers, old, new, after, {new: (spec.machine(new).ip, password)}, say)
    promote_ms = int((time.monotonic() - started) * 1000)
    new_position = applied[new]
    say(new, f"the primary, open for writes at {new_position or '(no GTID yet)'}")

    if old_server is not None:
        old_position, known_from = old_server.gtid_written(), old
    else:
        # its replicas have applied all they received: the most of that is
        # what is known of it (it may have written more, never sent)
        old_position = max(applied.values(), key=mysql.gtid_count)
        known_from = "what its replicas received"
    lost = mysql.missing_from(old_position, new_position) if old_position else []
    before = role.stale(spec)
    kept = {
        r: s
        for r, s in role.sources(spec).items()
        if r not in direct and r != old and r not in before
    }
    failed = {r: new for r in [*before, old] if r in tree}
    recorded = {**kept, **after, **failed}
    _record(home, spec, role.moved(spec, recorded, stale=[*before, old]))
    role.wait_healthy([servers[r] for r in after])
    return FailedOver(
        old,
        new,
        why,
        old_position,
        known_from,
        new_position,
        lost,
        left_out,
        promote_ms,
        {r: s for r, s in recorded.items() if r in tree},
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


# ---------------------------------------------------------------- rejoin


@dataclass(frozen=True)
class Rejoined:
    vm: str
    source: str
    how: str  # "replicates again" or "rebuilt from a snapshot"
    diverged: list[str]  # what it had that its new source lacks (thrown away)


def rejoin(
    home: LabHome,
    lab: str | None,
    vm: str,
    rebuild: bool = False,
    on_event: Callable[[Event], None] | None = None,
) -> Rejoined:
    """A stale (failed) primary made a replica of the lab's primary again: by
    GTID when it holds nothing the primary lacks; else (or with `rebuild`)
    from a snapshot of the primary, its own extra transactions discarded."""
    say = role.say_to(on_event)
    name = home.resolve(lab)
    with home.lock(name, "rejoin"), LabSession(home, name, hold=False) as session:
        spec = session.spec
        m = spec.machine(vm)
        if vm not in role.stale(spec):
            what = "the primary" if m.has(role.PRIMARY) else "not a stale server"
            raise SpecError(
                f"{vm} is {what}: rejoin is for a failed primary that a failover left behind"
                if m.has(*role.NAMES)
                else f"{vm} is not a mysql machine of lab {spec.name!r}"
            )
        source = role.sources(spec)[vm]
        servers = role.connect(session, [vm, source])
        back, primary = servers[vm], servers[source]
        state_var = "gtid_executed" if back.server.mysql else "gtid_binlog_state"
        extra = mysql.missing_from(
            back.variables(state_var).get(state_var, ""),
            primary.variables(state_var).get(state_var, ""),
        )
        password = vault.password(home.paths(name), role.REPL_SECRET)
        ip = spec.machine(source).ip
        if extra or rebuild:
            say(vm, "diverged: " + ", ".join(extra) if extra else "rebuilt, as asked")
            role.seed(primary, back, ip, password, True, say, fresh=True)
            how = "rebuilt from a snapshot"
        else:
            with role.Writable(back):
                back.execute(*back.server.read_only(True), *back.server.demote(ip, password))
            how = "replicates again"
            say(vm, f"holds nothing {source} lacks: replicates from it again")
        edges = role.sources(spec)
        _record(home, spec, role.moved(spec, edges))
        role.wait_healthy([back])
    return Rejoined(vm, source, how, extra)

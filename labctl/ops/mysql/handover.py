"""What `labctl mysql switchover`, `failover` and `rejoin` share: the tree
whose primary moves, checked before anything changes; the servers rewired
to their new sources (each server's statements are guest/mysql/rules.py's, per
flavor); and the lab's record following, written only once they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from labctl import roles
from labctl.errors import GuestError, SpecError
from labctl.events import OnEvent, info
from labctl.guest.mysql import rules as mysql
from labctl.guest.mysql import topology as topo
from labctl.guest.mysql.replication import writable
from labctl.guest.mysql.session import MysqlServer
from labctl.lab.home import LabHome
from labctl.lab.spec import LabSpec
from labctl.local.fsutil import atomic_write
from labctl.project import render
from labctl.session import inventory
from labctl.session.group import LabSession

CATCH_UP_SECONDS = 30


def tree(spec: LabSpec, target: str | None) -> tuple[str, list[str]]:
    """The primary whose role moves, and its tree (the primary first)."""
    topo.require(spec)
    trees = topo.trees(spec)
    if target is not None:
        m = spec.machine(target)
        if not m.has(*topo.NAMES):
            raise SpecError(f"{target} is not a mysql machine of lab {spec.name!r}")
        if m.has(topo.PRIMARY):
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
    old, whole = tree(spec, target)
    stale = [n for n in whole if n in topo.stale(spec)]
    names = [n for n in whole if n not in stale]
    down = session.down(names)
    if down:
        why = "; ".join(o.error.message for o in down if o.error)
        raise GuestError(f"{doing} needs every server of {old}'s tree running: {why}")
    servers = session.each(names, MysqlServer.detected).check().values
    check_gtid(servers)
    edges = {r: s for r, s in topo.sources(spec).items() if r in names}
    _check_replication(servers, edges, spec)
    return Ready(old, names, servers, edges, stale)


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


def check_gtid(servers: dict[str, MysqlServer]) -> None:
    """MariaDB always has GTIDs; MySQL only in GTID mode (mysql: {gtid: true})."""
    for name, server in servers.items():
        if server.is_mysql and server.variables("gtid_mode").get("gtid_mode") != "ON":
            raise SpecError(
                f"{name}: MySQL without GTIDs cannot move its replicas to a new source safely",
                hint="a lab file with `mysql: {gtid: true}` (or --gtid) replicates by GTID",
            )


def caught_up(server: MysqlServer, position: str, seconds: int) -> bool:
    rows = server.query(server.sql.wait_for_gtid(position, seconds), timeout=seconds + 30)
    return bool(rows) and rows[0].get("waited") == "0"


def hand_over(
    servers: dict[str, MysqlServer],
    old: str,
    new: str,
    after: dict[str, str],
    sources: dict[str, tuple[str, str]],  # source -> (address, replication password)
    on_event: OnEvent,
) -> None:
    """The quiesced tree rewired: `new` stops replicating, every other server
    replicates from its source in `after` (the old primary from its own binlog
    position), and `new` opens for writes, last."""
    chosen = servers[new]
    chosen.execute(*chosen.sql.promote())
    for replica, source in after.items():
        server = servers[replica]
        moves = server.sql.demote if replica == old else server.sql.repoint
        with writable(server):
            server.execute(*moves(*sources[source]))
        on_event(info(replica, f"replicates from {source} now"))
    chosen.execute(*chosen.sql.read_only(False))


def record(home: LabHome, before: LabSpec, after: LabSpec) -> None:
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

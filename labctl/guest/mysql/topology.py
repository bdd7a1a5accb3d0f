"""The replication topology a lab declares, and how a change of primary
moves it (pure: a LabSpec in, edges or a LabSpec out; no server is asked).

An edge is replica -> source; a server with no source is a primary; a
stale server is a failed primary a failover left behind, recorded as a
replica of the new primary but not replicating until `labctl mysql rejoin`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from labctl.errors import SpecError
from labctl.lab.spec import LabSpec, Machine

PRIMARY = "mysql-primary"
REPLICA = "mysql-replica"
NAMES = (PRIMARY, REPLICA)
STALE = "stale"  # a replica's option: a failed primary, not replicating until rejoined
STALE_ROLE = "stale (was primary)"  # what `mysql role` and `info` call it


def machines(spec: LabSpec) -> list[Machine]:
    """The lab's MySQL servers, in the lab's order."""
    return spec.with_role(*NAMES)


def require(spec: LabSpec) -> list[str]:
    """The names of the lab's MySQL servers; SpecError for a lab without any."""
    names = [m.name for m in machines(spec)]
    if not names:
        raise SpecError(
            f"lab {spec.name!r} has no machine with a mysql role",
            hint="give machines the roles mysql-primary and mysql-replica, or: labctl mysql-pair",
        )
    return names


def sources(spec: LabSpec) -> dict[str, str]:
    """replica -> the machine it replicates from, in the lab's order."""
    return {m.name: src for m in spec.with_role(REPLICA) if (src := m.option(REPLICA, "source"))}


def trees(spec: LabSpec) -> dict[str, list[str]]:
    """primary -> the servers that replicate from it, directly or down a chain
    (the primary first, then the lab's order)."""
    edges = sources(spec)

    def root(name: str) -> str:
        while name in edges:
            name = edges[name]
        return name

    found: dict[str, list[str]] = {}
    for m in machines(spec):
        found.setdefault(root(m.name), []).append(m.name)
    return {top: sorted(names, key=lambda n: n != top) for top, names in found.items()}


def swapped(edges: dict[str, str], old: str, new: str) -> dict[str, str]:
    """The replication edges (replica -> source) after `new` takes the place
    of `old` at the head of its tree, and `old` takes `new`'s: a star stays a
    star, a chain stays a chain with `new` at its head."""
    swap = {old: new, new: old}

    def after(name: str) -> str | None:
        before = edges.get(swap.get(name, name))
        return None if before is None else swap.get(before, before)

    names = dict.fromkeys([*edges, *edges.values()])
    return {n: src for n in names if (src := after(n)) is not None}


def stale(spec: LabSpec) -> list[str]:
    """Failed primaries that a failover left behind: recorded as replicas of
    the new primary, not replicating until `labctl mysql rejoin`."""
    return [m.name for m in spec.with_role(REPLICA) if m.option(REPLICA, STALE)]


def moved(spec: LabSpec, edges: dict[str, str], stale: Sequence[str] = ()) -> LabSpec:
    """The lab with its mysql roles as `edges` say (a server with no source
    is a primary; one in `stale` a failed primary), everything else as it was."""

    def one(m: Machine) -> Machine:
        if not m.has(*NAMES):
            return m
        role = REPLICA if m.name in edges else PRIMARY
        roles = tuple(role if r in NAMES else r for r in m.roles)
        options = {r: o for r, o in m.options.items() if r not in NAMES}
        if role == REPLICA:
            options[REPLICA] = {"source": edges[m.name]}
            if m.name in stale:
                options[REPLICA][STALE] = "was primary"
        return replace(m, roles=roles, options=options)

    return replace(spec, machines=tuple(one(m) for m in spec.machines))


def edges_line(edges: dict[str, str], left: Sequence[str] = ()) -> str:
    """primary -> replica1, replica2; replica1 -> replica3 (stale ones marked)"""
    by_source: dict[str, list[str]] = {}
    for replica, source in edges.items():
        by_source.setdefault(source, []).append(replica + (" (stale)" if replica in left else ""))
    return "; ".join(f"{s} -> {', '.join(r)}" for s, r in by_source.items())


def topology_line(spec: LabSpec) -> str:
    """replication: primary -> replica1, replica2; replica1 -> replica3"""
    edges = edges_line(sources(spec), stale(spec))
    return f"replication: {edges}" if edges else "mysql: no replication declared"

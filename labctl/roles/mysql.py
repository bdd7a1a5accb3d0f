"""Roles `mysql-primary` and `mysql-replica`: MariaDB (MySQL where the
distribution ships it) configured for its place in the replication topology,
and replication wired from a consistent snapshot once the machines are up.

A replica's `source` is another mysql machine (default: the lab's one
primary); a replica that others replicate from passes on what it applies
(`log_slave_updates`), which makes it `dual`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from labctl.errors import InvalidField, SpecError
from labctl.events import OnEvent, info
from labctl.guest.mysql import replication as repl
from labctl.guest.mysql import topology as topo
from labctl.guest.mysql.session import MysqlServer
from labctl.lab import vault
from labctl.lab.spec import LabSpec, Machine, Provisioner
from labctl.roles.base import Chosen, RoleFamily, Where, not_a
from labctl.session.group import LabSession

if TYPE_CHECKING:
    from labctl.lab.home import LabHome
    from labctl.local.deadline import Deadline
    from labctl.project.plan import Step


@dataclass(frozen=True)
class ReplicaOptions:
    """source: the mysql machine this replica copies (default: the lab's one primary)."""

    source: str | None = None


@dataclass(frozen=True)
class LabOptions:
    """gtid: replicate with GTID auto-positioning instead of binlog file and position."""

    gtid: bool = False


KEY = "mysql"


class Mysql(RoleFamily):
    """Replication's checks, its one server per machine, and its set-up."""

    roles: ClassVar[dict[str, type | None]] = {topo.PRIMARY: None, topo.REPLICA: ReplicaOptions}
    key = KEY
    lab_options = LabOptions

    def resolve(self, spec: LabSpec, where: Where) -> Chosen:
        """Each replica's source, checked: a mysql machine of the lab, not itself,
        no cycle; the default is the lab's one primary."""
        servers = {m.name for m in topo.machines(spec)}
        primaries = [m.name for m in spec.with_role(topo.PRIMARY)]
        for m in spec.machines:
            if m.has(topo.PRIMARY) and m.has(topo.REPLICA):
                raise InvalidField(
                    where(m.name, "roles"), "a machine is mysql-primary or mysql-replica, not both"
                )
        chosen: dict[str, str] = {}
        for m in spec.with_role(topo.REPLICA):
            src = m.option(topo.REPLICA, "source")
            if src is None:
                if len(primaries) != 1:
                    found = f"{len(primaries)} ({', '.join(primaries)})" if primaries else "no"
                    keep = "" if primaries else "keep the primary (or remove its replicas too), or "
                    raise InvalidField(
                        where(m.name, "roles", topo.REPLICA),
                        f"no source given and the lab has {found} mysql-primary: {keep}name "
                        + ("a source " if not primaries else "one ")
                        + "with `- mysql-replica: {source: MACHINE}`",
                    )
                src = primaries[0]
            elif src == m.name:
                raise InvalidField(
                    where(m.name, "roles", topo.REPLICA, "source"),
                    "a replica cannot be its own source",
                )
            elif src not in servers:
                keep = (
                    f" (keep it while {m.name} replicates from it, or give {m.name} another source)"
                )
                said = not_a(spec, src, "a mysql machine", keep)
                raise InvalidField(where(m.name, "roles", topo.REPLICA, "source"), said)
            chosen[m.name] = src
        for start in chosen:
            seen = [start]
            while (at := chosen.get(seen[-1])) is not None:
                if at in seen:
                    raise InvalidField(
                        where(start, "roles", topo.REPLICA, "source"),
                        "replication sources form a cycle: " + " -> ".join([*seen, at]),
                    )
                seen.append(at)
        return {name: {topo.REPLICA: {"source": src}} for name, src in chosen.items()}

    def provisioners(self, spec: LabSpec, m: Machine) -> list[Provisioner]:
        """The same server on every mysql machine (its role is set at run time, so
        a switchover leaves the Vagrantfile as it is)."""
        return [
            Provisioner(
                "mysql",
                "mysql.sh",
                {
                    # unique on the lab's /24, and stable when machines come and go
                    "MYSQL_SERVER_ID": m.ip.rsplit(".", 1)[1],
                    "MYSQL_BIND_ADDRESS": m.ip,
                    "MYSQL_GTID": "1" if spec.family(KEY).get("gtid") else "0",
                    "LAB_HOSTNAME": m.hostname,
                },
            )
        ]

    def check_plan(self, old: LabSpec | None, new: LabSpec, steps: Sequence[Step]) -> None:
        """Refuse a change that replication cannot follow: a source recreated (its
        data gone) under replicas that stay, or GTID switched on running servers."""
        if old is None:
            return
        action = {s.machine: s.action for s in steps}
        fresh = {m for m, a in action.items() if a in ("add", "recreate", "remove")}
        for replica, source in topo.sources(new).items():
            if action.get(source) == "recreate" and replica not in fresh:
                raise SpecError(
                    f"{source} would be recreated (its data lost) while {replica} replicates from it",
                    hint=f"keep {source}'s box, address and resources as they are, or recreate "
                    f"{replica} in the same change",
                )
        running = [
            m.name for m in topo.machines(old) if action.get(m.name) not in ("add", "remove")
        ]
        if running and bool(old.family(KEY).get("gtid")) != bool(new.family(KEY).get("gtid")):
            raise SpecError(
                f"mysql.gtid cannot change while {', '.join(running)} exist: replication keeps its mode",
                hint=f"labctl destroy {new.name}, then up again (or give the lab another name)",
            )

    def setup(
        self, home: LabHome, spec: LabSpec, on_event: OnEvent, deadline: Deadline
    ) -> list[str]:
        """After `vagrant up`: every declared edge replicating. An edge already
        replicating from its source is left alone, so a grown lab seeds only its
        new replicas (from a snapshot, while the sources keep working; those of
        one source from one snapshot, at the same time)."""
        edges = topo.sources(spec)
        password = vault.password(home.paths(spec.name), repl.REPL_SECRET)
        ips = {m.name: m.ip for m in spec.machines}
        gtid = bool(spec.family(KEY).get("gtid"))
        # up holds the lab
        left = topo.stale(spec)
        with LabSession(home, spec.name, hold=False, deadline=deadline) as session:
            # a stale server is left as it is (read-only since it started) for rejoin
            names = [n for n in topo.require(spec) if n not in left]
            servers = session.each(names, MysqlServer.detected).check().values
            repl.check_identities(servers)
            for m in spec.with_role(topo.PRIMARY):
                # a replica promoted in the lab file stops replicating
                if (server := servers[m.name]).replica() is not None:
                    server.execute(*server.sql.promote())
                    on_event(info(m.name, "a primary now: its replication stopped and forgotten"))
            for name in left:
                how = f"labctl mysql rejoin {name} makes it a replica"
                on_event(info(name, f"stale (a failed primary): {how}"))
            edges = {r: s for r, s in edges.items() if r not in left}
            for name in dict.fromkeys(edges.values()):
                repl.ensure_repl_user(servers[name], spec.subnet, password)
            seeding: dict[str, str] = {}
            for replica, source in edges.items():
                live = servers[replica].replica()
                if live and live.healthy and live.source_host == ips[source]:
                    on_event(info(replica, f"already replicating from {source}"))
                else:
                    seeding[replica] = source
            # all at once, one snapshot per source; every failed replica named
            repl.seed_all(servers, seeding, ips, password, gtid, on_event).check()
            repl.wait_healthy(
                [servers[r] for r in edges], deadline.cap("ssh", repl.HEALTHY_TIMEOUT)
            )
            repl.open_writes(servers, [m.name for m in spec.with_role(topo.PRIMARY)])
        return [topo.topology_line(spec)]

"""Roles `mysql-primary` and `mysql-replica`: MariaDB (MySQL where the
distribution ships it) configured for its place in the replication topology,
and replication wired from a consistent snapshot once the machines are up.

A replica's `source` is another mysql machine (default: the lab's one
primary); a replica that others replicate from passes on what it applies
(`log_slave_updates`), which makes it `dual`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, Any

from labctl import vault
from labctl.deadline import Deadline, tries
from labctl.errors import GuestError, InvalidField, SpecError
from labctl.guest import mysql
from labctl.guest.mysql_session import MysqlServer, SqlError, dump_argv
from labctl.session import LabSession
from labctl.spec import LabSpec, Machine, Provisioner

if TYPE_CHECKING:
    from labctl.home import LabHome
    from labctl.hostpaths import HostPaths
    from labctl.plan import Step
    from labctl.vagrant import Event

PRIMARY = "mysql-primary"
REPLICA = "mysql-replica"
NAMES = (PRIMARY, REPLICA)
REPL_SECRET = "mysql-repl-password"
STALE = "stale"  # a replica's option: a failed primary, not replicating until rejoined
STALE_ROLE = "stale (was primary)"  # what `mysql role` and `info` call it
HEALTHY_TIMEOUT = 90.0

Say = Callable[[str, str], None]  # (machine, text)
Where = Callable[..., tuple[Any, ...]]


@dataclass(frozen=True)
class ReplicaOptions:
    """source: the mysql machine this replica copies (default: the lab's one primary)."""

    source: str | None = None


@dataclass(frozen=True)
class LabOptions:
    """gtid: replicate with GTID auto-positioning instead of binlog file and position."""

    gtid: bool = False


ROLES: dict[str, type | None] = {PRIMARY: None, REPLICA: ReplicaOptions}
KEY = "mysql"


# ---------------------------------------------------------------- the lab's shape (pure)


def lab_options(given: dict[str, Any], reach: HostPaths) -> dict[str, Any]:
    return given


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


def resolve(spec: LabSpec, where: Where) -> dict[str, dict[str, dict[str, str]]]:
    """Each replica's source, checked: a mysql machine of the lab, not itself,
    no cycle; the default is the lab's one primary."""
    servers = {m.name for m in machines(spec)}
    primaries = [m.name for m in spec.with_role(PRIMARY)]
    for m in spec.machines:
        if m.has(PRIMARY) and m.has(REPLICA):
            raise InvalidField(
                where(m.name, "roles"), "a machine is mysql-primary or mysql-replica, not both"
            )
    chosen: dict[str, str] = {}
    for m in spec.with_role(REPLICA):
        src = m.option(REPLICA, "source")
        if src is None:
            if len(primaries) != 1:
                found = f"{len(primaries)} ({', '.join(primaries)})" if primaries else "no"
                raise InvalidField(
                    where(m.name, "roles", REPLICA),
                    f"no source given and the lab has {found} mysql-primary: "
                    + (
                        "keep the primary (or remove its replicas too), or name a source "
                        if not primaries
                        else "name one "
                    )
                    + "with `- mysql-replica: {source: MACHINE}`",
                )
            src = primaries[0]
        elif src == m.name:
            raise InvalidField(
                where(m.name, "roles", REPLICA, "source"), "a replica cannot be its own source"
            )
        elif src not in servers:
            what = (
                "is not a mysql machine"
                if src in spec.machine_names()
                else f"is no machine of the lab (keep it while {m.name} replicates from it, "
                f"or give {m.name} another source)"
            )
            raise InvalidField(where(m.name, "roles", REPLICA, "source"), f"{src!r} {what}")
        chosen[m.name] = src
    for start in chosen:
        seen = [start]
        at = start
        while at in chosen:
            at = chosen[at]
            if at in seen:
                raise InvalidField(
                    where(start, "roles", REPLICA, "source"),
                    "replication sources form a cycle: " + " -> ".join([*seen, at]),
                )
            seen.append(at)
    return {name: {REPLICA: {"source": src}} for name, src in chosen.items()}


def provisioners(spec: LabSpec, m: Machine) -> list[Provisioner]:
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


def check_plan(old: LabSpec | None, new: LabSpec, steps: Sequence[Step]) -> None:
    """Refuse a change that replication cannot follow: a source recreated (its
    data gone) under replicas that stay, or GTID switched on running servers."""
    if old is None:
        return
    action = {s.machine: s.action for s in steps}
    fresh = {m for m, a in action.items() if a in ("add", "recreate", "remove")}
    for replica, source in sources(new).items():
        if action.get(source) == "recreate" and replica not in fresh:
            raise SpecError(
                f"{source} would be recreated (its data lost) while {replica} replicates from it",
                hint=f"keep {source}'s box, address and resources as they are, or recreate "
                f"{replica} in the same change",
            )
    running = [m.name for m in machines(old) if action.get(m.name) not in ("add", "remove")]
    if running and bool(old.family(KEY).get("gtid")) != bool(new.family(KEY).get("gtid")):
        raise SpecError(
            f"mysql.gtid cannot change while {', '.join(running)} exist: replication keeps its mode",
            hint=f"labctl destroy {new.name}, then up again (or give the lab another name)",
        )


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


# ---------------------------------------------------------------- set-up after up


def say_to(on_event: Callable[[Event], None] | None) -> Say:
    if on_event is None:
        return lambda machine, text: None
    from labctl.vagrant import Event

    return lambda machine, text: on_event(Event(machine, "info", text))


def connect(session: LabSession, names: Sequence[str]) -> dict[str, MysqlServer]:
    """MysqlServer per machine, versions detected, all in parallel."""
    return session.each(names, lambda t: _detected(MysqlServer(t))).check().values


def _detected(server: MysqlServer) -> MysqlServer:
    server.server  # noqa: B018 (SELECT VERSION(), once, in this thread)
    return server


def _check_identities(servers: dict[str, MysqlServer]) -> None:
    """Refuse to wire servers that share a server_id or server_uuid."""
    seen: dict[tuple[str, str], str] = {}
    for name, server in servers.items():
        names = ["server_id", "server_uuid"] if server.server.mysql else ["server_id"]
        for key, value in server.variables(*names).items():
            other = seen.get((key, value))
            if other:
                raise GuestError(
                    f"{other} and {name} share {key} {value}: refusing to set up replication"
                )
            seen[(key, value)] = name


@dataclass
class Writable:
    """MySQL's super_read_only blocks even root: lift it while labctl loads or
    configures a replica, and put it back after."""

    server: MysqlServer
    was_on: bool = False

    def __enter__(self) -> MysqlServer:
        if self.server.server.mysql:
            self.was_on = self.server.variables("super_read_only").get("super_read_only") == "ON"
            if self.was_on:
                self.server.execute("SET GLOBAL super_read_only = OFF")
        return self.server

    def __exit__(self, *exc: object) -> None:
        if self.was_on:
            self.server.execute("SET GLOBAL super_read_only = ON")


def ensure_repl_user(server: MysqlServer, subnet: str, password: str) -> None:
    with Writable(server):
        server.execute(*server.server.create_repl_user(subnet, password), log_bin=False)


def _dump(source: MysqlServer, schemas: Sequence[str], spool: IO[bytes]) -> None:
    """mysqldump of `schemas` on source, into the local `spool` file, after a
    first line that keeps the load out of the replica's own binlog."""
    spool.write(b"SET SESSION sql_log_bin=0;\n")
    dump = source.t.start(dump_argv(source.server, schemas), sudo=True)
    try:
        while chunk := dump.read():
            spool.write(chunk)
    finally:
        done = dump.wait(timeout=60)
    if not done.ok:
        raise SqlError(f"{source.name}: mysqldump failed: {done.stderr.strip()[-300:]}")


def seed(
    source: MysqlServer,
    replica: MysqlServer,
    source_ip: str,
    password: str,
    gtid: bool,
    say: Say,
    fresh: bool = False,
) -> None:
    """Start `replica` from a consistent snapshot of `source`.

    FLUSH TABLES WITH READ LOCK in one session; inside it the binlog position
    (or GTID position) is read, the schemas are listed and dumped (spooled to
    a private temporary file here); then the lock goes, and the replica loads
    the dump and replicates from that position while the primary writes on.
    """
    rs = replica.server
    with Writable(replica), tempfile.TemporaryFile(prefix="labctl-dump-") as spool:
        replica.execute(rs.stop_replica(), rs.reset_replica())
        with source.read_lock() as snap:
            schemas = source.user_schemas()
            say(
                replica.name,
                f"snapshot of {source.name} under FLUSH TABLES WITH READ LOCK: "
                f"{snap.log_file}:{snap.log_pos}"
                + (f", GTID {snap.gtid or '(none yet)'}" if gtid else "")
                + f"; dumping {', '.join(schemas) or 'no schemas'}",
            )
            if schemas:
                _dump(source, schemas, spool)
        # the lock is gone: the primary writes again while the replica loads
        if schemas:
            say(replica.name, f"loading the dump ({spool.tell() // 1024} KiB)")
            spool.seek(0)
            replica.feed(spool, timeout=3600)
        if rs.mysql and gtid:
            replica.execute(rs.reset_gtids(), f"SET GLOBAL gtid_purged = {mysql.quote(snap.gtid)}")
        elif not rs.mysql:
            _mariadb_position(replica, snap.gtid, fresh)
        replica.execute(
            rs.change_source(source_ip, password, snap.log_file, snap.log_pos, gtid),
            rs.start_replica(),
        )
    say(replica.name, f"replicating from {source.name} ({source_ip})")


def _mariadb_position(replica: MysqlServer, gtid: str, fresh: bool = False) -> None:
    """MariaDB keeps GTIDs in every lab, file/position ones too: the snapshot's
    position becomes what the replica has applied and, on a server whose
    binary log is still empty (or whose history is thrown away: `fresh`),
    where its own binlog starts. A switchover's replicas ask their new
    source for that position by GTID."""
    reset = fresh or (
        bool(gtid)
        and replica.query("SELECT @@GLOBAL.gtid_binlog_state = '' AS empty")[0]["empty"] == "1"
    )
    statements = ["RESET MASTER"] if reset else []
    if reset and gtid:
        statements.append(f"SET GLOBAL gtid_binlog_state = {mysql.quote(gtid)}")
    statements.append(f"SET GLOBAL gtid_slave_pos = {mysql.quote(gtid)}")
    replica.execute(*statements)


def open_writes(servers: dict[str, MysqlServer], spec: LabSpec) -> None:
    """Writes open on the lab's primaries only: every server starts read-only
    (mysql.sh), so one that restarts never takes writes unasked."""
    for m in machines(spec):
        if m.name in servers:
            server = servers[m.name]
            server.execute(*server.server.read_only(not m.has(PRIMARY)))


def wait_healthy(servers: Sequence[MysqlServer], timeout: float = HEALTHY_TIMEOUT) -> None:
    """Until every replica runs both threads; GuestError naming the others."""
    for last in tries(timeout, every=0.5):
        states = {s.name: s.replica() for s in servers}
        bad = {n: st for n, st in states.items() if st is None or not st.healthy}
        if not bad:
            return
        if last:
            detail = "; ".join(
                f"{n}: "
                + (
                    "not configured"
                    if st is None
                    else f"IO {st.io_running}, SQL {st.sql_running} {st.last_io_error or st.last_sql_error}".strip()
                )
                for n, st in bad.items()
            )
            raise GuestError(f"replication did not start in {timeout:.0f} s: {detail}")


def setup(
    home: LabHome,
    spec: LabSpec,
    on_event: Callable[[Event], None] | None = None,
    deadline: Deadline | None = None,
) -> list[str]:
    """After `vagrant up`: every declared edge replicating. An edge already
    replicating from its source is left alone, so a grown lab seeds only its
    new replicas (from a snapshot, while the sources keep working)."""
    say = say_to(on_event)
    edges = sources(spec)
    password = vault.password(home.paths(spec.name), REPL_SECRET)
    ips = {m.name: m.ip for m in spec.machines}
    deadline = deadline or Deadline()
    # up holds the lab
    left = stale(spec)
    with LabSession(home, spec.name, hold=False, deadline=deadline) as session:
        # a stale server is left as it is (read-only since it started) for rejoin
        servers = connect(session, [n for n in require(spec) if n not in left])
        _check_identities(servers)
        for m in spec.with_role(PRIMARY):
            # a replica promoted in the lab file stops replicating
            if servers[m.name].replica() is not None:
                rs = servers[m.name].server
                servers[m.name].execute(rs.stop_replica(), rs.reset_replica())
                say(m.name, "a primary now: its replication stopped and forgotten")
        for name in left:
            say(name, f"stale (a failed primary): labctl mysql rejoin {name} makes it a replica")
        edges = {r: s for r, s in edges.items() if r not in left}
        for name in dict.fromkeys(edges.values()):
            ensure_repl_user(servers[name], spec.subnet, password)
        for replica, source in edges.items():
            live = servers[replica].replica()
            if live and live.healthy and live.source_host == ips[source]:
                say(replica, f"already replicating from {source}")
                continue
            seed(
                servers[source],
                servers[replica],
                ips[source],
                password,
                bool(spec.family(KEY).get("gtid")),
                say,
            )
        wait_healthy([servers[r] for r in edges], deadline.cap("ssh", HEALTHY_TIMEOUT))
        open_writes(servers, spec)
    return [topology_line(spec)]

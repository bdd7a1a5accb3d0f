"""`labctl mysql rejoin`: a stale (failed) primary made a replica of the
lab's primary again: by GTID when it holds nothing the primary lacks; else
(or with --rebuild) from a snapshot of the primary, its own extra
transactions discarded. The lab's record follows.
"""

from __future__ import annotations

from dataclasses import dataclass

from labctl.errors import SpecError
from labctl.events import OnEvent, ignore, info
from labctl.guest.mysql import replication as repl
from labctl.guest.mysql import rules as mysql
from labctl.guest.mysql import topology as topo
from labctl.guest.mysql.session import MysqlServer
from labctl.lab import vault
from labctl.lab.home import LabHome
from labctl.ops.mysql import handover
from labctl.session.group import LabSession


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
    on_event: OnEvent | None = None,
) -> Rejoined:
    """`vm`, a stale server, replicating from the source the lab records for it."""
    on_event = on_event or ignore
    name = home.resolve(lab)
    with home.lock(name, "rejoin"), LabSession(home, name, hold=False) as session:
        spec = session.spec
        m = spec.machine(vm)
        if vm not in topo.stale(spec):
            what = "the primary" if m.has(topo.PRIMARY) else "not a stale server"
            raise SpecError(
                f"{vm} is {what}: rejoin is for a failed primary that a failover left behind"
                if m.has(*topo.NAMES)
                else f"{vm} is not a mysql machine of lab {spec.name!r}"
            )
        source = topo.sources(spec)[vm]
        servers = session.each([vm, source], MysqlServer.detected).check().values
        back, primary = servers[vm], servers[source]
        # the whole history each holds: what the stale one has the primary lacks diverged
        state_var = "gtid_executed" if back.is_mysql else "gtid_binlog_state"
        extra = mysql.missing_from(
            back.variables(state_var).get(state_var, ""),
            primary.variables(state_var).get(state_var, ""),
        )
        password = vault.password(home.paths(name), repl.REPL_SECRET)
        ip = spec.machine(source).ip
        if extra or rebuild:
            on_event(info(vm, "diverged: " + ", ".join(extra) if extra else "rebuilt, as asked"))
            repl.seed(primary, back, ip, password, True, on_event, fresh=True)
            how = "rebuilt from a snapshot"
        else:
            with repl.writable(back):
                back.execute(*back.sql.read_only(True), *back.sql.demote(ip, password))
            how = "replicates again"
            on_event(info(vm, f"holds nothing {source} lacks: replicates from it again"))
        handover.record(home, spec, topo.moved(spec, topo.sources(spec)))
        repl.wait_healthy([back])
    return Rejoined(vm, source, how, extra)

"""`labctl ssh-config`, `inventory`, `graph`: the lab's facts gathered once
(a LabView), then written in the format the user's tool reads."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl.errors import SpecError
from labctl.guest import ctr
from labctl.guest.mysql import topology as topo
from labctl.guest.mysql.session import MysqlServer
from labctl.handoff import ansible, graph, sshconfig
from labctl.handoff.view import LabView, Link, MachineView, SshView
from labctl.lab import vault
from labctl.lab.home import LabHome
from labctl.lab.spec import LabSpec
from labctl.local import process
from labctl.local.fsutil import atomic_write
from labctl.ops.rows import row_of
from labctl.roles import jenkins as jenkins_role
from labctl.session.group import LabSession, Outcome
from labctl.transport.interface import Transport

GRAPHVIZ_TIMEOUT = 60.0


@dataclass(frozen=True)
class Gathered:
    view: LabView
    failed: list[Outcome[Any]]  # machines that are not running or did not answer


def gather(home: LabHome, lab: str | None, live: bool = True, tasks: bool = False) -> Gathered:
    """Every machine of the lab with how to reach it (connecting to each
    running one pins its host key, as any labctl command does), and, when
    `live`, what the servers say: mysql roles and replication, Jenkins'
    agents, containerd's tasks (`tasks`)."""
    with LabSession(home, lab) as session:
        spec = session.spec
        reached = session.each(spec.machine_names(), lambda t: t.endpoint)
        failed = [o for o in reached if o.error]
        pins = session.host_keys.pinned()
        ssh = {
            o.vm: SshView(
                o.value.host,
                o.value.port,
                o.value.user,
                o.value.key_file,
                *pins.get(o.vm, ("", "")),
            )
            for o in reached
            if o.value is not None
        }
        up = [m for m in spec.machine_names() if m in ssh]
        counts: dict[str, int] = {}
        if live:
            mysql_roles, links, more = _live_mysql(session, spec, up)
            failed += more
            links += _jenkins_links(session, spec, up)
        else:
            mysql_roles, links = declared_mysql(spec)
            links += _declared_jenkins(spec)
        if tasks:
            counts, more = _task_counts(session, spec, up)
            failed += more
        states = session.states()
    machines = [
        row_of(
            MachineView,
            m,
            state=st.state if (st := states.of(m.name)) else "unknown",
            ssh=ssh.get(m.name),
            mysql_role=mysql_roles.get(m.name, ""),
            tasks=counts.get(m.name),
        )
        for m in spec.machines
    ]
    view = LabView(
        lab=spec.name,
        provider=spec.provider,
        subnet=spec.subnet,
        known_hosts=str(session.paths.known_hosts),
        machines=machines,
        links=links,
        live=live,
    )
    atomic_write(session.paths.known_hosts, sshconfig.known_hosts(view))
    return Gathered(view, _unique(failed))


def _unique(failed: Sequence[Outcome[Any]]) -> list[Outcome[Any]]:
    seen: dict[str, Outcome[Any]] = {}
    for o in failed:
        seen.setdefault(o.vm, o)
    return list(seen.values())


def declared_mysql(spec: LabSpec) -> tuple[dict[str, str], list[Link]]:
    if not topo.machines(spec):
        return {}, []
    sources = topo.sources(spec)
    feeding = set(sources.values())
    roles = {}
    for m in topo.machines(spec):
        if m.name in sources:
            roles[m.name] = "dual" if m.name in feeding else "replica"
        else:
            roles[m.name] = (
                "primary" if m.name in feeding or m.has("mysql-primary") else "standalone"
            )
    links = [Link("replication", src, rep, "declared", True) for rep, src in sources.items()]
    return roles, links


def _live_mysql(
    session: LabSession, spec: LabSpec, up: Sequence[str]
) -> tuple[dict[str, str], list[Link], list[Outcome[Any]]]:
    """Each mysql server's own word on its role, and replication as the
    replicas see it (source, lag, threads)."""
    names = [m.name for m in topo.machines(spec) if m.name in up]
    outcomes = session.each(names, lambda t: MysqlServer(t).role())
    by_address = {a: m.name for m in spec.machines for a in (m.ip, m.hostname, m.name)}
    roles, links = {}, []
    for o in outcomes:
        if o.value is None:
            continue
        roles[o.vm] = o.value.role
        st = o.value.replica
        if st is None or not st.configured:
            continue
        source = by_address.get(st.source_host)
        if source is None:
            continue  # replicates from outside the lab: nothing to draw it to
        lag = "?" if st.seconds_behind is None else f"{st.seconds_behind} s"
        said = f"lag {lag}" if st.healthy else f"broken (io {st.io_running}, sql {st.sql_running})"
        links.append(Link("replication", source, o.vm, said, st.healthy))
    # a replica that gave no answer keeps its declared link, drawn as broken
    for replica, source in topo.sources(spec).items():
        if replica not in roles:
            why = "not running" if replica not in up else "no answer"
            links.append(Link("replication", source, replica, why, False))
    return roles, links, outcomes.failed


def _declared_jenkins(spec: LabSpec) -> list[Link]:
    if not spec.with_role(jenkins_role.CONTROLLER):
        return []
    boss = jenkins_role.controller(spec).name
    return [Link("jenkins", boss, a, "declared", True) for a in jenkins_role.agents(spec)]


def _jenkins_links(session: LabSession, spec: LabSpec, up: Sequence[str]) -> list[Link]:
    if not spec.with_role(jenkins_role.CONTROLLER):
        return []
    boss = jenkins_role.controller(spec).name
    agents = jenkins_role.agents(spec)
    if boss not in up:
        return [Link("jenkins", boss, a, "controller not running", False) for a in agents]
    password = vault.existing_password(session.paths, jenkins_role.ADMIN_SECRET)
    status = jenkins_role.read_status(session, spec, password or "")
    if not status.healthy:
        label = "Jenkins not installed" if not status.installed else "Jenkins not running"
        return [Link("jenkins", boss, a, label, False) for a in agents]
    online = {a.name: a.online for a in status.agents}
    return [
        Link("jenkins", boss, a, "online" if online.get(a) else "offline", bool(online.get(a)))
        for a in agents
    ]


def _task_counts(
    session: LabSession, spec: LabSpec, up: Sequence[str]
) -> tuple[dict[str, int], list[Outcome[Any]]]:
    names = [m.name for m in spec.with_role("containerd") if m.name in up]

    def count(t: Transport) -> int:
        return len(ctr.parse_ps(t.run(ctr.ps(), sudo=True, check=True).stdout))

    outcomes = session.each(names, count)
    return outcomes.values, outcomes.failed


# ---------------------------------------------------------------- formats


def ssh_config(home: LabHome, lab: str | None) -> tuple[str, list[Outcome[Any]]]:
    found = gather(home, lab, live=False)
    return sshconfig.ssh_config(found.view), found.failed


def inventory(
    home: LabHome, lab: str | None, fmt: str, declared: bool = False
) -> tuple[str, list[Outcome[Any]]]:
    if fmt not in ansible.FORMATS:
        raise SpecError(f"unknown inventory format {fmt!r} (formats: {', '.join(ansible.FORMATS)})")
    found = gather(home, lab, live=not declared)
    return ansible.render(found.view, fmt), found.failed


def graph_format(fmt: str | None, output: Path | None) -> str:
    """The format asked for, else the output file's extension's, else mermaid."""
    if fmt is None and output is not None:
        ext = output.suffix.lstrip(".").lower()
        fmt = {"mmd": "mermaid", "gv": "dot", "htm": "html"}.get(ext, ext)
        if fmt not in graph.FORMATS:
            raise SpecError(
                f"cannot tell the format from {output.name!r}: give --format "
                f"({', '.join(graph.FORMATS)})"
            )
    fmt = fmt or "mermaid"
    if fmt not in graph.FORMATS:
        raise SpecError(f"unknown graph format {fmt!r} (formats: {', '.join(graph.FORMATS)})")
    return fmt


def draw(
    home: LabHome, lab: str | None, fmt: str, declared: bool = False
) -> tuple[str, list[Outcome[Any]]]:
    found = gather(home, lab, live=not declared, tasks=not declared)
    view = found.view
    if fmt == "mermaid":
        return graph.mermaid(view), found.failed
    if fmt == "dot":
        return graph.dot(view), found.failed
    drawn = graph.svg(view, graphviz)
    return (drawn if fmt == "svg" else graph.page(view, drawn)), found.failed


def graphviz(argv: list[str], dot_text: str) -> str | None:
    """Graphviz's SVG of `dot_text`, or None where Graphviz is not installed."""
    if not shutil.which(argv[0]):
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".gv") as source:
        source.write(dot_text)
        source.flush()
        done = process.run([*argv, source.name], timeout=GRAPHVIZ_TIMEOUT)
    return process.checked(done, "Graphviz").stdout

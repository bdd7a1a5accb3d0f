"""The topologies: pure functions from validated settings to machines."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

from labctl.spec import ForwardedPort, LabSpec, Machine, Provisioner, Settings, validate_settings

DEFAULT_CPUS = 2
DEFAULT_MEMORY = 1024

# The roles of a mysql-pair's servers.
MYSQL_ROLES = ("mysql-primary", "mysql-replica")

# Where each topology puts its machines on the lab's /24.
NODES_FIRST_IP = 101
JENKINS_SERVER_IP = 10
MYSQL_PRIMARY_IP = 20


def _machine(
    s: Settings,
    name: str,
    hostname: str,
    host_octet: int,
    role: str,
    *,
    memory: int = DEFAULT_MEMORY,
    primary: bool = False,
    ports: tuple[ForwardedPort, ...] = (),
) -> Machine:
    return Machine(
        name=name,
        hostname=hostname,
        ip=f"{s.subnet}.{host_octet}",
        role=role,
        cpus=s.cpus or DEFAULT_CPUS,
        memory=s.memory or memory,
        primary=primary,
        ports=ports,
    )


def _nodes(s: Settings) -> list[Machine]:
    return [
        _machine(s, f"node{i}", f"node{i}", NODES_FIRST_IP + i - 1, "node", primary=i == 1)
        for i in range(1, s.count + 1)
    ]


def _jenkins(s: Settings) -> list[Machine]:
    server = _machine(
        s,
        "server",
        "jenkins-server",
        JENKINS_SERVER_IP,
        "jenkins-server",
        memory=2048,
        primary=True,
        ports=(ForwardedPort(id="jenkins", guest=8080, host=8080),),
    )
    agents = [
        _machine(s, f"agent{i}", f"jenkins-agent{i}", JENKINS_SERVER_IP + i, "jenkins-agent")
        for i in range(1, s.agents + 1)
    ]
    return [server, *agents]


def _mysql_pair(s: Settings) -> list[Machine]:
    primary = _machine(
        s, "primary", "mysql-primary", MYSQL_PRIMARY_IP, "mysql-primary", primary=True
    )
    replicas = [
        _machine(s, f"replica{i}", f"mysql-replica{i}", MYSQL_PRIMARY_IP + i, "mysql-replica")
        for i in range(1, s.replicas + 1)
    ]
    return [primary, *replicas]


_TOPOLOGIES: dict[str, Callable[[Settings], list[Machine]]] = {
    "nodes": _nodes,
    "jenkins": _jenkins,
    "mysql-pair": _mysql_pair,
}


def replication_sources(
    s: Settings, machines: list[Machine] | tuple[Machine, ...]
) -> dict[str, str]:
    """replica -> the machine it replicates from: all from the primary (star),
    or each from the one before it (--chain)."""
    names = [m.name for m in machines if m.role in MYSQL_ROLES]
    if not names:
        return {}
    if s.chain:
        return {replica: source for source, replica in itertools.pairwise(names)}
    return {replica: names[0] for replica in names[1:]}


def _mysql_env(s: Settings, m: Machine, machines: list[Machine]) -> dict[str, str]:
    sources = replication_sources(s, machines)
    index = [x.name for x in machines].index(m.name)
    return {
        "MYSQL_SERVER_ID": str(index + 1),
        "MYSQL_BIND_ADDRESS": m.ip,
        "MYSQL_ROLE": "primary" if m.role == "mysql-primary" else "replica",
        # a chain's middle passes on what it applies
        "MYSQL_LOG_REPLICA_UPDATES": "1"
        if m.name in sources.values() and m.name in sources
        else "0",
        "MYSQL_GTID": "1" if s.gtid else "0",
        "LAB_HOSTNAME": m.hostname,
    }


def _provisioners(s: Settings, m: Machine, machines: list[Machine]) -> tuple[Provisioner, ...]:
    """The provision scripts of one machine, in the order they run."""
    hosts = " ".join(f"{x.ip}={x.hostname}" for x in machines)
    # agents reach the controller by its hostname on the private network
    server = next((x for x in machines if x.role == "jenkins-server"), None)
    jenkins_url = f"http://{server.hostname}:8080/" if server else ""
    steps = [Provisioner("common", "common.sh", {"LAB_HOSTS": hosts, "LAB_TIMEZONE": s.timezone})]
    if s.containerd:
        steps.append(Provisioner("containerd", "containerd.sh"))
    if m.role in MYSQL_ROLES:
        steps.append(Provisioner("mysql", "mysql.sh", _mysql_env(s, m, machines)))
    if m.role in ("jenkins-server", "jenkins-agent"):
        steps.append(Provisioner("jdk", "jdk.sh", {"JDK_VERSION": str(s.jdk)}))
    if m.role == "jenkins-server":
        agents = " ".join(x.name for x in machines if x.role == "jenkins-agent")
        steps += [
            Provisioner("jenkins-user", "jenkins-user.sh"),
            # labctl runs this one itself, once the lab's SSH keys are in place
            Provisioner(
                "jenkins",
                "jenkins-server.sh",
                {
                    "JENKINS_SOURCE": "war" if s.jenkins_war else "apt",
                    "JENKINS_URL": jenkins_url,
                    "JENKINS_AGENTS": agents,
                },
                run="never",
            ),
        ]
    if m.role == "jenkins-agent":
        steps += [
            Provisioner(
                "jenkins-agent",
                "jenkins-agent.sh",
                {"JENKINS_URL": jenkins_url, "AGENT_NAME": m.name},
            ),
        ]
    return tuple(steps)


def build_spec(settings: Settings, lab_id: str) -> LabSpec:
    """Validate `settings` and lay out the topology's machines."""
    s = validate_settings(settings)
    machines = _TOPOLOGIES[s.topology](s)
    machines = [replace(m, provisioners=_provisioners(s, m, machines)) for m in machines]
    return LabSpec(id=lab_id, settings=s, machines=tuple(machines))

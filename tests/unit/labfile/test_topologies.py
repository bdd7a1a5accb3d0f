"""The bundled topologies: what each one's parameters make, and that every
template renders a lab file that reads, at the edges of every parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labctl.guest.mysql import topology as topo
from labctl.labfile import schema as lab_schema
from labctl.labfile import topologies

from ..labs import from_text, step
from ..labs import topology as spec


@pytest.mark.parametrize("count", [1, 2, 9])
def test_nodes(count: int) -> None:
    s = spec("nodes", count=count)
    assert [m.name for m in s.machines] == [f"node{i}" for i in range(1, count + 1)]
    assert [m.hostname for m in s.machines] == [f"node{i}" for i in range(1, count + 1)]
    assert [m.ip for m in s.machines] == [f"10.1.2.{100 + i}" for i in range(1, count + 1)]
    assert [m.primary for m in s.machines] == [True] + [False] * (count - 1)


@pytest.mark.parametrize("agents", [0, 1, 2, 9])
def test_jenkins(agents: int) -> None:
    s = spec("jenkins", agents=agents)
    server, *rest = s.machines
    assert (server.name, server.hostname, server.ip, server.primary) == (
        "server",
        "jenkins-server",
        "10.1.2.10",
        True,
    )
    assert [(p.guest, p.host) for p in server.ports] == [(8080, 8080)]
    assert [m.name for m in rest] == [f"agent{i}" for i in range(1, agents + 1)]
    assert [m.hostname for m in rest] == [f"jenkins-agent{i}" for i in range(1, agents + 1)]
    assert [m.ip for m in rest] == [f"10.1.2.{10 + i}" for i in range(1, agents + 1)]
    assert all(not m.ports for m in rest)


@pytest.mark.parametrize("replicas", [1, 5])
def test_mysql_pair(replicas: int) -> None:
    s = spec("mysql-pair", replicas=replicas)
    primary, *rest = s.machines
    assert (primary.name, primary.hostname, primary.ip) == ("primary", "mysql-primary", "10.1.2.20")
    assert [m.hostname for m in rest] == [f"mysql-replica{i}" for i in range(1, replicas + 1)]
    assert [m.ip for m in rest] == [f"10.1.2.{20 + i}" for i in range(1, replicas + 1)]


def test_every_machine_knows_every_hostname() -> None:
    s = spec("nodes", count=3)
    hosts = {
        m.name: dict(p.env)["LAB_HOSTS"]
        for m in s.machines
        for p in m.provisioners
        if p.name == "common"
    }
    assert set(hosts.values()) == {"10.1.2.101=node1 10.1.2.102=node2 10.1.2.103=node3"}


def test_containerd_is_default_and_can_be_left_out() -> None:
    assert all("containerd" in [p.name for p in m.provisioners] for m in spec("nodes").machines)
    assert all(
        "containerd" not in [p.name for p in m.provisioners]
        for m in spec("nodes", containerd=False).machines
    )


def test_sizes() -> None:
    s = spec("jenkins", agents=1)
    assert [m.memory for m in s.machines] == [2048, 1024]
    s = spec("jenkins", agents=1, memory=4096, cpus=4)
    assert [(m.cpus, m.memory) for m in s.machines] == [(4, 4096), (4, 4096)]


@pytest.mark.parametrize("agents", [0, 1, 2, 9])
def test_jenkins_provisioning_per_role(agents: int) -> None:
    s = spec("jenkins", agents=agents, containerd=False)
    server, *rest = s.machines
    steps = [(p.name, p.script, p.run) for p in server.provisioners]
    assert steps == [
        ("common", "common.sh", ""),
        ("jdk", "jdk.sh", ""),
        ("jenkins-user", "jenkins-user.sh", ""),
        ("jenkins", "jenkins-server.sh", "never"),  # labctl runs it once the keys are in
    ]
    install = server.provisioners[-1].env
    assert install["JENKINS_SOURCE"] == "apt"
    assert install["JENKINS_AGENTS"] == " ".join(f"agent{i}" for i in range(1, agents + 1))
    assert install["JENKINS_URL"] == "http://jenkins-server:8080/"
    for i, agent in enumerate(rest, start=1):
        assert [p.name for p in agent.provisioners] == ["common", "jdk", "jenkins-agent"]
        assert agent.provisioners[-1].env == {
            "JENKINS_URL": "http://jenkins-server:8080/",
            "AGENT_NAME": f"agent{i}",
        }
    hosts = dict(server.provisioners[0].env)["LAB_HOSTS"].split()
    assert len(hosts) == agents + 1 and hosts[0] == "10.1.2.10=jenkins-server"


def test_jenkins_war_and_jdk(tmp_path: Path) -> None:
    war = tmp_path / "jenkins.war"
    war.write_bytes(b"PK")
    s = spec("jenkins", agents=1, jenkins_war=str(war), jdk=21)
    assert s.family("jenkins") == {"jdk": 21, "war": str(war)}
    server = s.machines[0]
    assert (
        next(p for p in server.provisioners if p.name == "jenkins").env["JENKINS_SOURCE"] == "war"
    )
    assert all(
        next(p for p in m.provisioners if p.name == "jdk").env == {"JDK_VERSION": "21"}
        for m in s.machines
    )


@pytest.mark.parametrize(
    ("chain", "sources"),
    [
        (False, {"replica1": "primary", "replica2": "primary", "replica3": "primary"}),
        (True, {"replica1": "primary", "replica2": "replica1", "replica3": "replica2"}),
    ],
)
def test_mysql_replication_layout(chain: bool, sources: dict[str, str]) -> None:
    s = spec("mysql-pair", replicas=3, chain=chain, containerd=False)
    assert topo.sources(s) == sources
    env = {m.name: next(p for p in m.provisioners if p.name == "mysql").env for m in s.machines}
    assert [env[n]["MYSQL_SERVER_ID"] for n in ("primary", "replica1", "replica2", "replica3")] == [
        "20",
        "21",
        "22",
        "23",
    ]  # the address's last octet: unique in the lab, stable when machines come and go
    assert env["replica1"]["MYSQL_BIND_ADDRESS"] == "10.1.2.21"


def _edge_params() -> list[tuple[str, dict[str, Any]]]:
    cases: list[tuple[str, dict[str, Any]]] = []
    for name, own in topologies.PARAMS.items():
        cases.append((name, {}))
        for key, param in own.items():
            if param.low is not None:
                cases += [(name, {key: param.low}), (name, {key: param.high})]
            for choice in param.choices:
                cases.append((name, {key: choice}))
            if isinstance(param.default, bool):
                cases.append((name, {key: not param.default}))
        cases += [
            (name, {"cpus": 1, "memory": 256}),
            (name, {"cpus": 64, "memory": 262144}),
        ]
    cases.append(("mysql-pair", {"replicas": 5, "chain": True, "gtid": True}))
    cases.append(("jenkins", {"agents": 0, "containerd": False}))
    return cases


EDGES = _edge_params()


@pytest.mark.parametrize(("topology", "given"), EDGES, ids=[f"{t}-{g}" for t, g in EDGES])
def test_bundled_topologies_render_files_that_parse(topology: str, given: dict[str, Any]) -> None:
    """`labctl init` and `up TOPOLOGY` read what the templates render."""
    values = topologies.params(topology, {}, given)
    text = topologies.lab_text(topology, values)
    built = from_text(text, filename=f"{topology}.yaml")
    spec = built.spec
    assert spec.machines
    if "count" in given:
        assert len(spec.machines) == given["count"]
    if "agents" in given:
        assert len(spec.with_role("jenkins-agent")) == given["agents"]
    if "replicas" in given:
        assert len(spec.with_role("mysql-replica")) == given["replicas"]
    if "cpus" in given:
        assert {m.cpus for m in spec.machines} == {given["cpus"]}
    if given.get("containerd") is False:
        assert not spec.with_role("containerd")
    # and the normalised copy of it reads again
    lab_schema.parse(built.normalised, "lab.yaml", Path("."))


def test_jenkins_topology_with_a_war(tmp_path: Path) -> None:
    war = tmp_path / "jenkins.war"
    war.write_bytes(b"PK")
    text = topologies.lab_text(
        "jenkins", topologies.params("jenkins", {}, {"jenkins_war": str(war)})
    )
    spec = from_text(text, filename="jenkins.yaml", allowed=(str(war),)).spec
    assert spec.family("jenkins")["war"] == str(war.resolve())
    server = step(spec.machine("server"), "jenkins")
    assert server.env["JENKINS_SOURCE"] == "war"

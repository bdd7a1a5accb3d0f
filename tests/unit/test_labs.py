from __future__ import annotations

import pytest

from labctl.labs import build_spec
from labctl.spec import Settings


def spec(topology: str, **kw: object):
    s = Settings(topology=topology, name="t", provider="docker", box="b", subnet="10.1.2", **kw)  # type: ignore[arg-type]
    return build_spec(s, "id")


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

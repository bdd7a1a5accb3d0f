from __future__ import annotations

import pytest

from labctl.errors import SpecError
from labctl.lab.spec import (
    check_name,
    check_subnet,
    spec_from_record,
    spec_to_record,
)
from labctl.labfile import topologies

from ..labs import topology


@pytest.mark.parametrize("name", ["a", "nodes", "lab-2", "x" + "y" * 30])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "Lab", "1lab", "-x", "a_b", "a b", "x" * 32, "a/b", "a;b"])
def test_bad_names(name: str) -> None:
    with pytest.raises(SpecError, match="invalid lab name"):
        check_name(name)


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("192.168.56", "192.168.56"),
        ("10.0.0", "10.0.0"),
        ("172.16.9", "172.16.9"),
        ("172.31.255", "172.31.255"),
        ("192.168.056", "192.168.56"),
    ],
)
def test_private_subnets(given: str, normal: str) -> None:
    assert check_subnet(given) == normal


@pytest.mark.parametrize("subnet", ["8.8.8", "172.32.0", "192.169.1", "100.64.0"])
def test_public_subnets_refused(subnet: str) -> None:
    with pytest.raises(SpecError, match="not private"):
        check_subnet(subnet)


@pytest.mark.parametrize(
    "subnet", ["192.168.56.0", "192.168", "192.168.256", "a.b.c", "192.168.56/24", ""]
)
def test_malformed_subnets_refused(subnet: str) -> None:
    with pytest.raises(SpecError, match="invalid subnet"):
        check_subnet(subnet)


@pytest.mark.parametrize(
    ("topology", "given", "message"),
    [
        ("nodes", {"count": 0}, "--count must be between 1 and 9"),
        ("nodes", {"count": 10}, "--count must be between 1 and 9"),
        ("jenkins", {"agents": -1}, "--agents must be between 0 and 9"),
        ("jenkins", {"agents": 10}, "--agents must be between 0 and 9"),
        ("mysql-pair", {"replicas": 0}, "--replicas must be between 1 and 5"),
        ("mysql-pair", {"replicas": 6}, "--replicas must be between 1 and 5"),
        ("jenkins", {"jdk": 11}, "--jdk must be 17 or 21"),
        ("nodes", {"cpus": 0}, "--cpus"),
        ("nodes", {"memory": 100}, "--memory"),
        ("nodes", {"agents": 5}, "--agents does not apply to nodes"),
        ("mysql-pair", {"count": 3}, "--count does not apply to mysql-pair"),
        ("k8s", {}, "unknown topology"),
    ],
)
def test_topology_parameters_checked(topology: str, given: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        topologies.params(topology, {}, given)


def test_topology_parameters_merge_recorded_then_given() -> None:
    values = topologies.params("mysql-pair", {"replicas": 2, "chain": True}, {"replicas": 3})
    assert (values["replicas"], values["chain"], values["gtid"]) == (3, True, False)


def test_record_round_trip() -> None:
    spec = topology("jenkins", agents=2, lab_id="abc123")
    again = spec_from_record(spec_to_record(spec))
    assert again == spec


def test_unreadable_record() -> None:
    with pytest.raises(SpecError, match="unreadable lab record"):
        spec_from_record({"version": 2, "settings": {}})
    with pytest.raises(SpecError, match="record version"):
        spec_from_record({"version": 99})

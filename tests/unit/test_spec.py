from __future__ import annotations

import pytest

from labctl.errors import SpecError
from labctl.labs import build_spec
from labctl.spec import (
    Settings,
    check_name,
    check_subnet,
    spec_from_record,
    spec_to_record,
)


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


def settings(**kw: object) -> Settings:
    base = dict(
        topology="nodes",
        name="lab",
        provider="docker",
        box="labctl/debian:bookworm",
        subnet="192.168.56",
    )
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("count", 0, "--count must be between 1 and 9"),
        ("count", 10, "--count must be between 1 and 9"),
        ("agents", -1, "--agents must be between 0 and 9"),
        ("agents", 10, "--agents must be between 0 and 9"),
        ("replicas", 0, "--replicas must be between 1 and 5"),
        ("replicas", 6, "--replicas must be between 1 and 5"),
        ("jdk", 11, "--jdk must be 17 or 21"),
        ("cpus", 0, "--cpus"),
        ("memory", 100, "--memory"),
        ("provider", "vmware", "unknown provider"),
        ("topology", "k8s", "unknown topology"),
        ("box", "two words", "invalid box"),
        ("libvirt_uri", "qemu:///system", "only to --provider libvirt"),
    ],
)
def test_out_of_range_settings(field: str, value: object, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        build_spec(settings(**{field: value}), "id1")


def test_record_round_trip() -> None:
    spec = build_spec(settings(topology="jenkins", agents=2), "abc123")
    again = spec_from_record(spec_to_record(spec))
    assert again == spec


def test_unreadable_record() -> None:
    with pytest.raises(SpecError, match="unreadable lab record"):
        spec_from_record({"version": 1, "settings": {}})
    with pytest.raises(SpecError, match="record version"):
        spec_from_record({"version": 99})

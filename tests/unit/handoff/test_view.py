"""ssh-config, inventory and graph from captured lab states (golden files),
each checked by the parser of the tool it is for where one runs here."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from labctl.handoff import ansible, graph, sshconfig
from labctl.handoff.view import LabView, Link, MachineView, SshView

from ...conftest import DATA, require

STATES = DATA / "handoff"
GOLDEN = DATA / "golden" / "handoff"
SVG = "{http://www.w3.org/2000/svg}"


def from_record(data: dict[str, Any]) -> LabView:
    """A LabView from its JSON record (a captured lab state)."""
    machines = [
        MachineView(
            **{
                **m,
                "roles": tuple(m["roles"]),
                "ssh": SshView(**m["ssh"]) if m.get("ssh") else None,
            }
        )
        for m in data["machines"]
    ]
    links = [Link(**x) for x in data.get("links", [])]
    return LabView(**{**data, "machines": machines, "links": links})


def view(name: str = "hand-live") -> LabView:
    return from_record(json.loads((STATES / f"{name}.json").read_text()))


def golden(name: str, text: str) -> None:
    """Compare with tests/data/golden/handoff/NAME (`make golden` rewrites them)."""
    assert text == (GOLDEN / name).read_text(), f"{name} differs: make golden to accept"


FORMATS = [
    ("ssh-config", sshconfig.ssh_config),
    ("known_hosts", sshconfig.known_hosts),
    ("inventory.ini", lambda v: ansible.render(v, "ansible")),
    ("inventory.yaml", lambda v: ansible.render(v, "yaml")),
    ("inventory.json", lambda v: ansible.render(v, "json")),
    ("graph.mmd", graph.mermaid),
    ("graph.gv", graph.dot),
    ("graph.svg", graph.own_svg),
]


@pytest.mark.parametrize(("name", "make"), FORMATS, ids=[f[0] for f in FORMATS])
def test_formats_from_a_captured_lab(name: str, make) -> None:
    golden(name, make(view()))


def test_record_round_trip() -> None:
    v = view()
    assert from_record(json.loads(json.dumps(asdict(v)))) == v


def test_groups_follow_live_roles() -> None:
    v = view()
    groups = ansible.groups(v)
    live = {m.name: m.mysql_role for m in v.machines if m.mysql_role}
    assert groups["mysql_primary"] == [n for n, r in live.items() if r == "primary"]
    assert groups["mysql_replica"] == [n for n, r in live.items() if r in ("replica", "dual")]
    # after a switchover the servers say otherwise, and the groups follow
    swapped = replace(
        v,
        machines=[
            replace(
                m,
                mysql_role={"primary": "replica", "replica1": "primary"}.get(m.name, m.mysql_role),
            )
            for m in v.machines
        ],
    )
    after = ansible.groups(swapped)
    assert after["mysql_primary"] == ["replica1"] and "primary" in after["mysql_replica"]
    assert after["lab_hand"] == [m.name for m in v.machines]


def test_openssh_reads_the_config(tmp_path: Path) -> None:
    """`ssh -G` (OpenSSH's own parser) resolves both names of each machine."""
    require(shutil.which("ssh"), "OpenSSH's client is not installed")
    v = view()
    config = tmp_path / "config"
    config.write_text(sshconfig.ssh_config(v))
    for m in v.machines:
        if m.ssh is None:
            continue
        for name in (f"{v.lab}-{m.name}", m.name):
            seen = subprocess.run(
                ["ssh", "-G", "-F", str(config), name], capture_output=True, text=True, check=True
            ).stdout
            got = dict(line.split(" ", 1) for line in seen.splitlines() if " " in line)
            assert got["hostname"] == m.ssh.host
            assert got["port"] == str(m.ssh.port)
            assert got["hostkeyalias"] == v.alias(m.name)
            assert got["stricthostkeychecking"] == "true"
            assert got["userknownhostsfile"] == v.known_hosts


def test_a_path_with_spaces_is_quoted_and_a_quote_refused(tmp_path: Path) -> None:
    require(shutil.which("ssh"), "OpenSSH's client is not installed")
    v = replace(view(), known_hosts="/tmp/my labs/known_hosts")
    config = tmp_path / "config"
    config.write_text(sshconfig.ssh_config(v))
    running = next(m for m in v.machines if m.ssh)
    seen = subprocess.run(
        ["ssh", "-G", "-F", str(config), running.name], capture_output=True, text=True, check=True
    ).stdout
    assert "userknownhostsfile /tmp/my labs/known_hosts" in seen
    with pytest.raises(ValueError):
        sshconfig.ssh_config(replace(v, known_hosts='/tmp/"x"'))


@pytest.mark.parametrize("fmt", ansible.FORMATS)
def test_ansible_inventory_reads_every_format(tmp_path: Path, fmt: str) -> None:
    """ansible-inventory (ansible-core, a dev dependency) parses each format
    to the same hosts, groups and variables."""
    exe = shutil.which("ansible-inventory") or str(
        Path(__file__).parents[3] / ".venv/bin/ansible-inventory"
    )
    require(Path(exe).exists(), "ansible-core is not installed (pip install -e '.[dev]')")
    v = view()
    suffix = {"ansible": ".ini", "yaml": ".yaml", "json": ".json"}[fmt]
    path = tmp_path / f"lab{suffix}"
    path.write_text(ansible.render(v, fmt))
    done = subprocess.run(
        [exe, "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "true", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    hostvars = listed["_meta"]["hostvars"]
    assert set(hostvars) == {m.name for m in v.machines}
    for group, hosts in ansible.groups(v).items():
        assert listed[group]["hosts"] == hosts
    for m in v.machines:
        got = hostvars[m.name]
        assert got["labctl_roles"] == list(m.roles)
        assert got["labctl_ip"] == m.ip
        if m.ssh:
            assert got["ansible_host"] == m.ssh.host and got["ansible_port"] == m.ssh.port
            assert "StrictHostKeyChecking=yes" in got["ansible_ssh_common_args"]


def test_yaml_and_json_say_the_same() -> None:
    v = view()
    assert yaml.safe_load(ansible.render(v, "yaml")) == json.loads(ansible.render(v, "json"))


def test_own_svg_names_every_machine_and_link() -> None:
    v = view()
    root = ET.fromstring(graph.own_svg(v))
    assert root.tag == f"{SVG}svg"
    titles = {g.get("class"): [] for g in root.iter(f"{SVG}g")}  # node / edge / cluster -> titles
    for g in root.iter(f"{SVG}g"):
        title = g.find(f"{SVG}title")
        assert title is not None
        titles[g.get("class")].append(title.text)
    assert titles["node"] == [m.name for m in v.machines]
    assert titles["edge"] == [f"{x.source}->{x.target}" for x in v.links]


def test_svg_uses_graphviz_when_given_and_html_embeds_it() -> None:
    v = view()
    asked: list[list[str]] = []

    def fake_dot(argv: list[str], text: str) -> str:
        asked.append(argv)
        assert text == graph.dot(v)
        return '<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg xmlns="http://www.w3.org/2000/svg"/>'

    drawn = graph.svg(v, fake_dot)
    assert asked == [["dot", "-Tsvg"]] and drawn.startswith("<?xml")
    assert graph.svg(v, lambda argv, text: None) == graph.own_svg(v)  # no Graphviz here
    page = graph.page(v, drawn)
    assert "<?xml" not in page and "<!DOCTYPE svg>" not in page
    assert '<svg xmlns="http://www.w3.org/2000/svg"/>' in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # offline


def test_declared_view_says_so() -> None:
    v = view("hand-declared")
    assert not v.live
    assert "declared" in graph.mermaid(v)
    assert all(x.label == "declared" for x in v.links)


def test_jenkins_links_drawn_online_or_not() -> None:
    from labctl.handoff.view import Link, MachineView

    v = LabView(
        lab="ci",
        provider="docker",
        subnet="10.0.0",
        known_hosts="/k",
        machines=[
            MachineView("server", "jenkins", "10.0.0.10", ("jenkins-controller",), "running"),
            MachineView("agent1", "agent1", "10.0.0.11", ("jenkins-agent",), "running"),
            MachineView("agent2", "agent2", "10.0.0.12", ("jenkins-agent",), "stopped"),
        ],
        links=[
            Link("jenkins", "server", "agent1", "online", True),
            Link("jenkins", "server", "agent2", "offline", False),
        ],
    )
    dot = graph.dot(v)
    assert f'"server" -> "agent1" [label="online", color="{graph.JENKINS_COLOUR}"];' in dot
    assert (
        f'"server" -> "agent2" [label="offline", color="{graph.BAD_COLOUR}", style=dashed];' in dot
    )
    assert ansible.groups(v) == {
        "lab_ci": ["server", "agent1", "agent2"],
        "jenkins_controller": ["server"],
        "jenkins_agent": ["agent1", "agent2"],
    }
    assert 'm0 -.->|"offline"| m2' in graph.mermaid(v)

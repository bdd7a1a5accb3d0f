"""Lab files built: every refusal names its line and key, and what a good file
builds is what it says (names, addresses, roles wired across machines, user
scripts), including the normalised copy kept in the lab folder. The YAML and
the model alone: test_schema.py; the bundled topologies: test_topologies.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from labctl.errors import SpecError
from labctl.lab.spec import LabSpec, Machine
from labctl.labfile import build as labfile
from labctl.labfile import safeyaml
from labctl.labfile import schema as lab_schema

from ...conftest import DATA
from ..labs import from_text, resolved, step

BAD = DATA / "labfiles" / "bad"
EXAMPLES = Path(__file__).parents[3] / "examples"

# (file under tests/data/labfiles/bad, line, key path or None, a fragment of the message)
BAD_FILES: list[tuple[str, int, str | None, str]] = [
    ("yaml-syntax", 6, None, "YAML syntax error: mapping values are not allowed here"),
    ("unknown-top-key", 5, "machine", "unknown key"),
    ("unknown-machine-key", 5, "machines.web.colour", "unknown key"),
    ("wrong-type", 5, "machines.web.memory", "valid integer"),
    ("count-zero", 5, "machines.node.count", "greater than or equal to 1"),
    ("count-ten", 6, "machines.node.count", "less than or equal to 9"),
    ("cpus-range", 5, "machines.web.cpus", "less than or equal to 64"),
    ("memory-range", 5, "machines.web.memory", "greater than or equal to 256"),
    ("defaults-range", 3, "defaults.cpus", "greater than or equal to 1"),
    ("unknown-role", 6, "machines.sql.roles[1]", "input should be 'containerd', 'mysql-primary'"),
    ("role-option-unknown", 7, "machines.replica.roles[0].mysql-replica.src", "unknown key"),
    (
        "source-missing",
        8,
        "machines.replica.roles[1].mysql-replica.source",
        "'nope' is no machine of the lab",
    ),
    (
        "source-not-mysql",
        9,
        "machines.replica.roles[0].mysql-replica.source",
        "'web' is not a mysql machine",
    ),
    (
        "source-self",
        7,
        "machines.replica.roles[0].mysql-replica.source",
        "a replica cannot be its own source",
    ),
    (
        "source-cycle",
        7,
        "machines.va.roles[0].mysql-replica.source",
        "replication sources form a cycle: va -> vb -> va",
    ),
    (
        "two-primaries",
        9,
        "machines.replica.roles[0]",
        "no source given and the lab has 2 (p1, p2) mysql-primary",
    ),
    ("no-primary", 5, "machines.replica.roles[0]", "the lab has no mysql-primary"),
    (
        "duplicate-after-count",
        5,
        "machines.node1",
        "machine name 'node1' is already taken (by node)",
    ),
    (
        "ip-outside-subnet",
        7,
        "machines.sql.ip",
        "10.9.9.5 is outside the lab's subnet 10.1.2.0/24",
    ),
    ("ip-octet", 5, "machines.web.ip", "255 is not a usable host address of 10.1.2.0/24 (2-254)"),
    ("ip-taken", 6, "machines.sql.ip", "10.1.2.20 is taken by web"),
    ("ip-past-254", 5, "machines.node.ip", "3 machines from 253 run past .254"),
    ("script-missing", 6, "machines.app.provision[1]", "no such script: "),
    ("bad-machine-name", 4, "machines.Bad", "invalid machine name 'Bad'"),
    (
        "agent-no-controller",
        5,
        "machines.agent.roles[0]",
        "the lab has no jenkins-controller for this agent",
    ),
    (
        "two-controllers",
        7,
        "machines.ci2.roles",
        "a lab has one jenkins-controller (found ci1, ci2)",
    ),
    (
        "primary-and-replica",
        5,
        "machines.sql.roles",
        "a machine is mysql-primary or mysql-replica, not both",
    ),
    ("top-level-list", 1, "(top)", "a lab file is a mapping with a `machines` key"),
    ("port-missing-host", 6, "machines.web.ports[1].host", "required"),
    ("jdk", 3, "jenkins.jdk", "input should be 17 or 21"),
]


def _build(text: str, base_dir: Path, **kw: Any) -> labfile.Built:
    return from_text(text, base_dir=base_dir, **kw)


@pytest.mark.parametrize("parser", ["libyaml", "python"])
@pytest.mark.parametrize(
    ("case", "line", "path", "fragment"), BAD_FILES, ids=[c[0] for c in BAD_FILES]
)
def test_bad_file_names_line_and_key(
    case: str,
    line: int,
    path: str | None,
    fragment: str,
    parser: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refusal points at the offending line and key, so the user can go
    straight to it (schema errors and cross-machine checks alike); the same
    words with libyaml and with PyYAML's own parser (a PyYAML without libyaml)."""
    if parser == "python":
        monkeypatch.setattr(safeyaml, "FAST_LOADER", safeyaml.CLEAR_LOADER)
    else:
        assert issubclass(safeyaml.FAST_LOADER, yaml.CSafeLoader)  # the wheel carries libyaml
    (tmp_path / "ok.sh").write_text("echo ok\n")
    text = (BAD / f"{case}.yaml").read_text()
    with pytest.raises(SpecError) as exc:
        _build(text, tmp_path)
    message = exc.value.message
    prefix = f"lab.yaml:{line}: " + (f"{path}: " if path else "")
    assert message.startswith(prefix), message
    assert fragment in message[len(prefix) :], message
    assert "\n" not in message


def test_every_bad_file_is_in_the_table() -> None:
    """A file added under bad/ without its expectation would test nothing."""
    assert sorted(p.stem for p in BAD.glob("*.yaml")) == sorted(c[0] for c in BAD_FILES)


# ---------------------------------------------------------------- good files


def _machines(spec: LabSpec) -> dict[str, Machine]:
    return {m.name: m for m in spec.machines}


def test_count_expands_names_hostnames_and_addresses() -> None:
    """`count` makes NAME1..NAMEn, hostnames from the `hostname` prefix, and
    consecutive addresses from an explicit `ip`."""
    spec = from_text(
        "machines:\n"
        "  app:\n    count: 2\n    hostname: web\n    ip: 10.1.2.40\n"
        "  node:\n    count: 3\n    ip: 60\n"
    ).spec
    got = [(m.name, m.hostname, m.ip) for m in spec.machines]
    assert got == [
        ("app1", "web1", "10.1.2.40"),
        ("app2", "web2", "10.1.2.41"),
        ("node1", "node1", "10.1.2.60"),
        ("node2", "node2", "10.1.2.61"),
        ("node3", "node3", "10.1.2.62"),
    ]
    assert [m.primary for m in spec.machines] == [True, False, False, False, False]


def test_automatic_addresses_start_at_10_and_skip_explicit_ones() -> None:
    spec = from_text("machines:\n  x: {ip: 11}\n  y: {}\n  z: {}\n  w: {ip: 12}\n  v: {}\n").spec
    assert {m.name: m.ip.rsplit(".", 1)[1] for m in spec.machines} == {
        "x": "11",
        "y": "10",
        "z": "13",
        "w": "12",
        "v": "14",
    }


def test_sizes_defaults_options_and_own_values() -> None:
    """A machine's own cpus/memory win; --cpus/--memory replace the file's
    defaults only."""
    text = (
        "defaults: {cpus: 1, memory: 512}\n"
        "machines:\n  va: {}\n  vb:\n    cpus: 4\n    memory: 2048\n  vc: {memory: 768}\n"
    )
    sizes = {m.name: (m.cpus, m.memory) for m in from_text(text).spec.machines}
    assert sizes == {"va": (1, 512), "vb": (4, 2048), "vc": (1, 768)}
    sizes = {m.name: (m.cpus, m.memory) for m in from_text(text, cpus=3, memory=1536).spec.machines}
    assert sizes == {"va": (3, 1536), "vb": (4, 2048), "vc": (3, 768)}
    plain = {m.name: (m.cpus, m.memory) for m in from_text("machines:\n  va: {}\n").spec.machines}
    assert plain == {"va": (2, 1024)}


def test_every_mysql_server_is_provisioned_alike_whatever_its_role() -> None:
    """A switchover moves roles at run time: the Vagrantfile (each server's
    provisioning) must not depend on them. Every server logs what it applies,
    so a chain's middle passes updates on and any replica can be promoted."""
    spec = from_text(
        "machines:\n"
        "  sql1:\n    roles: [mysql-primary]\n"
        "  sql2:\n    roles:\n      - mysql-replica: {source: sql1}\n"
        "  sql3:\n    roles:\n      - mysql-replica: {source: sql2}\n"
    ).spec
    ms = _machines(spec)
    env = {name: step(m, "mysql").env for name, m in ms.items()}
    assert {n: sorted(e) for n, e in env.items()} == {
        n: ["LAB_HOSTNAME", "MYSQL_BIND_ADDRESS", "MYSQL_GTID", "MYSQL_SERVER_ID"] for n in env
    }
    assert ms["sql3"].option("mysql-replica", "source") == "sql2"
    # server ids differ: they come from the addresses
    assert len({e["MYSQL_SERVER_ID"] for e in env.values()}) == 3


def test_replica_source_defaults_to_the_one_primary() -> None:
    spec = from_text(
        "machines:\n  web: {}\n  sql:\n    roles: [mysql-primary]\n"
        "  r:\n    count: 2\n    roles: [mysql-replica]\n"
    ).spec
    ms = _machines(spec)
    assert ms["r1"].options == {"mysql-replica": {"source": "sql"}}
    assert ms["r2"].options == {"mysql-replica": {"source": "sql"}}


def test_agent_controller_defaults_to_the_one_controller_by_hostname() -> None:
    """Agents reach the controller by its hostname on the private network."""
    spec = from_text(
        "machines:\n"
        "  ci:\n    hostname: jenkins\n    roles: [jenkins-controller]\n"
        "  agent:\n    count: 2\n    roles: [jenkins-agent, containerd]\n"
    ).spec
    ms = _machines(spec)
    for name in ("agent1", "agent2"):
        assert ms[name].option("jenkins-agent", "controller") == "ci"
        env = step(ms[name], "jenkins-agent").env
        assert env == {"JENKINS_URL": "http://jenkins:8080/", "AGENT_NAME": name}
    server = step(ms["ci"], "jenkins")
    assert server.env["JENKINS_AGENTS"] == "agent1 agent2"
    assert server.run == "never"


def test_user_scripts_run_after_the_roles_and_are_carried(tmp_path: Path) -> None:
    """The user's own scripts come last, named after their path, and their
    bytes go with the spec (the lab folder gets a copy)."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "app.sh").write_bytes(b"#!/bin/sh\necho app\n")
    (tmp_path / "top.sh").write_bytes(b"echo top\n")
    built = _build(
        "machines:\n  app:\n    roles: [containerd]\n    provision: [scripts/app.sh, top.sh]\n"
        "  other: {}\n",
        tmp_path,
    )
    ms = _machines(built.spec)
    names = [p.name for p in ms["app"].provisioners]
    assert names == ["common", "containerd", "script:scripts/app.sh", "script:top.sh"]
    assert [p.script for p in ms["app"].provisioners[2:]] == ["user/scripts/app.sh", "user/top.sh"]
    assert built.scripts == {
        "user/scripts/app.sh": b"#!/bin/sh\necho app\n",
        "user/top.sh": b"echo top\n",
    }
    assert [p.name for p in ms["other"].provisioners] == ["common"]


def test_a_changed_script_changes_its_digest(tmp_path: Path) -> None:
    """The digest is how a plan sees an edited script."""
    script = tmp_path / "app.sh"
    text = "machines:\n  app:\n    provision: [app.sh]\n"
    script.write_text("echo one\n")
    before = step(_build(text, tmp_path).spec.machines[0], "script:app.sh")
    script.write_text("echo two\n")
    after = step(_build(text, tmp_path).spec.machines[0], "script:app.sh")
    assert before.digest and after.digest
    assert before.digest != after.digest
    script.write_text("echo one\n")
    assert step(_build(text, tmp_path).spec.machines[0], "script:app.sh") == before


def test_existing_machines_keep_their_addresses() -> None:
    """A machine declared before the others must not shift their addresses
    (a changed address means a recreated machine)."""
    old = from_text("machines:\n  va: {}\n  vb: {}\n").spec
    assert [m.ip for m in old.machines] == ["10.1.2.10", "10.1.2.11"]
    new = from_text("machines:\n  new: {}\n  va: {}\n  vb: {}\n", existing=old).spec
    assert {m.name: m.ip for m in new.machines} == {
        "new": "10.1.2.12",
        "va": "10.1.2.10",
        "vb": "10.1.2.11",
    }


def test_existing_explicit_address_is_kept_when_the_ip_key_goes() -> None:
    old = from_text("machines:\n  va: {ip: 50}\n").spec
    new = from_text("machines:\n  vb: {}\n  va: {}\n", existing=old).spec
    assert {m.name: m.ip for m in new.machines} == {"vb": "10.1.2.10", "va": "10.1.2.50"}


# ---------------------------------------------------------------- the normalised copy


def _lab_folder(built: labfile.Built, folder: Path) -> Path:
    """Write a lab folder the way render does: lab.yaml and provision/<scripts>."""
    for rel, content in built.scripts.items():
        target = folder / "provision" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    path = folder / "lab.yaml"
    path.write_text(built.normalised)
    return path


def test_normalised_example_rebuilds_the_same_spec(tmp_path: Path) -> None:
    """The lab folder's lab.yaml works on its own: `up -f LABFOLDER/lab.yaml`."""
    example = EXAMPLES / "mixed"
    built = _build((example / "lab.yaml").read_text(), example.resolve())
    assert built.scripts == {"user/scripts/app.sh": (example / "scripts" / "app.sh").read_bytes()}
    path = _lab_folder(built, tmp_path / "folder")
    again = labfile.build(
        lab_schema.read(path), resolved(allowed=(built.spec.family("jenkins")["war"],))
    )
    assert again.spec == built.spec
    assert again.scripts == built.scripts
    assert again.normalised == built.normalised


def test_normalised_file_with_outside_script_and_war(tmp_path: Path) -> None:
    """A script outside the lab file's folder (allowed on the command line)
    and a relative war path still resolve from the lab folder's copy, where
    the war file is the lab's own (up allows what the lab already had)."""
    src = tmp_path / "src"
    (src / "files").mkdir(parents=True)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "common.sh").write_text("echo shared\n")
    (src / "files" / "jenkins.war").write_bytes(b"PK")
    text = (
        "name: wild\nsubnet: 10.1.2\n"
        "defaults: {cpus: 1, memory: 512}\n"
        "mysql: {gtid: true}\n"
        "jenkins: {jdk: 21, war: files/jenkins.war}\n"
        "machines:\n"
        "  ci:\n    roles: [jenkins-controller]\n    ports: [{guest: 8080, host: 18080, id: web}]\n"
        "  agent:\n    count: 2\n    hostname: worker\n    roles:\n"
        "      - jenkins-agent: {controller: ci}\n"
        "  sql:\n    ip: 10.1.2.30\n    roles: [mysql-primary]\n"
        "  r:\n    roles:\n      - mysql-replica\n      - containerd\n"
        "    provision: [../shared/common.sh]\n"
    )
    built = _build(text, src, allowed=(str(tmp_path / "shared"),))
    assert set(built.scripts) == {"user/ext/common.sh"}
    assert built.spec.family("jenkins")["war"] == str((src / "files" / "jenkins.war").resolve())
    path = _lab_folder(built, tmp_path / "folder")
    again = labfile.build(
        lab_schema.read(path), resolved(allowed=(built.spec.family("jenkins")["war"],))
    )
    assert again.spec == built.spec
    assert again.scripts == built.scripts


def test_normalised_carries_the_decided_lab_values() -> None:
    """Values decided outside the file (provider, subnet, box) are written in,
    so the copy does not depend on the host it was made on."""
    built = from_text("machines:\n  va: {}\n", provider="libvirt", subnet="10.7.7", name="x")
    data = yaml.safe_load(built.normalised)
    assert built.normalised.startswith(
        '# Lab "x", from "lab file lab.yaml"; normalised by labctl.\n'
    )
    assert {k: data[k] for k in ("name", "provider", "box", "subnet", "timezone")} == {
        "name": "x",
        "provider": "libvirt",
        "box": built.spec.box,
        "subnet": "10.7.7",
        "timezone": "Etc/UTC",
    }
    assert data["defaults"] == {"cpus": 2, "memory": 1024}


# ---------------------------------------------------------------- known gaps (bugs)


def test_two_machines_cannot_share_a_hostname() -> None:
    """Every machine's /etc/hosts and the agents' JENKINS_URL name machines
    by hostname: two with one name make it point at either."""
    with pytest.raises(SpecError, match=r"^lab\.yaml:3: machines\.vb\.hostname: "):
        from_text("machines:\n  va: {hostname: x}\n  vb: {hostname: x}\n")


def test_an_explicit_address_does_not_depend_on_declaration_order() -> None:
    old = from_text("machines:\n  va: {}\n  vb: {}\n").spec  # a is .10

    def outcome(text: str) -> str:
        try:
            spec = from_text(text, existing=old).spec
        except SpecError:
            return "refused"
        return spec.machine("new").ip

    first = outcome("machines:\n  new: {ip: 10}\n  va: {}\n  vb: {}\n")
    last = outcome("machines:\n  va: {}\n  vb: {}\n  new: {ip: 10}\n")
    assert first == last


@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        (
            "machines:\n  va:\n    roles:\n      - mysql-primary\n      - containerd\n      - containerd\n",
            "lab.yaml:6: machines.va.roles[2]: role containerd is given twice",
        ),
        (
            "machines:\n  va:\n    ports:\n      - {guest: 80, host: 8080}\n      - {guest: 80, host: 8081}\n",
            "lab.yaml:5: machines.va.ports[1]: port id 'port80' is given twice",
        ),
        (
            "machines:\n  va:\n    ports:\n      - {guest: 80, host: 8080, id: ssh}\n",
            "lab.yaml:4: machines.va.ports[0]: port id 'ssh' is Vagrant's own",
        ),
        (
            "base: &b {cpus: 1}\nmachines:\n  va:\n    <<: *b\n",
            "lab.yaml:4: machines.va: YAML merge keys (<<) are not supported",
        ),
        (
            "libvirt_uri: qemu:///system\nmachines:\n  va: {}\n",
            "lab.yaml:1: libvirt_uri: applies only to the libvirt provider",
        ),
    ],
)
def test_more_mistakes_named_at_their_line(text: str, prefix: str) -> None:
    # as `up` resolves it: the file's libvirt_uri is the lab's
    uri = "qemu:///system" if text.startswith("libvirt_uri") else None
    with pytest.raises(SpecError) as err:
        from_text(text, libvirt_uri=uri)
    assert err.value.message.startswith(prefix), err.value.message


def test_addresses_of_leaving_machines_are_not_handed_out_at_once() -> None:
    """The kept machines' /etc/hosts still name them until they are provisioned."""
    old = from_text("machines:\n  va: {}\n  vb: {}\n  vc: {}\n").spec  # .10 .11 .12
    new = from_text("machines:\n  va: {}\n  vc: {}\n  vd: {}\n", existing=old).spec
    assert {m.name: m.ip for m in new.machines} == {
        "va": "10.1.2.10",
        "vc": "10.1.2.12",
        "vd": "10.1.2.13",
    }


def test_normalised_file_keeps_the_command_lines_resources() -> None:
    """`up -f LABFOLDER/lab.yaml` must describe the lab as it is, --cpus included."""
    built = from_text("machines:\n  va: {}\n", cpus=3, memory=512)
    again = from_text(built.normalised, existing=built.spec)
    assert again.spec.machines == built.spec.machines


def test_every_machine_is_told_the_host_caches_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """The common step gives each guest the package cache's port (its apt asks
    the cache there while it answers, provision/common.sh)."""
    monkeypatch.delenv("LABCTL_CACHE_PORT", raising=False)
    built = from_text("machines:\n  va: {}\n  vb:\n    roles: [containerd]\n")
    assert {m.name: step(m, "common").env["LAB_APT_CACHE"] for m in built.spec.machines} == {
        "va": "3142",
        "vb": "3142",
    }
    monkeypatch.setenv("LABCTL_CACHE_PORT", "3200")
    built = from_text("machines:\n  va: {}\n")
    assert step(built.spec.machines[0], "common").env["LAB_APT_CACHE"] == "3200"

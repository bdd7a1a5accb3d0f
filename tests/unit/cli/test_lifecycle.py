"""init, schema, validate and `up -f` through the real entry point: the exit
codes and output scripts rely on, and that checking a lab writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from ...conftest import DATA, require, tree

BAD = DATA / "labfiles" / "bad"


@pytest.fixture
def docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands that read a lab file need Vagrant and a provider: docker,
    named through the environment (validate takes no --provider)."""
    require(shutil.which("vagrant"), "vagrant is not installed")
    require(shutil.which("docker"), "docker is not installed")
    monkeypatch.setenv("LABCTL_PROVIDER", "docker")


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error:" in line]


def test_init_writes_a_file_validate_accepts(cli, home: Path, tmp_path: Path, docker: None) -> None:
    path = tmp_path / "nodes.yaml"
    ran = cli("init", "nodes", "-o", str(path), "--count", "3")
    assert ran.code == 0, ran.stderr
    assert path.is_file()
    ran = cli("validate", "-f", str(path))
    assert ran.code == 0, ran.stderr
    assert "valid" in ran.stderr + ran.stdout
    ran = cli("validate", "-f", str(path), "--json")
    assert ran.code == 0, ran.stderr
    rows = json.loads(ran.stdout)
    assert [r["name"] for r in rows] == ["node1", "node2", "node3"]
    assert tree(home) == []


def test_init_never_overwrites_unless_forced(cli, home: Path, tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text("mine\n")
    ran = cli("init", "jenkins", "-o", str(path))
    assert ran.code == 2
    assert "exists: not overwriting it" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert path.read_text() == "mine\n"
    ran = cli("init", "jenkins", "-o", str(path), "--force")
    assert ran.code == 0, ran.stderr
    assert "jenkins-controller" in path.read_text()


def test_init_to_stdout_takes_the_topology_parameters(cli, home: Path) -> None:
    ran = cli("init", "jenkins", "-o", "-", "--agents", "3")
    assert ran.code == 0, ran.stderr
    data = yaml.safe_load(ran.stdout)
    assert list(data["machines"]) == ["server", "agent1", "agent2", "agent3"]
    assert tree(home) == []


def test_init_takes_each_option_it_declares(cli, home: Path) -> None:
    """The lab-shaping options init shares with up and render (declared once,
    cli/lifecycle.py's Given) reach its lab file: the sizes, the topology's own, containerd."""
    more = ("--cpus", "3", "--memory", "2048", "--no-containerd")
    ran = cli("init", "mysql-pair", "-o", "-", "--replicas", "2", "--chain", "--gtid", *more)
    assert ran.code == 0, ran.stderr
    data = yaml.safe_load(ran.stdout)
    assert data["defaults"] == {"cpus": 3, "memory": 2048}
    assert data["mysql"] == {"gtid": True}
    assert data["machines"]["replica2"]["roles"] == [{"mysql-replica": {"source": "replica1"}}]
    assert tree(home) == []


def test_init_refuses_another_topologys_parameter(cli, home: Path, tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    ran = cli("init", "nodes", "-o", str(path), "--agents", "3")
    assert ran.code == 2
    assert "--agents does not apply to nodes" in " ".join(ran.stderr.split())
    assert not path.exists()


def test_schema_prints_json_schema(cli) -> None:
    ran = cli("schema")
    assert ran.code == 0, ran.stderr
    assert '"$schema"' in ran.stdout
    schema = json.loads(ran.stdout)
    assert "machines" in schema["properties"]


@pytest.mark.parametrize(
    ("case", "where"),
    [
        ("count-zero", "machines.node.count"),
        ("source-cycle", "machines.va.roles[0].mysql-replica.source"),
        ("yaml-syntax", "YAML syntax error"),
    ],
)
def test_validate_bad_file_is_one_error_line(
    cli, home: Path, tmp_path: Path, docker: None, case: str, where: str
) -> None:
    """A bad file is a usage error: exit 2, one line naming FILE:LINE, no
    traceback, nothing written."""
    path = tmp_path / "bad.yaml"
    shutil.copy(BAD / f"{case}.yaml", path)
    ran = cli("validate", "-f", str(path))
    assert ran.code == 2
    assert "Traceback" not in ran.stderr
    errors = _error_lines(ran.stderr)
    assert len(errors) == 1, ran.stderr
    assert errors[0].startswith("labctl: error: bad.yaml:")
    assert where in errors[0]
    assert ran.stdout == ""
    assert tree(home) == []


def test_up_refuses_a_file_and_a_topology(cli, home: Path, tmp_path: Path, docker: None) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text("machines:\n  va: {}\n")
    ran = cli("up", "-f", str(path), "nodes", "--provider", "docker")
    assert ran.code == 2
    assert "not both" in ran.stderr
    assert tree(home) == []


def test_up_refuses_topology_options_with_a_file(
    cli, home: Path, tmp_path: Path, docker: None
) -> None:
    """A lab file says how many machines it has itself."""
    path = tmp_path / "lab.yaml"
    path.write_text("machines:\n  va: {}\n")
    ran = cli("up", "-f", str(path), "--count", "3", "--provider", "docker")
    assert ran.code == 2
    assert "--count: options of a built-in topology" in ran.stderr
    assert tree(home) == []


def test_dry_run_of_a_new_lab_adds_everything_and_writes_nothing(
    cli, home: Path, tmp_path: Path, docker: None
) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(
        "name: dry\nmachines:\n  sql:\n    roles: [mysql-primary]\n"
        "  replica:\n    count: 2\n    roles: [mysql-replica]\n"
    )
    ran = cli("up", "-f", str(path), "--dry-run", "--provider", "docker", "--json")
    assert ran.code == 0, ran.stderr
    rows = json.loads(ran.stdout)
    assert [(r["machine"], r["action"]) for r in rows] == [
        ("sql", "add"),
        ("replica1", "add"),
        ("replica2", "add"),
    ]
    assert tree(home) == []


def test_a_public_subnet_in_the_file_names_its_line(
    cli, home: Path, tmp_path: Path, docker: None
) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text("name: pub\nsubnet: 8.8.8\nmachines:\n  va: {}\n")
    ran = cli("validate", "-f", str(path))
    assert ran.code == 2
    assert _error_lines(ran.stderr)[0].startswith("labctl: error: lab.yaml:2: subnet: ")


def test_render_again_keeps_the_users_scripts(
    cli, home: Path, tmp_path: Path, docker: None
) -> None:
    """`render LAB` of a lab made from a file renders it from its record, with
    the copies of the user's scripts the lab folder holds (the original file
    may be gone)."""
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "app.sh").write_text("#!/bin/sh\necho hi\n")
    lab = tmp_path / "shop.yaml"
    lab.write_text("machines:\n  app: {provision: [s/app.sh]}\n")
    ran = cli("render", "-f", str(lab), "--provider", "docker", "--subnet", "192.168.77")
    assert ran.code == 0, ran.stderr
    copy = home / "shop" / "provision" / "user" / "s" / "app.sh"
    assert copy.read_text() == "#!/bin/sh\necho hi\n"
    (tmp_path / "s" / "app.sh").unlink()
    ran = cli("render", "shop")
    assert ran.code == 0, ran.stderr
    assert copy.read_text() == "#!/bin/sh\necho hi\n"
    assert "provision/user/s/app.sh" in (home / "shop" / "lab.yaml").read_text()


def test_destroy_a_lab_whose_record_is_unreadable(cli, home: Path, docker: None) -> None:
    """A lab recorded by an older labctl can still be torn down: Vagrant knows
    its machines even when labctl cannot read lab.json."""
    root = home / "old"
    root.mkdir(parents=True)
    (root / "lab.json").write_text('{"version": 1, "settings": {}}')
    (root / "Vagrantfile").write_text(
        'ENV["VAGRANT_DEFAULT_PROVIDER"] = "docker"\n'
        'Vagrant.configure("2") do |config|\n'
        '  config.vm.define "node1" do |node|\n'
        '    node.vm.provider "docker" do |d|\n'
        '      d.image = "labctl/debian:bookworm"\n'
        "    end\n"
        "  end\n"
        "end\n"
    )
    assert cli("status", "old").code == 2  # unreadable, and says so
    ran = cli("destroy", "old", "--yes")
    assert ran.code == 0, ran.stderr
    assert not root.exists()


def test_another_file_never_takes_over_a_lab(cli, home: Path, tmp_path: Path, docker: None) -> None:
    """Two files that name the same lab (here: by their stem) are two labs the
    user meant; the second is refused until it is named for that lab."""
    for folder in ("va", "vb"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "lab.yaml").write_text("machines:\n  one: {}\n")
    ran = cli("render", "-f", str(tmp_path / "va" / "lab.yaml"), "--provider", "docker")
    assert ran.code == 0, ran.stderr
    ran = cli("up", "-f", str(tmp_path / "vb" / "lab.yaml"), "--dry-run")
    assert ran.code == 2
    assert "lab 'lab' exists and comes from lab file" in ran.stderr
    ran = cli("up", "-f", str(tmp_path / "vb" / "lab.yaml"), "--dry-run", "--name", "lab")
    assert ran.code == 0, ran.stderr
    # the lab folder's own copy of its file is the lab's, wherever it came from
    ran = cli("up", "-f", str(home / "lab" / "lab.yaml"), "--dry-run", "--json")
    assert ran.code == 0, ran.stderr
    assert json.loads(ran.stdout)[0]["reasons"] == ["not created yet"]


def test_render_never_records_a_change_it_did_not_apply(
    cli, home: Path, tmp_path: Path, docker: None
) -> None:
    lab = tmp_path / "shop.yaml"
    lab.write_text("machines:\n  app: {}\n")
    assert cli("render", "-f", str(lab), "--provider", "docker").code == 0
    ids = home / "shop" / ".vagrant" / "machines" / "app" / "docker"
    ids.mkdir(parents=True, exist_ok=True)
    (ids / "id").write_text("0123")  # as if Vagrant had made it
    record = (home / "shop" / "lab.json").read_text()
    lab.write_text("machines:\n  app: {roles: [containerd]}\n")
    ran = cli("render", "-f", str(lab))
    assert ran.code == 2
    assert "app: provision" in ran.stderr and "labctl up applies it" in ran.stderr
    assert (home / "shop" / "lab.json").read_text() == record


def _boxes() -> list:
    from labctl.providers.packages import BoxInfo, Freshness, Manifest

    carried = Manifest("0123abcd", "2026-12-02T00:00:00Z", ("containerd", "mysql"), {"runc": "1.1"})
    return [
        BoxInfo(
            "docker",
            "labctl/debian:bookworm",
            "14e06e944130",
            945_851_078,
            Freshness.CURRENT,
            carried,
        ),
        BoxInfo(
            "libvirt",
            "labctl/bookworm",
            "0.20261201.101010",
            155_000_000,
            Freshness.UNRECORDED,
            None,
        ),
    ]


def test_box_ls_shows_each_box_and_whether_it_is_current(
    cli, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labctl import providers

    monkeypatch.setattr(providers, "boxes", _boxes)
    ran = cli("box", "ls")
    assert ran.code == 0, ran.stderr
    assert [line.split() for line in ran.stdout.splitlines()] == [
        ["PROVIDER", "BOX", "VERSION", "CARRIES", "SIZE", "BUILT", "STATE"],
        [
            "docker",
            "labctl/debian:bookworm",
            "14e06e944130",
            "containerd,mysql",
            "946",
            "MB",
            "2026-12-02T00:00:00Z",
            "current",
        ],
        ["libvirt", "labctl/bookworm", "0.20261201.101010", "-", "155", "MB", "-", "unrecorded"],
    ]
    ran = cli("box", "ls", "--json")
    assert ran.code == 0, ran.stderr
    rows = json.loads(ran.stdout)
    assert rows[0] == {
        "provider": "docker",
        "name": "labctl/debian:bookworm",
        "version": "14e06e944130",
        "carries": ["containerd", "mysql"],
        "packages": {"runc": "1.1"},
        "built": "2026-12-02T00:00:00Z",
        "size": 945_851_078,
        "state": "current",
    }
    assert (rows[1]["state"], rows[1]["carries"], rows[1]["packages"]) == ("unrecorded", [], {})


def test_cache_status_and_stop_of_a_cache_never_started(
    cli, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABCTL_HOST_DIR", str(tmp_path / "host"))
    monkeypatch.setenv("LABCTL_CACHE_PORT", "3160")
    ran = cli("cache", "status")
    assert ran.code == 0, ran.stderr
    assert [line.split()[:2] for line in ran.stdout.splitlines()] == [
        ["CACHE", "PORT"],
        ["stopped", "3160"],
    ]
    assert json.loads(cli("cache", "status", "--json").stdout)["stats"] == {
        "hits": 0,
        "misses": 0,
        "bytes_served": 0,
        "bytes_fetched": 0,
    }
    ran = cli("cache", "stop")
    assert (ran.code, ran.stderr.strip()) == (0, "package cache is not running: nothing to stop")
    monkeypatch.setenv("LABCTL_CACHE_PORT", "40000")
    ran = cli("cache", "start")
    assert ran.code == 2 and "LABCTL_CACHE_PORT='40000'" in ran.stderr

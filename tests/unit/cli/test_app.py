"""The whole CLI through its entry point: what a missing program or provider
says, what is written and what is not, the lab lock (75), doctor, shell
completion and the lazy command table. Bad input has its own table:
cli/test_bad_input.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.errors import VagrantError
from labctl.lab.home import LabHome

from ...conftest import require, tree


def test_provider_not_installed_names_the_package(cli, home: Path) -> None:
    require(not shutil.which("VBoxManage"), "VirtualBox is installed here")
    ran = cli("up", "nodes", "--provider", "virtualbox")
    assert ran.code == 2
    text = " ".join(ran.stderr.split())
    assert "provider virtualbox is not installed" in text
    assert "virtualbox package" in text
    assert tree(home) == []


def test_docker_provider_needs_a_linux_host(
    cli, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Docker Desktop keeps the containers' addresses inside its VM."""
    monkeypatch.setattr("labctl.providers.docker.sys.platform", "darwin")
    ran = cli("up", "nodes", "--provider", "docker")
    assert ran.code == 2
    assert ran.stderr.splitlines()[0].endswith(
        "the docker provider needs a Linux host: labctl connects to the containers' own addresses"
    )
    assert tree(home) == []
    doctor = {c["name"]: c for c in json.loads(cli("doctor", "--json").stdout)}
    assert not doctor["provider docker"]["ok"]


def test_vagrant_missing(cli, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))
    ran = cli("render", "nodes", "--provider", "docker")
    assert ran.code == 2
    assert "vagrant is not installed" in ran.stderr
    assert "apt-get install vagrant" in " ".join(ran.stderr.split())


def test_render_stdout_writes_nothing(cli, home: Path) -> None:
    ran = cli("render", "nodes", "--count", "2", "--provider", "docker", "--stdout")
    assert ran.code == 0
    assert "config.vm.define 'node2'" in ran.stdout
    assert tree(home) == []


def test_subnet_of_another_lab_is_refused(cli, home: Path) -> None:
    require(shutil.which("vagrant"), "vagrant is not installed")
    first = cli(
        "render", "nodes", "--name", "first", "--subnet", "192.168.70", "--provider", "docker"
    )
    assert first.code == 0, first.stderr
    assert first.stdout.strip() == str(home / "first")
    assert oct((home / "first").stat().st_mode & 0o777) == "0o700"
    before = tree(home)
    ran = cli(
        "render", "nodes", "--name", "second", "--subnet", "192.168.70", "--provider", "docker"
    )
    assert ran.code == 2
    assert "subnet 192.168.70 is already used by lab 'first'" in ran.stderr
    assert tree(home) == before
    # without --subnet a new lab takes the next free one
    third = cli("render", "nodes", "--name", "third", "--provider", "docker", "--stdout")
    assert "ip: '192.168.56.101'" in third.stdout


def test_failed_validate_leaves_no_folder(cli, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.vagrant import driver as vagrant

    def refuse(self: object, ignore_provider: bool = False) -> None:
        raise VagrantError("There are errors in the configuration of this machine.")

    monkeypatch.setattr(vagrant.VagrantDriver, "validate", refuse)
    ran = cli("render", "nodes", "--provider", "docker")
    assert ran.code == 1
    assert "errors in the configuration" in ran.stderr
    assert [p for p in tree(home) if not p.startswith(".locks")] == []


def test_lab_selection_errors(cli, home: Path) -> None:
    ran = cli("status")
    assert ran.code == 2 and "no lab in" in ran.stderr
    ran = cli("halt", "nolab")
    assert ran.code == 2 and "no lab named 'nolab'" in ran.stderr


def test_unknown_machine(cli, home: Path) -> None:
    require(shutil.which("vagrant"), "vagrant is not installed")
    assert cli("render", "nodes", "--count", "2", "--provider", "docker").code == 0
    ran = cli("halt", "nodes", "node9")
    assert ran.code == 2
    assert "lab 'nodes' has no machine 'node9' (machines: node1, node2)" in ran.stderr
    ran = cli("ssh", "node7", "-c", "true")
    assert ran.code == 2 and "no machine 'node7'" in ran.stderr


def test_several_labs_need_a_name(cli, home: Path) -> None:
    require(shutil.which("vagrant"), "vagrant is not installed")
    assert cli("render", "nodes", "--name", "a", "--provider", "docker").code == 0
    assert cli("render", "nodes", "--name", "b", "--provider", "docker").code == 0
    ran = cli("status")
    assert ran.code == 2
    assert "several labs exist (a, b)" in ran.stderr


def test_destroy_of_nothing_is_ok(cli, home: Path) -> None:
    ran = cli("destroy", "ghost", "--yes")
    assert ran.code == 0
    assert "nothing to destroy" in ran.stderr
    ran = cli("destroy", "--yes")
    assert ran.code == 0


def test_destroy_needs_yes_without_a_terminal(home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "labctl", "destroy", "x"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**os.environ, "LABCTL_HOME": str(home)},
    )
    assert done.returncode == 2
    assert "refusing to destroy without --yes" in done.stderr


def test_busy_lab_exits_75(cli, home: Path) -> None:
    with LabHome(home).lock("nodes", "up"):
        ran = cli("render", "nodes", "--provider", "docker")
    assert ran.code == 75
    assert "lab 'nodes' is busy: labctl up (pid" in ran.stderr
    assert not (home / "nodes").exists()


def test_help_is_fast_to_import() -> None:
    """`labctl --help` must not pay for paramiko, python-vagrant or jinja2."""
    code = (
        "import sys; from labctl.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('paramiko', 'vagrant', 'jinja2', 'cryptography') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr


@pytest.mark.vagrant
def test_failing_vagrant_status_is_a_failure_not_an_empty_lab(
    cli, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Docker gives no answer it can read (not an engine down), so Vagrant is
    asked, and Vagrant fails."""
    vagrant = shutil.which("vagrant")
    require(vagrant, "vagrant is not installed")
    assert cli("render", "nodes", "--provider", "docker").code == 0
    with (home / "nodes" / "Vagrantfile").open("a") as fh:
        fh.write("\nthis is not ruby (\n")
    made = home / "nodes" / ".vagrant" / "machines" / "node1" / "docker"
    made.mkdir(parents=True, exist_ok=True)  # render's `vagrant validate` made the folder
    (made / "id").write_text("0" * 64)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "vagrant").symlink_to(str(vagrant))
    fake = bin_dir / "docker"
    fake.write_text(
        "#!/bin/sh\necho 'error during connect: context deadline exceeded' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    ran = cli("status", "--json")
    assert ran.code == 1
    assert ran.stdout == ""
    assert "Vagrantfile" in ran.stderr


def test_doctor_reports_every_check_with_its_fix(cli) -> None:
    require(shutil.which("vagrant"), "vagrant is not installed")
    ran = cli("doctor", "--json")
    import json

    checks = {c["name"]: c for c in json.loads(ran.stdout)}
    assert {
        "vagrant",
        "provider virtualbox",
        "provider libvirt",
        "provider docker",
        "docker engine",
        "kvm",
        "default provider",
    } <= set(checks)
    assert checks["vagrant"]["ok"] and "Vagrant" in checks["vagrant"]["detail"]
    assert all(c["ok"] or c["fix"] for c in checks.values())
    assert ran.code in (0, 1)  # which one: test_doctor_exit_code, on checks it is given


@pytest.mark.parametrize(
    ("failing", "code"),
    [
        ((), 0),
        (("kvm",), 0),  # optional: said, with its fix, but no failure
        (("kvm", "vagrant"), 1),  # a required one failed
    ],
)
def test_doctor_exit_code(cli, monkeypatch: pytest.MonkeyPatch, failing: tuple, code: int) -> None:
    from labctl.ops import host
    from labctl.ops.doctor import Check

    given = [
        Check(
            "vagrant", "vagrant" not in failing, "Vagrant 2.3.4", "apt-get install vagrant", True
        ),
        Check("kvm", "kvm" not in failing, "no /dev/kvm", "load kvm_intel or kvm_amd"),
    ]
    monkeypatch.setattr(host, "checks", lambda: given)
    ran = cli("doctor")
    assert ran.code == code
    assert ("load kvm_intel or kvm_amd" in ran.stdout) == ("kvm" in failing)


def completion_env(line: str) -> dict[str, str]:
    """What bash's completion function hands the program for `line`."""
    return {
        "_LABCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": line,
        "COMP_CWORD": str(len(line.split(" ")) - 1),
    }


def complete(line: str) -> list[str]:
    """What bash completion offers for the last word of `line`."""
    env = {**os.environ, **completion_env(line)}
    done = subprocess.run([sys.executable, "-m", "labctl"], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr, done.stderr
    return done.stdout.split()


COMPLETIONS = [
    ("labctl ct", ["ctr"]),
    ("labctl up ", ["nodes", "jenkins", "mysql-pair", "web"]),
    ("labctl up w", ["web"]),
    ("labctl status ", ["mysql-pair", "web"]),
    ("labctl halt ", ["mysql-pair", "web"]),  # several labs: no default lab's machines
    ("labctl halt web ", ["node1", "node2"]),
    ("labctl destroy web node1 ", ["node2"]),
    ("labctl provision --lab web n", ["node1", "node2"]),
    ("labctl ssh mysql-pair ", ["primary", "replica1"]),
    ("labctl ssh mysql-pair primary ", []),  # one machine
    ("labctl ssh --lab web node1 ", []),
    ("labctl ctr --lab web ps --vm ", ["node1", "node2"]),
    ("labctl mysql role --lab mysql-pair ", ["primary", "replica1"]),
    ("labctl exec --lab ", ["mysql-pair", "web"]),
    ("labctl halt nosuchlab ", []),
    ("labctl --home /nonexistent halt ", []),
]


@pytest.fixture
def two_labs(cli, home: Path) -> Path:
    for args in (["nodes", "--name", "web", "--count", "2"], ["mysql-pair"]):
        ran = cli("render", *args, "--provider", "docker")
        assert ran.code == 0, ran.stderr
    return home


def test_shell_completion_names_labs_and_machines(
    two_labs: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table through the entry point in-process (a program per line would
    take 0.1 s each); the next test runs the program itself."""

    def complete_here(line: str) -> list[str]:
        for name, value in completion_env(line).items():
            monkeypatch.setenv(name, value)
        ran = cli()
        assert ran.code == 0 and not ran.stderr, ran.stderr
        return ran.stdout.split()

    got = {line: complete_here(line) for line, _ in COMPLETIONS}
    assert got == dict(COMPLETIONS)


def test_completion_of_the_only_lab_offers_its_machines_too(cli, home: Path) -> None:
    assert cli("render", "nodes", "--count", "2", "--provider", "docker").code == 0
    assert complete("labctl halt ") == ["nodes", "node1", "node2"]
    (home / "nodes" / "lab.json").write_text("{broken")
    assert complete("labctl halt ") == ["nodes"]  # a broken lab.json: no error, no machines


def test_lazy_command_table_matches_the_modules() -> None:
    """cli.app lists each module's commands so it can load them on demand;
    the list must say exactly what each module registers."""
    from labctl.cli.app import COMMANDS, commands_of

    for module, names in COMMANDS.items():
        assert set(commands_of(module)) == set(names), module


def test_unknown_command_is_a_usage_error(cli, home: Path) -> None:
    ran = cli("frobnicate")
    assert ran.code == 2 and "No such command 'frobnicate'" in ran.stderr


def test_destroy_of_a_lab_that_is_gone_is_still_nothing_to_do(cli, home: Path) -> None:
    done = cli("destroy", "gone", "--yes")
    assert done.code == 0


def test_render_for_a_provider_this_host_lacks(cli, home: Path, monkeypatch) -> None:
    """A lab prepared for a teammate's laptop: VirtualBox is not here."""
    vagrant = shutil.which("vagrant")
    require(vagrant, "vagrant is not installed")
    monkeypatch.setenv("PATH", str(Path(str(vagrant)).parent))
    assert shutil.which("VBoxManage") is None
    done = cli("render", "nodes", "--provider", "virtualbox")
    assert done.code == 0, done.stderr
    assert "provider virtualbox is not installed here: validated without it" in done.stderr
    assert (home / "nodes" / "Vagrantfile").is_file()
    up = cli("up", "nodes")
    assert up.code == 2 and "provider virtualbox is not installed" in up.stderr

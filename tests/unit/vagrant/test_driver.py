"""The driver's parsing of Vagrant's --machine-readable output (captured from Vagrant 2.3.4)."""

from __future__ import annotations

from labctl.errors import LabBusy, VagrantBusy, VagrantError
from labctl.vagrant.driver import error_of, parse_line, parse_output, ssh_params

from ..fakes import data


def test_parse_line_unescapes() -> None:
    line = parse_line("1795405418,,ui,info,a%!(VAGRANT_COMMA) b\\nc")
    assert line is not None
    assert (line.target, line.kind, line.data) == ("", "ui", ("info", "a, b\nc"))


def test_parse_line_ignores_noise() -> None:
    assert parse_line("Vagrantfile validated successfully.") is None
    assert parse_line("") is None


def test_ssh_config_of_every_machine() -> None:
    lines = parse_output(data("vagrant/ssh-config-two.txt"))
    text = "\n".join(x.data[0] for x in lines if x.kind == "ssh-config")
    params = ssh_params(text)
    assert sorted(params) == ["n1", "n2"]
    # each machine its own port and key (python-vagrant's conf() would merge them)
    assert (params["n1"].port, params["n2"].port) == (2222, 2200)
    assert params["n1"].key_file == "/tmp/vproto/.vagrant/machines/n1/docker/private_key"
    assert params["n2"].key_file == "/tmp/vproto dir/.vagrant/machines/n2/docker/private_key"
    assert params["n1"].user == "vagrant" and params["n1"].host == "127.0.0.1"


def test_error_class_is_kept() -> None:
    err = error_of(parse_output(data("vagrant/ssh-config-not-ready.txt")), "")
    assert isinstance(err, VagrantError)
    assert err.error_class == "SSHNotReady"
    assert "not yet ready for SSH" in err.message
    assert "\n" not in err.message


def test_machine_action_locked_is_busy() -> None:
    err = error_of(parse_output(data("vagrant/action-locked.txt")), "")
    assert isinstance(err, LabBusy)
    assert err.exit_code == 75
    assert "another process is already executing an action" in err.message


def test_machine_locked_is_busy_and_names_the_machine() -> None:
    """Vagrant's machine index lock: what two vagrant processes loading one
    machine at once meet (readers in parallel did, before one asked for all)."""
    err = error_of(parse_output(data("vagrant/machine-locked.txt")), "")
    assert isinstance(err, VagrantBusy)
    assert (err.exit_code, err.machine) == (75, "node1")
    assert "because it is locked" in err.message and "\n" not in err.message
    acting = error_of(parse_output(data("vagrant/action-locked.txt")), "")
    assert isinstance(acting, VagrantBusy) and acting.machine == "node1"


def test_docker_cannot_suspend_gets_a_hint() -> None:
    err = error_of(parse_output(data("vagrant/suspend-docker.txt")), "")
    assert err.error_class == "SuspendNotSupported"
    assert err.hint and "labctl halt" in err.hint


def test_failure_without_error_exit_uses_stderr() -> None:
    err = error_of([], "Vagrant failed to initialize at a very early stage:\n  plugin broken")
    assert err.message.startswith("Vagrant failed to initialize")


def test_a_question_to_vagrant_has_a_time_limit(tmp_path, monkeypatch) -> None:
    """A Vagrant that hangs on `status` (a stuck provider) ends in exit 124."""
    import time

    import pytest

    from labctl.errors import TimedOut
    from labctl.vagrant.driver import VagrantDriver

    fake = tmp_path / "bin" / "vagrant"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    monkeypatch.setenv("LABCTL_QUICK_TIMEOUT", "0.3")
    start = time.monotonic()
    with pytest.raises(TimedOut, match=r"took longer than 0\.3 s") as exc:
        VagrantDriver(tmp_path).status()
    assert exc.value.exit_code == 124
    assert time.monotonic() - start < 10
    assert VagrantDriver(tmp_path, timeout=0.5).time_limit("status", False) <= 0.5  # --timeout wins
    assert VagrantDriver(tmp_path).time_limit("destroy", True) == 900  # a teardown's own default
    assert VagrantDriver(tmp_path).time_limit("up", True) == 3600


def test_the_command_lines_the_driver_gives_vagrant(tmp_path) -> None:
    """python-vagrant makes each command (labctl/vagrant/adapter.py), always
    with --machine-readable and several machines in one; an action runs
    streamed, a question (status, ssh-config, port, validate) is asked."""
    from labctl.vagrant.driver import MachineState, VagrantDriver

    ran: list[tuple[list[str], bool]] = []

    class Recording(VagrantDriver):
        def _run(self, argv: list[str], stream: bool) -> str:
            ran.append((argv[1:], stream))
            return data("vagrant/status-running.txt") if argv[1] == "status" else ""

    driver = Recording(tmp_path)
    assert driver.status() == [
        MachineState("n1", "running", "docker"),
        MachineState("n2", "running", "docker"),
    ]
    driver.validate(ignore_provider=True)
    driver.up(["n1", "n2"], provider="docker", provision=False)
    driver.provision(["n1"], only=["mysql", "jenkins"])
    driver.reload(["n1"], provision=True)
    driver.halt()
    driver.destroy(["n2"])
    driver.ssh_config("n1")
    assert driver.ports("n1") == []
    mr = "--machine-readable"
    assert ran == [
        (["status", mr], False),
        (["validate", "--ignore-provider", mr], False),
        (["up", "n1", "n2", "--no-provision", "--provider=docker", mr], True),
        (["provision", "n1", "--provision-with", "mysql,jenkins", mr], True),
        (["reload", "n1", "--provision", mr], True),
        (["halt", mr], True),
        (["destroy", "n2", "--force", mr], True),
        (["ssh-config", "n1", mr], False),
        (["port", "n1", mr], False),
    ]

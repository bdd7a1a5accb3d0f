"""Jenkins pieces that run without Jenkins: the REST parsing and --jenkins-war."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.errors import SpecError
from labctl.guest.jenkins import parse_computers
from labctl.lab.home import LabHome
from labctl.roles.jenkins import check_war

from ..fakes import COMPUTERS


def test_parse_computers_leaves_out_the_built_in_node() -> None:
    agents = parse_computers(COMPUTERS)
    assert [(a.name, a.online) for a in agents] == [("agent1", True), ("agent2", False)]
    assert "failed to launch" in agents[1].reason


def test_parse_computers_of_nothing() -> None:
    assert parse_computers({}) == []


def test_check_war(tmp_path: Path) -> None:
    war = tmp_path / "jenkins.war"
    war.write_bytes(b"PK")
    assert check_war(str(war)) == str(war.resolve())
    assert check_war(None) is None
    with pytest.raises(SpecError, match="no such file"):
        check_war(str(tmp_path / "missing.war"))


def test_keys_and_agent_secrets_reach_the_guests_as_files_only(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The controller's key pair written 0600 for jenkins; each agent trusts
    it from the controller's address only; its host key known to the
    controller. An agent holding its secret and running is left alone; one
    whose secret changed gets it (0600, over SFTP) and is restarted."""
    from labctl.roles import jenkins as role
    from labctl.session.group import LabSession

    from ..fakes import FakeTransport, Reply, argv_starts, install
    from ..labs import topology

    spec = topology("jenkins", agents=2, name="ci")
    boss = role.controller(spec)
    host_key = Reply("ssh-ed25519 AAAAC3NzaHostKey root@agent\n")
    controller = (
        FakeTransport(boss.name)
        .on(argv_starts("cat", f"{role.STATE}/agent-secrets/agent1"), Reply("s1\n"))
        .on(argv_starts("cat", f"{role.STATE}/agent-secrets/agent2"), Reply("s2-new\n"))
    )
    agents = [
        FakeTransport(name)
        .on(argv_starts("cat", "/etc/ssh/ssh_host_ed25519_key.pub"), host_key)
        .on(argv_starts("cat", role.AGENT_SECRET), Reply(held))
        .on(argv_starts("systemctl", "is-active"), Reply())
        .on(argv_starts("systemctl", "restart"), Reply())
        for name, held in (("agent1", "s1\n"), ("agent2", "s2-old\n"))
    ]
    install(monkeypatch, home, spec, [controller, *agents])
    with LabSession(LabHome(home), "ci") as session:
        role.install_keys(session, spec, b"PRIVATE", "ssh-ed25519 AAAApub labctl")
        role.deliver_agent_secrets(session, spec)
    key = f"{role.HOME}/.ssh/id_ed25519"
    put = {s.argv[1]: s for s in controller.sent if s.argv[0] == "put"}
    assert put[key].stdin == b"PRIVATE" and put[key].argv[2:] == ["600", "jenkins"]
    known = put[f"{role.HOME}/.ssh/known_hosts"].stdin.decode()
    assert "agent1," in known and "ssh-ed25519 AAAAC3NzaHostKey" in known
    for agent in agents:
        trusted = agent.files[f"{role.HOME}/.ssh/authorized_keys"].decode()
        assert trusted == f'from="{boss.ip}" ssh-ed25519 AAAApub labctl\n'
    assert role.AGENT_SECRET not in agents[0].files  # held and running: untouched
    assert ["systemctl", "restart", "jenkins-agent.service"] not in agents[0].commands()
    assert agents[1].files[role.AGENT_SECRET] == b"s2-new"
    assert agents[1].commands()[-1] == ["systemctl", "restart", "jenkins-agent.service"]
    for t in (controller, *agents):
        assert not any(
            "s2-new" in " ".join(s.argv) or "PRIVATE" in " ".join(s.argv) for s in t.sent
        )

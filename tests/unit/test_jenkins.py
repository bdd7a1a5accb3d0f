"""Jenkins pieces that run without Jenkins: the REST parsing and --jenkins-war."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.errors import SpecError
from labctl.guest.jenkins import parse_computers
from labctl.roles.jenkins import check_war

# /computer/api/json?tree=computer[displayName,offline,offlineCauseReason], as
# the Jenkins REST API documents it (Jenkins cannot be downloaded here).
COMPUTERS = {
    "_class": "hudson.model.ComputerSet",
    "computer": [
        {
            "_class": "hudson.model.Hudson$MasterComputer",
            "displayName": "Built-In Node",
            "offline": False,
            "offlineCauseReason": "",
        },
        {
            "_class": "hudson.slaves.SlaveComputer",
            "displayName": "agent1",
            "offline": False,
            "offlineCauseReason": "",
        },
        {
            "_class": "hudson.slaves.SlaveComputer",
            "displayName": "agent2",
            "offline": True,
            "offlineCauseReason": "This agent is offline because Jenkins failed to launch the agent process on it.",
        },
    ],
}


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

"""`labctl jenkins ...`: the controller's health and its agents, and the
admin password. The role itself (provisioning, set-up) is roles/jenkins.py."""

from __future__ import annotations

from typing import Any

from labctl.errors import SpecError
from labctl.lab import vault
from labctl.lab.home import LabHome
from labctl.roles import jenkins as role
from labctl.roles.jenkins import JenkinsStatus
from labctl.session.group import LabSession, Outcome


def status(home: LabHome, lab: str | None) -> tuple[JenkinsStatus, list[Outcome[Any]]]:
    """The controller's health and each agent, from Jenkins' REST API; and
    the lab's Jenkins machines that are not running."""
    with LabSession(home, lab) as session:
        spec = session.spec
        boss = role.controller(spec)
        down = session.down([boss.name, *role.agents(spec)])
        if any(o.vm == boss.name for o in down):
            url = f"http://{boss.ip}:8080/"
            return JenkinsStatus(False, False, False, "the controller is not running", url), down
        # a read never makes a secret: without one, Jenkins refuses the call
        password = vault.existing_password(session.paths, role.ADMIN_SECRET) or ""
        return role.read_status(session, spec, password), down


def admin_password(home: LabHome, lab: str | None) -> str:
    """The admin password (the one command that shows it)."""
    name = home.resolve(lab)
    role.controller(home.load(name))
    path = vault.secret_path(home.paths(name), role.ADMIN_SECRET)
    if not path.exists():
        raise SpecError(f"lab {name!r} has no Jenkins admin password yet", hint=f"labctl up {name}")
    return path.read_text().strip()

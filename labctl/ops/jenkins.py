"""`labctl jenkins ...`: the controller's health and its agents, and the
admin password. The role itself (provisioning, set-up) is roles/jenkins.py."""

from __future__ import annotations

from labctl import vault
from labctl.errors import SpecError
from labctl.home import LabHome
from labctl.roles import jenkins as role
from labctl.roles.jenkins import JenkinsStatus
from labctl.session import LabSession


def status(home: LabHome, lab: str | None) -> JenkinsStatus:
    """The controller's health and each agent, from Jenkins' REST API."""
    with LabSession(home, lab) as session:
        spec = session.spec
        role.controller(spec)
        password = vault.password(session.paths, role.ADMIN_SECRET)
        return role.read_status(session, spec, password)


def admin_password(home: LabHome, lab: str | None) -> str:
    """The admin password (the one command that shows it)."""
    name = home.resolve(lab)
    role.controller(home.load(name))
    path = vault.secret_path(home.paths(name), role.ADMIN_SECRET)
    if not path.exists():
        raise SpecError(f"lab {name!r} has no Jenkins admin password yet", hint=f"labctl up {name}")
    return path.read_text().strip()

"""Roles `jenkins-controller` and `jenkins-agent`: a controller and its
permanent inbound agents wired together, and the controller's REST API read
for `labctl jenkins ...`.

Order matters: provisioning (Vagrant) makes the `jenkins` users and the agent
units; then labctl installs the lab's SSH key pair and the admin password;
only then is Jenkins itself installed (the `jenkins` provisioner, which Vagrant
runs only when asked). If the download fails, everything before it stays.
A plan needs no check: the set-up registers the agents again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from labctl.errors import GuestError, InvalidField, LabctlError, SpecError
from labctl.events import OnEvent, info
from labctl.guest.jenkins import COMPUTERS, AgentState, api_get, parse_computers
from labctl.lab import vault
from labctl.lab.home import LabHome
from labctl.lab.hostpaths import HostPaths
from labctl.lab.spec import LabSpec, Machine, Provisioner
from labctl.local.deadline import Deadline, tries
from labctl.roles.base import Chosen, RoleFamily, Where, not_a
from labctl.session.group import LabSession
from labctl.transport.interface import Transport
from labctl.vagrant.driver import VagrantDriver

CONTROLLER = "jenkins-controller"
AGENT = "jenkins-agent"
ADMIN = "admin"
ADMIN_SECRET = "jenkins-admin-password"
KEY_SECRET = "jenkins-controller-key"
HOME = "/var/lib/jenkins"
STATE = f"{HOME}/.labctl"
AGENT_SECRET = "/etc/jenkins-agent/secret"
INSTALLED_WAR = "/usr/share/java/jenkins.war"
ONLINE_TIMEOUT = 180.0


@dataclass(frozen=True)
class AgentOptions:
    """controller: the jenkins-controller machine this agent serves (default: the lab's one)."""

    controller: str | None = None


@dataclass(frozen=True)
class LabOptions:
    """jdk: the Java runtime (17 or 21); war: a jenkins.war to install from
    (a path relative to the lab file), for labs without Jenkins' apt repository."""

    jdk: Literal[17, 21] = 17
    war: str | None = None


KEY = "jenkins"


# ---------------------------------------------------------------- the lab's shape (pure)


def controller(spec: LabSpec) -> Machine:
    """The lab's Jenkins controller; SpecError for a lab without one."""
    found = spec.with_role(CONTROLLER)
    if not found:
        raise SpecError(
            f"lab {spec.name!r} has no machine with the role jenkins-controller",
            hint="labctl up jenkins, or give a machine of a lab file that role",
        )
    return found[0]


def agents(spec: LabSpec) -> list[str]:
    return [m.name for m in spec.with_role(AGENT)]


def check_war(path: str | None) -> str | None:
    """--jenkins-war: an existing file, as an absolute path."""
    if path is None:
        return None
    war = Path(path).expanduser().resolve()
    if not war.is_file():
        raise SpecError(f"jenkins war {path}: no such file")
    return str(war)


# ---------------------------------------------------------------- the family


class Jenkins(RoleFamily):
    """Its options, checks and provisioners; its set-up runs the helpers below."""

    roles: ClassVar[dict[str, type | None]] = {CONTROLLER: None, AGENT: AgentOptions}
    key = KEY
    lab_options = LabOptions

    def complete_lab_options(self, given: dict[str, Any], reach: HostPaths) -> dict[str, Any]:
        """The war file, relative to the lab file, made absolute: a regular file
        inside the lab file's folder, or one the user allowed."""
        war = given.get("war")
        if not war:
            return given
        try:
            path = reach.file(war)
        except SpecError as exc:
            raise InvalidField((KEY, "war"), exc.message, exc.hint) from None
        return {**given, "war": str(path)}

    def resolve(self, spec: LabSpec, where: Where) -> Chosen:
        """One controller per lab (its secrets are the lab's); each agent's controller."""
        controllers = [m.name for m in spec.with_role(CONTROLLER)]
        if len(controllers) > 1:
            raise InvalidField(
                where(controllers[1], "roles"),
                f"a lab has one jenkins-controller (found {', '.join(controllers)})",
            )
        chosen: Chosen = {}
        for m in spec.with_role(AGENT):
            if m.has(CONTROLLER):
                raise InvalidField(
                    where(m.name, "roles"),
                    "a machine is a jenkins-controller or a jenkins-agent, not both",
                )
            named = m.option(AGENT, "controller")
            if named is None and not controllers:
                raise InvalidField(
                    where(m.name, "roles", AGENT),
                    "the lab has no jenkins-controller for this agent",
                )
            if named is not None and named not in controllers:
                said = not_a(spec, named, "a jenkins-controller")
                raise InvalidField(where(m.name, "roles", AGENT, "controller"), said)
            chosen[m.name] = {AGENT: {"controller": named or controllers[0]}}
        return chosen

    def provisioners(self, spec: LabSpec, m: Machine) -> list[Provisioner]:
        jdk = Provisioner("jdk", "jdk.sh", {"JDK_VERSION": str(spec.family(KEY).get("jdk", 17))})
        # agents reach their controller by its hostname on the private network
        if m.has(CONTROLLER):
            agents = " ".join(
                a.name for a in spec.with_role(AGENT) if a.option(AGENT, "controller") == m.name
            )
            return [
                jdk,
                Provisioner("jenkins-user", "jenkins-user.sh"),
                # labctl runs this one itself, once the lab's SSH keys are in place
                Provisioner(
                    "jenkins",
                    "jenkins-server.sh",
                    {
                        "JENKINS_SOURCE": "war" if spec.family(KEY).get("war") else "apt",
                        "JENKINS_URL": f"http://{m.hostname}:8080/",
                        "JENKINS_AGENTS": agents,
                    },
                    run="never",
                ),
            ]
        if m.has(AGENT):
            boss = spec.machine(m.option(AGENT, "controller") or "")
            return [
                jdk,
                Provisioner(
                    "jenkins-agent",
                    "jenkins-agent.sh",
                    {"JENKINS_URL": f"http://{boss.hostname}:8080/", "AGENT_NAME": m.name},
                ),
            ]
        return []

    def setup(
        self, home: LabHome, spec: LabSpec, on_event: OnEvent, deadline: Deadline
    ) -> list[str]:
        """After `vagrant up` of a jenkins lab: keys, Jenkins, agents online."""
        paths = home.paths(spec.name)
        boss = controller(spec).name
        private, public = vault.ssh_keypair(paths, KEY_SECRET)
        password = vault.password(paths, ADMIN_SECRET)
        with LabSession(home, spec.name, hold=False, deadline=deadline) as session:  # up holds it
            said = "installing the lab's SSH key for jenkins on the controller and its agents"
            on_event(info(boss, said))
            install_keys(session, spec, private, public)
            server = session.transport(boss)
            server.put(password.encode(), f"{STATE}/admin-password", mode=0o600, owner="jenkins")
            if spec.family(KEY).get("war"):
                _upload_war(server, boss, Path(spec.family(KEY)["war"]), on_event)
        try:
            VagrantDriver(paths.root, on_event=on_event, deadline=deadline).provision(
                [boss], only=["jenkins"]
            )
        except LabctlError as exc:
            exc.hint = (
                exc.hint
                or f"the machines stay up for a look (labctl ssh {spec.name} {boss}); labctl destroy {spec.name} removes them"
            )
            raise
        with LabSession(home, spec.name, hold=False, deadline=deadline) as session:
            deliver_agent_secrets(session, spec)
            wait_online(session, spec, password, deadline.cap("ssh", ONLINE_TIMEOUT))
        return notes(home, spec)


# ---------------------------------------------------------------- set-up


def install_keys(session: LabSession, spec: LabSpec, private: bytes, public: str) -> None:
    """The controller's key for its jenkins user; trusted by every agent's
    jenkins user (from the controller's address only); the agents' host keys
    known to the controller, so its first SSH needs no prompt."""
    server = session.transport(controller(spec).name)
    ssh_dir = f"{HOME}/.ssh"
    server.put(private, f"{ssh_dir}/id_ed25519", mode=0o600, owner="jenkins")
    server.put((public + "\n").encode(), f"{ssh_dir}/id_ed25519.pub", mode=0o644, owner="jenkins")
    known = []
    entry = f'from="{controller(spec).ip}" {public}\n'.encode()
    for name in agents(spec):
        agent = session.transport(name)
        agent.put(entry, f"{ssh_dir}/authorized_keys", mode=0o600, owner="jenkins")
        host_key = agent.run(
            ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"], check=True
        ).stdout.split()
        machine = spec.machine(name)
        known.append(f"{machine.hostname},{machine.ip} {host_key[0]} {host_key[1]}")
    server.put(
        ("\n".join(known) + "\n").encode(), f"{ssh_dir}/known_hosts", mode=0o644, owner="jenkins"
    )


def _upload_war(server: Transport, name: str, war: Path, on_event: OnEvent) -> None:
    """Copy --jenkins-war in, unless the controller runs that very file already."""
    if not war.is_file():
        raise SpecError(
            f"--jenkins-war {war}: no such file any more",
            hint="give the lab a war file again (jenkins: {war: FILE} in its lab file)",
        )
    digest = hashlib.sha256()
    with war.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    installed = server.run(["sha256sum", INSTALLED_WAR]).stdout.split()
    if installed and installed[0] == digest.hexdigest():
        return
    on_event(info(name, f"copying {war}"))
    server.run(["mkdir", "-p", "/var/tmp/labctl"], check=True)
    server.put(war, "/var/tmp/labctl/jenkins.war", mode=0o644)


def deliver_agent_secrets(session: LabSession, spec: LabSpec) -> None:
    server = session.transport(controller(spec).name)
    for name in agents(spec):
        secret = server.run(
            ["cat", f"{STATE}/agent-secrets/{name}"], sudo=True, check=True
        ).stdout.strip()
        agent = session.transport(name)
        held = agent.run(["cat", AGENT_SECRET], sudo=True)
        active = agent.run(["systemctl", "is-active", "--quiet", "jenkins-agent.service"]).ok
        if held.ok and held.stdout.strip() == secret and active:
            continue  # a running agent with its secret: a restart would only cut its builds
        agent.put(secret.encode(), AGENT_SECRET, mode=0o600, owner="jenkins")
        agent.run(["systemctl", "restart", "jenkins-agent.service"], sudo=True, check=True)


def notes(home: LabHome, spec: LabSpec) -> list[str]:
    """Where Jenkins is and how to log in (never the password itself)."""
    ports = VagrantDriver(home.paths(spec.name).root).ports(controller(spec).name)
    host_port = next((host for guest, host in ports if guest == 8080), None)
    lines = [f"Jenkins: http://{controller(spec).ip}:8080/ (private network)"]
    if host_port:
        lines.append(f"Jenkins on this host: http://127.0.0.1:{host_port}/")
    lines.append(f"user {ADMIN}; password: labctl jenkins password --lab {spec.name}")
    return lines


# ---------------------------------------------------------------- REST API


@dataclass(frozen=True)
class JenkinsStatus:
    installed: bool
    running: bool
    healthy: bool
    detail: str
    url: str = ""
    agents: list[AgentState] = field(default_factory=list)


def read_status(session: LabSession, spec: LabSpec, password: str) -> JenkinsStatus:
    """The controller's health and each agent, from Jenkins' REST API."""
    server = session.transport(controller(spec).name)
    installed = server.run(
        ["sh", "-c", f"test -e {INSTALLED_WAR} || dpkg -s jenkins >/dev/null 2>&1"]
    ).ok
    url = f"http://{controller(spec).ip}:8080/"
    if not installed:
        return JenkinsStatus(False, False, False, "Jenkins is not installed on the controller", url)
    code, _ = api_get(server, ADMIN, password, "/api/json?tree=mode")
    if code != 200:
        detail = (
            f"Jenkins answers HTTP {code} (still starting, or the admin password changed)"
            if code
            else "Jenkins is installed but not running (nothing listens on 8080)"
        )
        return JenkinsStatus(True, code != 0, False, detail, url)
    _, computers = api_get(server, ADMIN, password, COMPUTERS)
    agents = parse_computers(computers or {})
    return JenkinsStatus(True, True, True, "Jenkins is up", url, agents)


def wait_online(
    session: LabSession, spec: LabSpec, password: str, timeout: float = ONLINE_TIMEOUT
) -> None:
    """Until every agent is online (GuestError naming those that are not)."""
    for last in tries(timeout, every=2):
        st = read_status(session, spec, password)
        offline = [a.name for a in st.agents if not a.online]
        missing = set(agents(spec)) - {a.name for a in st.agents}
        if st.healthy and not offline and not missing:
            return
        if last:
            raise GuestError(
                f"agents not online after {timeout:.0f} s: {', '.join(sorted(set(offline) | missing)) or st.detail}",
                hint=f"journalctl -u jenkins-agent on the agent (labctl ssh {spec.name} AGENT)",
            )

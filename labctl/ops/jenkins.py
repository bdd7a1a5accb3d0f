"""`labctl up jenkins`: the controller and its agents wired together, and
`labctl jenkins ...` to look at them.

Order matters: provisioning (Vagrant) makes the `jenkins` users and the agent
units; then labctl installs the lab's SSH key pair and the admin password;
only then is Jenkins itself installed (the `jenkins` provisioner, which Vagrant
runs only when asked). If the download fails, everything before it stays.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl import vault
from labctl.errors import GuestError, LabctlError, SpecError
from labctl.home import LabHome
from labctl.ops.session import LabSession
from labctl.spec import LabSpec
from labctl.transport import SshTransport
from labctl.vagrant import Event, VagrantDriver

SERVER = "server"
ADMIN = "admin"
ADMIN_SECRET = "jenkins-admin-password"
KEY_SECRET = "jenkins-controller-key"
HOME = "/var/lib/jenkins"
STATE = f"{HOME}/.labctl"
AGENT_SECRET = "/etc/jenkins-agent/secret"
INSTALLED_WAR = "/usr/share/java/jenkins.war"
ONLINE_TIMEOUT = 180.0


def _require_jenkins(spec: LabSpec) -> None:
    if spec.topology != "jenkins":
        raise SpecError(f"lab {spec.name!r} is a {spec.topology} lab, not jenkins")


def _agents(spec: LabSpec) -> list[str]:
    return [m.name for m in spec.machines if m.role == "jenkins-agent"]


def _server_ip(spec: LabSpec) -> str:
    return spec.machine(SERVER).ip


def check_war(path: str | None) -> str | None:
    """--jenkins-war: an existing file, as an absolute path."""
    if path is None:
        return None
    war = Path(path).expanduser().resolve()
    if not war.is_file():
        raise SpecError(f"--jenkins-war {path}: no such file")
    return str(war)


# ---------------------------------------------------------------- set-up


def install_keys(session: LabSession, spec: LabSpec, private: bytes, public: str) -> None:
    """The controller's key for its jenkins user; trusted by every agent's
    jenkins user (from the controller's address only); the agents' host keys
    known to the controller, so its first SSH needs no prompt."""
    agents = _agents(spec)
    server = session.transport(SERVER)
    ssh_dir = f"{HOME}/.ssh"
    server.put(private, f"{ssh_dir}/id_ed25519", mode=0o600, owner="jenkins")
    server.put((public + "\n").encode(), f"{ssh_dir}/id_ed25519.pub", mode=0o644, owner="jenkins")
    known = []
    entry = f'from="{_server_ip(spec)}" {public}\n'.encode()
    for name in agents:
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


def _upload_war(server: SshTransport, war: Path, say: Callable[[str, str], None]) -> None:
    """Copy --jenkins-war in, unless the controller runs that very file already."""
    if not war.is_file():
        raise SpecError(
            f"--jenkins-war {war}: no such file any more",
            hint="give the lab a war file again: labctl up LAB --jenkins-war FILE",
        )
    digest = hashlib.sha256()
    with war.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    installed = server.run(["sha256sum", INSTALLED_WAR]).stdout.split()
    if installed and installed[0] == digest.hexdigest():
        return
    say(SERVER, f"copying {war}")
    server.run(["mkdir", "-p", "/var/tmp/labctl"], check=True)
    server.put(war, "/var/tmp/labctl/jenkins.war", mode=0o644)


def _deliver_agent_secrets(session: LabSession, spec: LabSpec) -> None:
    server = session.transport(SERVER)
    for name in _agents(spec):
        secret = server.run(
            ["cat", f"{STATE}/agent-secrets/{name}"], sudo=True, check=True
        ).stdout.strip()
        agent = session.transport(name)
        agent.put(secret.encode(), AGENT_SECRET, mode=0o600, owner="jenkins")
        agent.run(["systemctl", "restart", "jenkins-agent.service"], sudo=True, check=True)


def setup(
    home: LabHome, spec: LabSpec, on_event: Callable[[Event], None] | None = None
) -> list[str]:
    """After `vagrant up` of a jenkins lab: keys, Jenkins, agents online."""
    say = (lambda m, t: on_event(Event(m, "info", t))) if on_event else (lambda m, t: None)
    paths = home.paths(spec.name)
    private, public = vault.ssh_keypair(paths, KEY_SECRET)
    password = vault.password(paths, ADMIN_SECRET)
    with LabSession(home, spec.name) as session:
        say(SERVER, "installing the lab's SSH key for jenkins on the controller and its agents")
        install_keys(session, spec, private, public)
        server = session.transport(SERVER)
        server.put(password.encode(), f"{STATE}/admin-password", mode=0o600, owner="jenkins")
        if spec.settings.jenkins_war:
            _upload_war(server, Path(spec.settings.jenkins_war), say)
    try:
        VagrantDriver(paths.root, on_event=on_event).provision([SERVER], only=["jenkins"])
    except LabctlError as exc:
        exc.hint = (
            exc.hint
            or f"the machines stay up for a look (labctl ssh {spec.name} server); labctl destroy {spec.name} removes them"
        )
        raise
    with LabSession(home, spec.name) as session:
        _deliver_agent_secrets(session, spec)
        wait_online(session, spec, password)
    return notes(home, spec)


def notes(home: LabHome, spec: LabSpec) -> list[str]:
    """Where Jenkins is and how to log in (never the password itself)."""
    ports = VagrantDriver(home.paths(spec.name).root).ports(SERVER)
    host_port = next((host for guest, host in ports if guest == 8080), None)
    lines = [f"Jenkins: http://{_server_ip(spec)}:8080/ (private network)"]
    if host_port:
        lines.append(f"Jenkins on this host: http://127.0.0.1:{host_port}/")
    lines.append(f"user {ADMIN}; password: labctl jenkins password --lab {spec.name}")
    return lines


# ---------------------------------------------------------------- REST API


def _api(server: SshTransport, password: str, path: str) -> tuple[int, dict[str, Any] | None]:
    """GET the controller's REST API from inside the controller (works for
    every provider); the credentials travel on curl's stdin, not its arguments."""
    config = f'user = "{ADMIN}:{password}"\n'.encode()
    result = server.run(
        [
            "curl",
            "-sS",
            "-K",
            "-",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            f"http://localhost:8080{path}",
        ],
        stdin=config,
        timeout=30,
    )
    if result.exit_code == 7:
        return 0, None  # connection refused: nothing listens on 8080
    body, _, code = result.stdout.rpartition("\n")
    try:
        return int(code or 0), json.loads(body) if body.strip().startswith("{") else None
    except ValueError:
        return int(code or 0) if code.isdigit() else 0, None


@dataclass(frozen=True)
class AgentState:
    name: str
    online: bool
    reason: str = ""


@dataclass(frozen=True)
class JenkinsStatus:
    installed: bool
    running: bool
    healthy: bool
    detail: str
    url: str = ""
    agents: list[AgentState] = field(default_factory=list)


def parse_computers(data: dict[str, Any]) -> list[AgentState]:
    """/computer/api/json -> the agents (the built-in node left out)."""
    found = []
    for c in data.get("computer", []):
        name = str(c.get("displayName", ""))
        if c.get("_class", "").endswith("MasterComputer") or name in ("master", "Built-In Node"):
            continue
        found.append(
            AgentState(name, not c.get("offline", True), str(c.get("offlineCauseReason") or ""))
        )
    return found


def _status(session: LabSession, spec: LabSpec, password: str) -> JenkinsStatus:
    server = session.transport(SERVER)
    installed = server.run(
        ["sh", "-c", f"test -e {INSTALLED_WAR} || dpkg -s jenkins >/dev/null 2>&1"]
    ).ok
    url = f"http://{_server_ip(spec)}:8080/"
    if not installed:
        return JenkinsStatus(False, False, False, "Jenkins is not installed on the controller", url)
    code, _ = _api(server, password, "/api/json?tree=mode")
    if code == 0:
        return JenkinsStatus(
            True,
            False,
            False,
            "Jenkins is installed but not running (nothing listens on 8080)",
            url,
        )
    if code != 200:
        return JenkinsStatus(
            True,
            True,
            False,
            f"Jenkins answers HTTP {code} (still starting, or the admin password changed)",
            url,
        )
    _, computers = _api(
        server, password, "/computer/api/json?tree=computer[displayName,offline,offlineCauseReason]"
    )
    agents = parse_computers(computers or {})
    return JenkinsStatus(True, True, True, "Jenkins is up", url, agents)


def status(home: LabHome, lab: str | None) -> JenkinsStatus:
    """The controller's health and each agent, from Jenkins' REST API."""
    with LabSession(home, lab) as session:
        spec = session.spec
        _require_jenkins(spec)
        password = vault.password(session.paths, ADMIN_SECRET)
        return _status(session, spec, password)


def wait_online(
    session: LabSession, spec: LabSpec, password: str, timeout: float = ONLINE_TIMEOUT
) -> None:
    """Until every agent is online (GuestError naming those that are not)."""
    deadline = time.monotonic() + timeout
    while True:
        st = _status(session, spec, password)
        offline = [a.name for a in st.agents if not a.online]
        missing = set(_agents(spec)) - {a.name for a in st.agents}
        if st.healthy and not offline and not missing:
            return
        if time.monotonic() > deadline:
            raise GuestError(
                f"agents not online after {timeout:.0f} s: {', '.join(sorted(set(offline) | missing)) or st.detail}",
                hint=f"journalctl -u jenkins-agent on the agent (labctl ssh {spec.name} agent1)",
            )
        time.sleep(2)


def admin_password(home: LabHome, lab: str | None) -> str:
    """The admin password (the one command that shows it)."""
    name = home.resolve(lab)
    _require_jenkins(home.load(name))
    path = vault.secret_path(home.paths(name), ADMIN_SECRET)
    if not path.exists():
        raise SpecError(f"lab {name!r} has no Jenkins admin password yet", hint=f"labctl up {name}")
    return path.read_text().strip()

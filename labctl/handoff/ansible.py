"""An Ansible inventory of a lab: groups by lab and by role, and per host
how to reach it (with labctl's pinned host keys) and what it is.

Three spellings of the same inventory: Ansible's INI (`ansible`), and the
YAML inventory plugin's structure as YAML or JSON (that plugin reads .json
files too)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from labctl.handoff.sshconfig import common_args
from labctl.handoff.view import LabView, MachineView, group_name

FORMATS = ("ansible", "yaml", "json")
# declared roles -> group (mysql's groups follow the live roles instead)
ROLE_GROUPS = {
    "containerd": "containerd",
    "jenkins-controller": "jenkins_controller",
    "jenkins-agent": "jenkins_agent",
}
MYSQL_GROUPS = {"primary": "mysql_primary", "replica": "mysql_replica", "dual": "mysql_replica"}


def groups(view: LabView) -> dict[str, list[str]]:
    """group -> its hosts, in the lab's order; empty groups left out."""
    found: dict[str, list[str]] = {group_name(f"lab_{view.lab}"): []}
    for m in view.machines:
        found[group_name(f"lab_{view.lab}")].append(m.name)
        names = [ROLE_GROUPS[r] for r in m.roles if r in ROLE_GROUPS]
        if any(r.startswith("mysql-") for r in m.roles):
            names.append("mysql")
            if m.mysql_role in MYSQL_GROUPS:
                names.append(MYSQL_GROUPS[m.mysql_role])
        for name in names:
            found.setdefault(name, []).append(m.name)
    return found


def hostvars(view: LabView, m: MachineView) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if m.ssh is not None:
        found |= {
            "ansible_host": m.ssh.host,
            "ansible_port": m.ssh.port,
            "ansible_user": m.ssh.user,
            "ansible_ssh_private_key_file": m.ssh.key_file,
            "ansible_ssh_common_args": shlex.join(common_args(view, m.name)),
            "ansible_python_interpreter": "/usr/bin/python3",
        }
    found |= {
        "labctl_lab": view.lab,
        "labctl_ip": m.ip,
        "labctl_hostname": m.hostname,
        "labctl_roles": list(m.roles),
        "labctl_state": m.state,
    }
    if m.mysql_role:
        found["mysql_role"] = m.mysql_role
    return found


def structure(view: LabView) -> dict[str, Any]:
    """The YAML inventory plugin's structure: hosts with their vars under
    `all`, groups as children naming their hosts."""
    return {
        "all": {
            "hosts": {m.name: hostvars(view, m) for m in view.machines},
            "children": {
                group: {"hosts": {name: None for name in hosts}}
                for group, hosts in groups(view).items()
            },
        }
    }


def ini(view: LabView) -> str:
    lines = [f"# labctl lab {view.lab}{'' if view.live else ' (declared roles)'}"]
    for group, hosts in groups(view).items():
        lines.append(f"\n[{group}]")
        for name in hosts:
            if group == group_name(f"lab_{view.lab}"):  # the vars, once per host
                pairs = hostvars(view, next(m for m in view.machines if m.name == name))
                lines.append(" ".join([name, *(f"{k}={_ini_value(v)}" for k, v in pairs.items())]))
            else:
                lines.append(name)
    return "\n".join(lines) + "\n"


def _ini_value(value: Any) -> str:
    # Ansible splits an INI host line the shell's way, then reads each value
    # as a Python literal where it can (a list, a number) and as text otherwise.
    text = json.dumps(value) if isinstance(value, list) else str(value)
    return shlex.quote(text)


def render(view: LabView, fmt: str) -> str:
    if fmt == "ansible":
        return ini(view)
    if fmt == "json":
        return json.dumps(structure(view), indent=2) + "\n"
    if fmt == "yaml":
        import yaml

        return str(yaml.safe_dump(structure(view), sort_keys=False, default_flow_style=False))
    raise ValueError(fmt)

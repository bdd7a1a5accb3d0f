"""OpenSSH's view of a lab: Host blocks for `Include` or `ssh -F`, and the
known_hosts file they point at, with the keys labctl pinned.

Host keys are looked up by alias (HostKeyAlias labctl-LAB-VM), not by
address: labs reuse addresses (127.0.0.1:2222, a freed container IP), and a
lab's machines are told apart by name, as labctl's own pinning does."""

from __future__ import annotations

from labctl.handoff.view import LabView


def _value(text: str) -> str:
    """One ssh_config argument: quoted when it has spaces (ssh_config has no
    escape for a double quote inside one, so such a value is refused)."""
    if '"' in text or "\n" in text:
        raise ValueError(f"cannot write {text!r} into an ssh_config")
    return f'"{text}"' if any(c.isspace() for c in text) or not text else text


def ssh_config(view: LabView) -> str:
    lines = [
        f"# labctl lab {view.lab}: Include this file in ~/.ssh/config, or ssh -F it",
        "",
    ]
    for m in view.machines:
        if m.ssh is None:
            lines += [f"# {m.name}: not running ({m.state})", ""]
            continue
        lines += [
            f"Host {view.lab}-{m.name} {m.name}",
            f"  HostName {_value(m.ssh.host)}",
            f"  Port {m.ssh.port}",
            f"  User {_value(m.ssh.user)}",
            f"  IdentityFile {_value(m.ssh.key_file)}",
            "  IdentitiesOnly yes",
            f"  HostKeyAlias {view.alias(m.name)}",
            f"  UserKnownHostsFile {_value(view.known_hosts)}",
            "  StrictHostKeyChecking yes",
            "",
        ]
    return "\n".join(lines)


def known_hosts(view: LabView) -> str:
    """One line per machine whose key labctl has pinned."""
    return "".join(
        f"{view.alias(m.name)} {m.ssh.key_type} {m.ssh.key}\n"
        for m in view.machines
        if m.ssh is not None and m.ssh.key
    )


def common_args(view: LabView, machine: str) -> list[str]:
    """The same host-key policy as ssh options (Ansible's ssh_common_args)."""
    return [
        "-o",
        f"HostKeyAlias={view.alias(machine)}",
        "-o",
        f"UserKnownHostsFile={view.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
    ]

"""What the handoff formats are made from: a lab's machines and the live
links between them, as plain data (captured as JSON for the golden tests)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SshView:
    """How OpenSSH reaches one machine, and the host key labctl pinned for it."""

    host: str
    port: int
    user: str
    key_file: str
    key_type: str = ""
    key: str = ""


@dataclass(frozen=True)
class MachineView:
    name: str
    hostname: str
    ip: str  # on the lab's private network
    roles: tuple[str, ...]
    state: str  # Vagrant's word: running, stopped, not_created...
    ssh: SshView | None = None  # None: not running
    mysql_role: str = ""  # live (primary, replica, dual, standalone), or the declared one
    tasks: int | None = None  # containerd tasks, when asked


@dataclass(frozen=True)
class Link:
    """A live relation between two machines."""

    kind: str  # "replication" (source -> replica) or "jenkins" (controller -> agent)
    source: str
    target: str
    label: str  # "lag 0 s", "broken", "online", "offline"
    ok: bool


@dataclass(frozen=True)
class LabView:
    lab: str
    provider: str
    subnet: str  # the /24's first three octets
    known_hosts: str  # the file holding the pinned keys, by alias
    machines: list[MachineView]
    links: list[Link] = field(default_factory=list)
    live: bool = True  # False: the lab file's view (--declared), nothing asked

    def alias(self, machine: str) -> str:
        """The name OpenSSH keys the host key by (HostKeyAlias), one per lab and machine."""
        return f"labctl-{self.lab}-{machine}"


def group_name(text: str) -> str:
    """An Ansible group name: letters, digits and underscores only."""
    return re.sub(r"[^A-Za-z0-9_]", "_", text)

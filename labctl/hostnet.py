"""The IPv4 networks this host is already on, so that a new lab never takes
one: other labs (of other LABCTL_HOMEs too), docker and libvirt networks,
VPNs. Read from the kernel's routing table, which every one of them adds to."""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

ROUTES = Path("/proc/net/route")


@dataclass(frozen=True)
class HostNetwork:
    network: ipaddress.IPv4Network
    interface: str


def parse_routes(text: str) -> list[HostNetwork]:
    """/proc/net/route -> the networks routed on this host (the default route left out)."""
    found = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 8:
            continue
        try:
            dest = socket.inet_ntoa(struct.pack("<I", int(cols[1], 16)))
            mask = socket.inet_ntoa(struct.pack("<I", int(cols[7], 16)))
            net = ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)
        except (ValueError, struct.error):
            continue
        if net.prefixlen > 0:
            found.append(HostNetwork(net, cols[0]))
    return found


def host_networks() -> list[HostNetwork]:
    """The networks routed here now (none where the table cannot be read: not Linux)."""
    try:
        return parse_routes(ROUTES.read_text())
    except OSError:
        return []


def clash(subnet: str, networks: list[HostNetwork]) -> HostNetwork | None:
    """The host network a lab's /24 (`192.168.56`) would overlap, if any."""
    mine = ipaddress.IPv4Network(f"{subnet}.0/24")
    return next((n for n in networks if n.network.overlaps(mine)), None)

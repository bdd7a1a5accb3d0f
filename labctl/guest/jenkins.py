"""Jenkins' REST API, read from inside the controller: the request (curl with
the credentials on its stdin) and the parsers of its answers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from labctl.transport.interface import Transport

# curl reading its config (the credentials) from stdin, the HTTP status on a
# last line of its own after the body
CURL = ["curl", "-sS", "-K", "-", "-o", "-", "-w", "\n%{http_code}"]
# what parse_computers reads, and only that
COMPUTERS = "/computer/api/json?tree=computer[displayName,offline,offlineCauseReason]"


def api_get(
    server: Transport, user: str, password: str, path: str
) -> tuple[int, dict[str, Any] | None]:
    """GET the controller's REST API from inside the controller (works for
    every provider); the credentials travel on curl's stdin, not its arguments."""
    config = f'user = "{user}:{password}"\n'.encode()
    result = server.run([*CURL, f"http://localhost:8080{path}"], stdin=config, timeout=30)
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

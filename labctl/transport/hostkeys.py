"""SSH host keys pinned per lab and per machine (trust on first use, per
incarnation of the machine), failing closed."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from labctl.errors import ConnectError, LabBusy, LabctlError
from labctl.local.fsutil import atomic_write, exclusive

# A pin is a few milliseconds of work; waiting longer for another's means it hangs.
PIN_WAIT = 10.0


class HostKeys:
    """Host keys pinned per lab and per machine, in the lab's own file.

    Labs reuse addresses (127.0.0.1:2222, a freed container IP), so a key is
    pinned to a machine (and the Vagrant id of its current incarnation),
    never to host:port. A changed key is accepted only when the machine was
    recreated (its id changed), and pinned only once the machine has taken
    its own private key: a stale address must not pin another machine's key.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict[str, str]]:
        """The pins; none yet when the file is missing. A file that cannot be
        read is an error, never a fresh start: that would pin any key again."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise self._unreadable(exc) from None
        try:
            pins = json.loads(text)
            if not isinstance(pins, dict) or not all(
                isinstance(p, dict) and {"type", "key"} <= p.keys() for p in pins.values()
            ):
                raise ValueError("not a map of machine -> pinned key")
            return pins
        except ValueError as exc:
            raise self._unreadable(exc) from None

    def _unreadable(self, exc: Exception) -> LabctlError:
        return LabctlError(
            f"cannot read the pinned host keys in {self.path}: {exc}",
            hint="if you trust the machines as they are now, delete the file: "
            "each key is pinned again at the next connection",
        )

    def check(self, machine: str, machine_id: str, key_type: str, key_b64: str) -> bool:
        """ConnectError (pinned) for a changed key of the same incarnation;
        else whether the key is still to be pinned (with `pin`)."""
        with self._lock:
            pin = self._load().get(machine)
        wanted = {"id": machine_id, "type": key_type, "key": key_b64}
        if pin is None:
            return True
        if pin == wanted:
            return False
        same_key = (pin["type"], pin["key"]) == (key_type, key_b64)
        # no id (Vagrant's record of the machine is missing): not a recreation
        if not same_key and (pin.get("id") == machine_id or not machine_id):
            raise ConnectError(
                f"host key of machine {machine!r} changed ({pin['type']} -> {key_type}) "
                "though the machine was not recreated: refusing to connect",
                hint=f"if it was rebuilt on purpose, delete its entry in {self.path}; "
                "else look at what now answers at its address",
                pinned=True,
            )
        return True

    def pinned(self) -> dict[str, tuple[str, str]]:
        """machine -> (key type, key) for every machine pinned so far."""
        with self._lock:
            return {m: (p["type"], p["key"]) for m, p in self._load().items()}

    def pin(self, machine: str, machine_id: str, key_type: str, key_b64: str) -> None:
        # readers started together pin their first machines at once: one at a
        # time, or each would write back the file it read and drop the others' pins
        lock = self.path.with_name(self.path.name + ".lock")
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._lock, exclusive(lock, PIN_WAIT, self._busy):
            pins = self._load()
            pins[machine] = {"id": machine_id, "type": key_type, "key": key_b64}
            self._save(pins)

    def _busy(self) -> LabBusy:
        return LabBusy(
            f"another labctl has been pinning a host key in {self.path} for {PIN_WAIT:g} s"
        )

    def _save(self, pins: dict[str, dict[str, str]]) -> None:
        atomic_write(self.path, json.dumps(pins, indent=2, sort_keys=True))

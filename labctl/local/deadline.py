"""Time limits: the default for each kind of call, and one deadline shared by
every step of an operation, so that `--timeout` bounds the whole of `up`
(Vagrant, then the roles' set-up over SSH), not each call anew."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from labctl.errors import TimedOut

# Seconds; each overridable by its environment variable. Generous: a limit is
# there to end a hang, not to race a slow machine.
DEFAULTS = {
    "quick": ("LABCTL_QUICK_TIMEOUT", 180.0),  # a question to Vagrant: status, ssh-config
    "teardown": ("LABCTL_TEARDOWN_TIMEOUT", 900.0),  # destroy, halt, suspend, resume
    "build": ("LABCTL_BUILD_TIMEOUT", 3600.0),  # up, reload, provision (apt inside)
    "ssh": ("LABCTL_SSH_TIMEOUT", 600.0),  # one command in a guest
}


def default(kind: str) -> float:
    """The time limit of one call of `kind`, from its variable or the default."""
    variable, fallback = DEFAULTS[kind]
    try:
        value = float(os.environ.get(variable) or fallback)
    except ValueError:
        return fallback
    return value if value > 0 else fallback


@dataclass(frozen=True)
class Deadline:
    """The end of an operation given `--timeout`; `at` None: no overall limit."""

    at: float | None = None
    limit: float | None = None

    @classmethod
    def after(cls, seconds: float | None) -> Deadline:
        if not seconds:
            return cls()
        return cls(time.monotonic() + seconds, seconds)

    def remaining(self) -> float | None:
        return None if self.at is None else self.at - time.monotonic()

    def cap(self, kind: str, seconds: float | None = None) -> float:
        """The time limit of the next call: `seconds` (else the default for
        its kind), never past the deadline; TimedOut once it has passed."""
        limit = seconds if seconds is not None else default(kind)
        left = self.remaining()
        if left is None:
            return limit
        if left <= 0:
            raise TimedOut(f"the operation took longer than its --timeout of {self.limit:g} s")
        return min(limit, left)


def tries(timeout: float, every: float) -> Iterator[bool]:
    """The rhythm of every wait for a guest to get somewhere: one try at once,
    then one every `every` seconds until `timeout` has passed. Each yields
    whether it is the last, after which the caller gives up with its reason."""
    end = time.monotonic() + timeout
    while True:
        last = time.monotonic() >= end
        yield last
        if last:
            return
        time.sleep(min(every, max(0.0, end - time.monotonic())))

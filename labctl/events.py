"""Progress as it happens: an Event per line worth showing, and OnEvent, the one
callback that takes them.

Whatever reports progress about a lab or one of its machines hands Events to an
OnEvent: Vagrant's output (vagrant/driver.py), what a provider readies before
`up` (a box built), a role's set-up after it, a MySQL primary moved. The ui
draws them (ui.Progress). The bottom layer, beside errors: it imports nothing
of labctl, so reporting progress needs no knowledge of who makes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """One line of progress: the machine it concerns ('' for none: the lab's own)."""

    machine: str
    kind: str  # ui level: info, output, detail, warn, error, success
    text: str


OnEvent = Callable[[Event], None]


def info(machine: str, text: str) -> Event:
    """The common Event: `text` said of `machine` ('' for the lab)."""
    return Event(machine, "info", text)


def ignore(event: Event) -> None:
    """The OnEvent of a caller that shows no progress."""


def each_line(on_event: OnEvent, machine: str = "") -> Callable[[str], None]:
    """A program's raw output (labctl.local.process streams it line by line),
    each line an info Event of `machine`."""
    return lambda line: on_event(info(machine, line))

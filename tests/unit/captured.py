"""Captured outputs of real tools (tests/data/*/): one run of one command per
file, with a header naming the command, the tool's version and where it ran."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.local.process import Completed

from ..conftest import DATA


@dataclass(frozen=True)
class Capture:
    command: str
    version: str
    captured: str
    exit: int
    stdout: str
    stderr: str
    parser: str = ""  # module:function that labctl reads this output with

    @property
    def by_hand(self) -> bool:
        return self.version.startswith("written by hand")

    def completed(self) -> Completed:
        return Completed(tuple(self.command.split()), self.exit, self.stdout, self.stderr)


def load(relative: str) -> Capture:
    text = (DATA / relative).read_text()
    head, _, rest = text.partition("--- stdout\n")
    stdout, _, stderr = rest.partition("--- stderr\n")
    fields = dict(
        line[2:].split(": ", 1)
        for line in head.splitlines()
        if line.startswith("# ") and ": " in line
    )
    return Capture(
        command=fields["command"],
        version=fields["version"],
        captured=fields["captured"],
        exit=int(fields["exit"]),
        stdout=stdout.rstrip("\n"),
        stderr=stderr.rstrip("\n"),
        parser=fields.get("parser", ""),
    )


def every() -> list[str]:
    """Every capture under tests/data (a file with the header), relative."""
    return sorted(
        str(p.relative_to(DATA))
        for p in DATA.rglob("*.txt")
        if p.read_text().startswith("# command: ")
    )

"""A fake guest backend for use-case tests: transports that answer from
captured outputs (tests/data) and record every command sent, as data.

Like pyinfra's operations, a use case is then checked by the commands it
would send and by what it does with each answer, failures included, with
no Vagrant, Docker or network."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from labctl.lab.home import LabHome, LabPaths
from labctl.lab.spec import LabSpec, spec_to_record
from labctl.local.deadline import Deadline
from labctl.providers.states import LabStates, LiveState
from labctl.transport.hostkeys import HostKeys
from labctl.transport.interface import CommandFailed, Endpoint, Result, command_line

from ..conftest import DATA

Match = Callable[[list[str], bytes], bool]


@dataclass(frozen=True)
class Reply:
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


def data(relative: str) -> str:
    """What a tool printed on stdout in a capture (tests/unit/captured.py);
    a file without the capture header (a JSON record) as it is."""
    text = (DATA / relative).read_text()
    if not text.startswith("# command: "):
        return text
    from .captured import load

    out = load(relative).stdout
    return out + "\n" if out else ""


def data_err(relative: str) -> str:
    """What a tool printed on stderr in a capture."""
    from .captured import load

    return load(relative).stderr + "\n"


def argv_starts(*words: str) -> Match:
    """Commands whose argv begins with `words`."""
    return lambda argv, stdin: argv[: len(words)] == list(words)


def argv_has(*words: str) -> Match:
    """Commands whose argv holds `words` in this order, side by side."""
    n = len(words)
    return lambda argv, stdin: any(argv[i : i + n] == list(words) for i in range(len(argv)))


def sql_has(text: str) -> Match:
    """mysql client runs whose SQL (on stdin) holds `text`."""
    return lambda argv, stdin: argv[:1] == ["mysql"] and text.encode() in stdin


@dataclass
class Sent:
    """One command as the transport received it."""

    argv: list[str]
    sudo: bool = False
    stdin: bytes = b""
    hold_stdin: bool = False
    timeout: float | None = None

    @property
    def sql(self) -> str:
        return self.stdin.decode()


@dataclass
class FakeTransport:
    """One guest: the first rule matching a command answers it; a command no
    rule matches fails the test (a use case sent something unexpected)."""

    name: str
    rules: list[tuple[Match, Reply | Callable[[list[str], bytes], Reply]]] = field(
        default_factory=list
    )
    sent: list[Sent] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    closed: bool = False
    starts: list[tuple[Match, Callable[[bytes], bytes]]] = field(default_factory=list)
    processes: list[FakeProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.endpoint = Endpoint(self.name, "192.0.2.10", 22, "vagrant", "/dev/null", "id-x")

    def on(self, match: Match, reply: Reply | Callable[[list[str], bytes], Reply]) -> FakeTransport:
        self.rules.append((match, reply))
        return self

    def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        check: bool = False,
        timeout: float | None = None,
        stdin: bytes | IO[bytes] | None = None,
        hold_stdin: bool = False,
    ) -> Result:
        given = stdin if isinstance(stdin, bytes) else (stdin.read() if stdin else b"")
        words = list(argv)
        self.sent.append(Sent(words, sudo, given, hold_stdin, timeout))
        reply = self._answer(words, given)
        result = Result(
            self.name,
            command_line(words, sudo, timeout),
            reply.exit_code,
            reply.stdout,
            reply.stderr,
            timed_out=reply.exit_code == 124,
        )
        if check and not result.ok:
            raise CommandFailed(result)
        return result

    def _answer(self, argv: list[str], stdin: bytes) -> Reply:
        for match, reply in self.rules:
            if match(argv, stdin):
                return reply(argv, stdin) if callable(reply) else reply
        raise AssertionError(f"{self.name}: no answer for {argv} {stdin[:200]!r}")

    def put(
        self,
        data: bytes | Path,
        remote: str,
        mode: int = 0o644,
        sudo: bool = False,
        owner: str | None = None,
    ) -> None:
        content = data.read_bytes() if isinstance(data, Path) else data
        self.sent.append(Sent(["put", remote, f"{mode:o}", owner or ""], sudo, content))
        self.files[remote] = content

    def start(self, argv: Sequence[str], *, sudo: bool = False) -> FakeProcess:
        """A process left running: its output is made by the first `on_start`
        rule matching, from what was written to it so far."""
        words = list(argv)
        self.sent.append(Sent(["start", *words], sudo))
        for match, script in self.starts:
            if match(words, b""):
                proc = FakeProcess(self.name, command_line(words, sudo), script)
                self.processes.append(proc)
                return proc
        raise AssertionError(f"{self.name}: no process for {words}")

    def on_start(self, match: Match, script: Callable[[bytes], bytes]) -> FakeTransport:
        self.starts.append((match, script))
        return self

    def open_channel(self) -> Any:
        raise AssertionError("an interactive terminal is not faked")

    def close(self) -> None:
        self.closed = True

    def commands(self) -> list[list[str]]:
        """The argv of every command sent, in order."""
        return [s.argv for s in self.sent]


class FakeProcess:
    """A command left running: `script(stdin so far)` is its whole stdout so far."""

    def __init__(self, host: str, command: str, script: Callable[[bytes], bytes]) -> None:
        self.host, self.command, self.script = host, command, script
        self.stdin = b""
        self.read_so_far = 0
        self.stdin_closed = self.killed = self.waited = False

    def write(self, data: bytes) -> None:
        self.stdin += data

    def close_stdin(self) -> None:
        self.stdin_closed = True

    def read(self, size: int = 65536) -> bytes:
        out = self.script(self.stdin)[self.read_so_far :][:size]
        self.read_so_far += len(out)
        return out

    def read_until(self, marker: bytes, timeout: float = 60.0) -> bytes:
        out = self.script(self.stdin)[self.read_so_far :]
        assert marker in out, f"{self.host}: {marker!r} never comes in {out!r}"
        end = out.index(marker) + len(marker)
        self.read_so_far += end
        return out[:end]

    def wait(self, timeout: float | None = None) -> Result:
        self.waited = True
        rest = self.script(self.stdin)[self.read_so_far :]
        return Result(self.host, self.command, 0, rest.decode(), "")

    def kill(self) -> None:
        self.killed = True


@dataclass
class FakeBackend:
    """Provider states, endpoints and transports of one lab, all made up."""

    transports: dict[str, FakeTransport]
    down: dict[str, str] = field(default_factory=dict)  # machine -> its state

    def states(self, paths: LabPaths, spec: LabSpec) -> LabStates:
        states = {
            m.name: LiveState(m.name, self.down.get(m.name, "running"), spec.provider)
            for m in spec.machines
        }
        return LabStates(spec.name, states, spec.provider)

    def endpoints(
        self,
        paths: LabPaths,
        refresh: bool,
        running: list[str],
        every: bool,
        deadline: Deadline | None = None,
    ) -> dict[str, Endpoint]:
        return {n: t.endpoint for n, t in self.transports.items() if n not in self.down}

    def connect(
        self, endpoint: Endpoint, host_keys: HostKeys, connect_timeout: float, deadline: Deadline
    ) -> FakeTransport:
        return self.transports[endpoint.name]


def install(
    monkeypatch: pytest.MonkeyPatch,
    home: Path,
    spec: LabSpec,
    transports: Sequence[FakeTransport] = (),
    down: dict[str, str] | None = None,
) -> dict[str, FakeTransport]:
    """`spec` recorded as a lab in `home`, its guests the given fakes (a
    machine without one answers nothing)."""
    folder = LabHome(home).paths(spec.name).root
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lab.json").write_text(json.dumps(spec_to_record(spec)))
    by_name = {t.name: t for t in transports}
    for m in spec.machines:
        by_name.setdefault(m.name, FakeTransport(m.name))
    from labctl.session import group as session

    monkeypatch.setattr(session, "BACKEND", FakeBackend(by_name, down or {}))
    return by_name


# ---------------------------------------------------------------- a vagrant


_VAGRANT_SCRIPT = """#!{python}
# a fake vagrant (tests/unit/fakes.py): ssh-config from a capture
import fcntl, sys, time
words = sys.argv[1:]
with open({log!r}, "a+") as log:
    fcntl.flock(log, fcntl.LOCK_EX)
    log.seek(0)
    before = len(log.readlines())
    log.write(" ".join(words) + "\\n")
if words[:1] != ["ssh-config"]:
    sys.stderr.write("vagrant " + " ".join(words) + " is not faked\\n")
    sys.exit(99)
if {locked} < 0 or before < {locked}:
    sys.stdout.write({refusal!r})
    sys.exit(1)
time.sleep({delay})
if {failing!r}:
    sys.stdout.write({failing!r})
    sys.exit(1)
named = [w for w in words[1:] if not w.startswith("-")]
for line in {answer!r}.splitlines(keepends=True):
    if not named or line.split(",")[1] in named:
        sys.stdout.write(line)
"""


@dataclass
class ScriptedVagrant:
    """A `vagrant` first on PATH, for the code that runs Vagrant itself
    (inventory, the driver): `ssh-config` answers from a capture after
    `delay` seconds, except that its first `locked` runs (every run: -1) meet
    Vagrant's machine lock; each run is logged."""

    log: Path

    def runs(self) -> list[str]:
        """Each run's arguments, in the order they started."""
        return self.log.read_text().splitlines() if self.log.exists() else []


def scripted_vagrant(
    monkeypatch: pytest.MonkeyPatch,
    folder: Path,
    *,
    delay: float = 0.0,
    locked: int = 0,
    answer: str = "vagrant/ssh-config-two.txt",
    refusal: str = "vagrant/machine-locked.txt",
    failing: str = "",
) -> ScriptedVagrant:
    """Put a ScriptedVagrant first on PATH (`failing`: a capture it answers
    every ssh-config with, after the delay)."""
    import sys

    bin_dir = folder / "scripted-vagrant"
    bin_dir.mkdir(parents=True, exist_ok=True)
    log = bin_dir / "runs.log"
    script = bin_dir / "vagrant"
    script.write_text(
        _VAGRANT_SCRIPT.format(
            python=sys.executable,
            log=str(log),
            locked=locked,
            delay=delay,
            refusal=data(refusal),
            answer=data(answer),
            failing=data(failing) if failing else "",
        )
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ.get('PATH', '')}")
    return ScriptedVagrant(log)


# ---------------------------------------------------------------- host programs

HANG = "hang"  # an answer: the program never answers (for time limits)


def _shell_pattern(words: str) -> str:
    """A `case` pattern matching `words` literally, `*` as any text."""
    return "*".join(shlex.quote(part) for part in words.split("*"))


def _answer(relative: str, sleep: str) -> str:
    if relative == HANG:
        return f"exec {sleep} 600"
    from .captured import load

    c = load(relative)
    out = f"printf '%s\\n' {shlex.quote(c.stdout)}; " if c.stdout else ""
    err = f"printf '%s\\n' {shlex.quote(c.stderr)} >&2; " if c.stderr else ""
    return f"{out}{err}exit {c.exit}"


def host_programs(
    monkeypatch: pytest.MonkeyPatch, folder: Path, answers: Mapping[str, Mapping[str, str]]
) -> None:
    """The only programs on PATH (one not given is not installed here), each
    answering as a capture: answers[program][ARGS] is the capture printed
    when it runs with ARGS (a pattern of its words, `*` any text), or HANG.
    Anything else it is asked fails the test's expectations with exit 99."""
    sleep = shutil.which("sleep") or "/bin/sleep"
    folder.mkdir(parents=True, exist_ok=True)
    for program, by_args in answers.items():
        cases = "".join(
            f"  {_shell_pattern(args)}) {_answer(relative, sleep)} ;;\n"
            for args, relative in by_args.items()
        )
        script = folder / program
        script.write_text(
            f'#!/bin/sh\ncase "$*" in\n{cases}esac\n'
            f'echo "fake {program} has no answer for: $*" >&2\nexit 99\n'
        )
        script.chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))


# ---------------------------------------------------------------- a Jenkins controller

# /computer/api/json?tree=computer[displayName,offline,offlineCauseReason], as
# the Jenkins REST API documents it (Jenkins cannot be downloaded here).
COMPUTERS = {
    "_class": "hudson.model.ComputerSet",
    "computer": [
        {
            "_class": "hudson.model.Hudson$MasterComputer",
            "displayName": "Built-In Node",
            "offline": False,
            "offlineCauseReason": "",
        },
        {
            "_class": "hudson.slaves.SlaveComputer",
            "displayName": "agent1",
            "offline": False,
            "offlineCauseReason": "",
        },
        {
            "_class": "hudson.slaves.SlaveComputer",
            "displayName": "agent2",
            "offline": True,
            "offlineCauseReason": "This agent is offline because Jenkins failed to launch the agent process on it.",
        },
    ],
}

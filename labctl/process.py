"""Run a local program (vagrant, docker, debootstrap): stream its lines, honour
Ctrl-C the way the program expects, and enforce a time limit.

The child runs in its own session so that a Ctrl-C on the terminal reaches
labctl only; labctl forwards exactly one SIGINT and then waits. Vagrant treats
a second SIGINT as "exit immediately, without clean-up", which is what a
terminal would otherwise send it when the user presses Ctrl-C twice.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from labctl.errors import Interrupted, SpecError, TimedOut

LineSink = Callable[[str], None]


@dataclass(frozen=True)
class Completed:
    """A finished local program."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


# Grace given to a child after the time limit's SIGINT, before SIGTERM.
TIMEOUT_GRACE = 60.0


def _pump(stream: IO[bytes], sink: LineSink | None, keep: list[str]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip("\n")
        keep.append(line)
        if sink is not None:
            sink(line)
    stream.close()


@contextlib.contextmanager
def _forward_sigint(proc: subprocess.Popen[bytes], state: dict[str, Any]) -> Iterator[None]:
    """While `proc` runs, Ctrl-C is passed on to it once and otherwise waited out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if not state["interrupted"]:
            state["interrupted"] = True
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            if state.get("on_interrupt"):
                state["on_interrupt"]()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    on_stdout: LineSink | None = None,
    on_stderr: LineSink | None = None,
    on_interrupt: Callable[[], None] | None = None,
    timeout: float | None = None,
    stdin: IO[bytes] | int | None = subprocess.DEVNULL,
) -> Completed:
    """Run `argv` to completion; raise Interrupted or TimedOut after its clean-up."""
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        if cwd is not None and not Path(cwd).is_dir():
            raise
        raise SpecError(f"{argv[0]} is not installed") from exc
    out: list[str] = []
    err: list[str] = []
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, on_stdout, out), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, on_stderr, err), daemon=True),
    ]
    for t in pumps:
        t.start()
    state: dict[str, Any] = {"interrupted": False, "on_interrupt": on_interrupt}
    timed_out = False
    deadline = time.monotonic() + timeout if timeout else None
    # A thread waits for the child, so a quick one is seen at once (Popen's own
    # wait with a time limit polls, adding up to 50 ms) while this thread stays
    # free for Ctrl-C and the deadline.
    exited = threading.Event()

    def reap() -> None:
        proc.wait()
        exited.set()

    threading.Thread(target=reap, daemon=True).start()
    with _forward_sigint(proc, state):
        while not exited.wait(0.2):
            if deadline and not timed_out and time.monotonic() > deadline:
                timed_out = True
                proc.send_signal(signal.SIGINT)
                if not exited.wait(TIMEOUT_GRACE):
                    proc.terminate()
                    if not exited.wait(TIMEOUT_GRACE):
                        proc.kill()
        for t in pumps:
            t.join()
    name = Path(argv[0]).name
    if state["interrupted"]:
        raise Interrupted(f"interrupted; {name} finished its clean-up")
    if timed_out:
        raise TimedOut(f"{name} {argv[1] if len(argv) > 1 else ''} took longer than {timeout:g} s")
    return Completed(tuple(argv), proc.returncode, "\n".join(out), "\n".join(err))

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

from labctl.errors import Interrupted, LabctlError, SpecError, TimedOut

# A child's raw output, one line at a time: no machine and no level yet, so
# not an Event (labctl.events); its caller makes those of it (the Vagrant
# driver parses each line, a box build shows each as it is).
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
    """A child's stream, line by line, in a helper thread: kept, and shown
    while the terminal takes it (a closed one ends the showing, never the
    keeping; no traceback from here)."""
    try:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            keep.append(line)
            if sink is not None:
                try:
                    sink(line)
                except Exception:
                    sink = None
    except (OSError, ValueError):  # the stream closed under us
        pass
    finally:
        stream.close()


class _Children:
    """Every child labctl runs now, on any thread, so that one Ctrl-C reaches
    each of them exactly once (a signal reaches Python's main thread only)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live: dict[subprocess.Popen[bytes], dict[str, Any]] = {}
        self.scoped = False  # an interruptible() scope holds the handler
        self.pressed = False

    def add(self, proc: subprocess.Popen[bytes], state: dict[str, Any]) -> None:
        with self.lock:
            if self.pressed:  # Ctrl-C came first: this child gets it at once
                self._interrupt(proc, state)
            self.live[proc] = state

    def remove(self, proc: subprocess.Popen[bytes]) -> None:
        with self.lock:
            self.live.pop(proc, None)

    def interrupt_all(self) -> bool:
        """SIGINT to every live child not yet sent one; False if none was running."""
        with self.lock:
            self.pressed = True
            for proc, state in self.live.items():
                self._interrupt(proc, state)
            return bool(self.live)

    @staticmethod
    def _interrupt(proc: subprocess.Popen[bytes], state: dict[str, Any]) -> None:
        if state["interrupted"]:
            return
        state["interrupted"] = True
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        if state.get("on_interrupt"):
            state["on_interrupt"]()


_CHILDREN = _Children()
# Other things Ctrl-C must stop (the SSH connections): each returns True if it
# had something to stop. Called from the signal handler: they must take no lock
# that the interrupted code may hold.
_STOPPERS: list[Callable[[], bool]] = []


def on_ctrl_c(stop: Callable[[], bool]) -> None:
    _STOPPERS.append(stop)


# Set at the first Ctrl-C and never cleared: the threads still running then
# (a pool abandoned by its caller, a reader of a closed connection) end later.
CTRL_C_SEEN = threading.Event()


def quiet_threads_after_ctrl_c(args: threading.ExceptHookArgs) -> None:
    """threading.excepthook for labctl: after a Ctrl-C, labctl closes every
    connection under the threads using them, and their errors are the
    interruption the main thread reports in one line, not tracebacks."""
    if not CTRL_C_SEEN.is_set():
        threading.__excepthook__(args)


def interrupted() -> bool:
    """Whether Ctrl-C was pressed during the current operation."""
    return _CHILDREN.pressed


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within this (on the main thread), Ctrl-C is passed on once to every
    child labctl runs, on this thread or on workers; the children finish their
    clean-up and each `run` raises Interrupted. The other stoppers (`on_ctrl_c`:
    SSH connections) are closed under the code using them, which then fails.
    With nothing running, Ctrl-C interrupts the main thread as usual, and the
    workers' next `run` raises Interrupted at once, so no pool waits for
    their work."""
    if threading.current_thread() is not threading.main_thread() or _CHILDREN.scoped:
        yield  # a worker cannot take signals; an outer scope already does
        return

    def handler(signum: int, frame: object) -> None:
        CTRL_C_SEEN.set()
        threading.excepthook = quiet_threads_after_ctrl_c
        busy = _CHILDREN.interrupt_all()
        for stop in _STOPPERS:
            busy = stop() or busy
        # Raised only where nothing was running: raised inside a library (an
        # SSH packet half-sent), it would leave that library's locks held
        if not busy:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    _CHILDREN.scoped = True
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _CHILDREN.scoped = False
        _CHILDREN.pressed = False


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
    with interruptible():  # before the child starts: no Ctrl-C may orphan it
        state: dict[str, Any] = {"interrupted": False, "on_interrupt": on_interrupt}
        proc = _start(argv, cwd, env, stdin, state)
        try:
            out, err, timed_out = _wait(proc, on_stdout, on_stderr, timeout)
        finally:
            _CHILDREN.remove(proc)
    name = Path(argv[0]).name
    if state["interrupted"]:
        raise Interrupted(f"interrupted; {name} finished its clean-up")
    if timed_out:
        raise TimedOut(f"{name} {argv[1] if len(argv) > 1 else ''} took longer than {timeout:g} s")
    return Completed(tuple(argv), proc.returncode, "\n".join(out), "\n".join(err))


def checked(done: Completed, what: str) -> Completed:
    """`done`, or LabctlError saying `what` failed, in the end of its stderr."""
    if done.returncode != 0:
        raise LabctlError(f"{what} failed: {done.stderr.strip()[-300:]}")
    return done


def _start(
    argv: Sequence[str],
    cwd: Path | None,
    env: dict[str, str] | None,
    stdin: IO[bytes] | int | None,
    state: dict[str, Any],
) -> subprocess.Popen[bytes]:
    """The child, started and known to Ctrl-C's handler."""
    if _CHILDREN.pressed:  # Ctrl-C ended the operation this call belongs to
        raise Interrupted(f"interrupted before {Path(argv[0]).name} started")
    proc = None
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
        _CHILDREN.add(proc, state)
    except FileNotFoundError as exc:
        if cwd is not None and not Path(cwd).is_dir():
            raise
        raise SpecError(f"{argv[0]} is not installed") from exc
    except KeyboardInterrupt:  # between the start and the handler's knowing of it
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            proc.wait()
        raise Interrupted(f"interrupted as {Path(argv[0]).name} started") from None
    return proc


def _wait(
    proc: subprocess.Popen[bytes],
    on_stdout: LineSink | None,
    on_stderr: LineSink | None,
    timeout: float | None,
) -> tuple[list[str], list[str], bool]:
    """The child's lines, once it has exited; True if its time limit ended it."""
    out: list[str] = []
    err: list[str] = []
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, on_stdout, out), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, on_stderr, err), daemon=True),
    ]
    for t in pumps:
        t.start()
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
    while not exited.wait(0.2):
        if deadline and not timed_out and time.monotonic() > deadline:
            timed_out = True
            _end(proc, exited)
    for t in pumps:
        t.join()
    return out, err, timed_out


def _end(proc: subprocess.Popen[bytes], exited: threading.Event) -> None:
    """A child past its time limit: SIGINT (Vagrant cleans up on it), then
    SIGTERM, then SIGKILL, each after TIMEOUT_GRACE. A signal the child
    ignores is skipped: a child inherits SIGINT ignored from a background job
    of a script or a test runner's worker, and waiting out its grace would
    turn a time limit of a second into one of a minute."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        if not ignores(proc.pid, sig):
            proc.send_signal(sig)
            if exited.wait(TIMEOUT_GRACE):
                return
    proc.kill()


def ignores(pid: int, sig: int) -> bool:
    """Whether process `pid` ignores `sig`: its SigIgn mask in /proc (Linux);
    elsewhere, or for a process gone, False."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False

"""Local programs: Ctrl-C is forwarded once and waited out; time limits end with 124."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from labctl.errors import Interrupted, TimedOut
from labctl.local import process

CHILD = """
import signal, sys, time
seen = []
def on_int(signum, frame):
    seen.append(signum)
signal.signal(signal.SIGINT, on_int)
print("ready", flush=True)
while not seen:
    time.sleep(0.01)
time.sleep(0.3)                      # clean-up takes a while
open(sys.argv[1], "w").write(str(len(seen)))
"""


def test_ctrl_c_is_forwarded_once_and_waited_for(tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"
    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if line == "ready":
            # what the terminal does on Ctrl-C: SIGINT to labctl, twice
            threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()

    with pytest.raises(Interrupted, match="finished its clean-up"):
        process.run([sys.executable, "-c", CHILD, str(marker)], on_stdout=on_line)
    assert marker.read_text() == "1"  # exactly one SIGINT reached the child, after its clean-up


def test_time_limit(tmp_path: Path) -> None:
    with pytest.raises(TimedOut) as exc:
        process.run([sys.executable, "-c", CHILD, str(tmp_path / "m")], timeout=0.5)
    assert exc.value.exit_code == 124
    assert (tmp_path / "m").read_text() == "1"  # it was asked to stop (SIGINT), not killed


def test_time_limit_of_a_child_that_ignores_sigint(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that inherited SIGINT ignored (a background job of a script, a
    test runner's worker) is not given SIGINT's grace: SIGTERM ends it at its
    time limit."""
    monkeypatch.setattr(process, "TIMEOUT_GRACE", 30.0)
    start = time.monotonic()
    with pytest.raises(TimedOut):
        process.run(["sh", "-c", "trap '' INT; exec sleep 600"], timeout=0.3)
    assert time.monotonic() - start < 10


def test_a_process_ignoring_a_signal_is_seen_so() -> None:
    child = subprocess.Popen(["sh", "-c", "trap '' INT; exec sleep 600"])
    try:
        deadline = time.monotonic() + 5
        while not process.ignores(child.pid, signal.SIGINT) and time.monotonic() < deadline:
            time.sleep(0.05)  # until sh has run its trap
        assert process.ignores(child.pid, signal.SIGINT)
        assert not process.ignores(child.pid, signal.SIGTERM)
    finally:
        child.kill()
        child.wait()
    assert not process.ignores(child.pid, signal.SIGINT)  # gone: False


def test_output_and_status() -> None:
    done = process.run(
        [
            sys.executable,
            "-c",
            "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)",
        ]
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, "out", "err")


def test_ctrl_c_reaches_children_on_worker_threads_once(tmp_path: Path) -> None:
    """What `ls` does: programs run on a pool's workers. One Ctrl-C reaches
    each of them once; every worker's run ends Interrupted after the clean-up,
    and a run the pool starts afterwards does not start at all."""
    from concurrent.futures import ThreadPoolExecutor

    markers = [tmp_path / f"cleaned{i}" for i in range(3)]
    ready = threading.Semaphore(0)

    def child(marker: Path) -> str:
        try:
            process.run(
                [sys.executable, "-c", CHILD, str(marker)],
                on_stdout=lambda line: ready.release() if line == "ready" else None,
            )
        except Interrupted as exc:
            return exc.message
        return "finished"

    def press() -> None:
        for _ in markers:
            ready.acquire()
        os.kill(os.getpid(), signal.SIGINT)
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()

    threading.Thread(target=press, daemon=True).start()
    with process.interruptible(), ThreadPoolExecutor(max_workers=3) as pool:
        said = list(pool.map(child, markers))
        with pytest.raises(Interrupted, match="before"):
            process.run([sys.executable, "-c", "pass"])
    assert all("finished its clean-up" in s for s in said), said
    assert [m.read_text() for m in markers] == ["1", "1", "1"]
    # the scope is over: a new operation runs again
    assert process.run([sys.executable, "-c", "pass"]).returncode == 0


def test_ctrl_c_with_no_child_running_interrupts_the_main_thread() -> None:
    with pytest.raises(KeyboardInterrupt), process.interruptible():
        os.kill(os.getpid(), signal.SIGINT)
        threading.Event().wait(5)


def test_a_deadline_caps_each_call_and_ends_the_operation(monkeypatch) -> None:
    import time

    from labctl.local.deadline import Deadline, default

    monkeypatch.setenv("LABCTL_SSH_TIMEOUT", "42")
    assert default("ssh") == 42
    monkeypatch.setenv("LABCTL_SSH_TIMEOUT", "nonsense")
    assert default("ssh") == 600
    assert Deadline().cap("ssh") == 600 and Deadline().cap("ssh", 5) == 5
    soon = Deadline.after(0.1)
    assert 0 < soon.cap("build") <= 0.1  # the build default (3600) never outlives the deadline
    time.sleep(0.15)
    with pytest.raises(TimedOut, match=r"--timeout of 0\.1 s") as exc:
        soon.cap("ssh", 10)
    assert exc.value.exit_code == 124


def test_ctrl_c_closes_ssh_connections_under_the_code_using_them() -> None:
    """A KeyboardInterrupt raised inside paramiko (a packet half-sent, a lock
    held) would leave its locks taken and labctl hung: with a connection open,
    Ctrl-C shuts its socket instead, which ends paramiko's waits on every
    thread; what then fails is reported as the interrupt (exit 130)."""
    import socket

    from labctl.cli import run_command
    from labctl.errors import GuestError
    from labctl.transport import ssh

    mine, guest = socket.socketpair()
    ssh._SOCKETS.add(mine)
    try:

        def command() -> int:
            os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt here
            assert process.interrupted()
            assert guest.recv(10) == b""  # the connection is ended
            raise GuestError("node1: the SSH connection failed: EOF")

        with pytest.raises(Interrupted, match="connections to the guests were closed") as exc:
            run_command(command)
        assert exc.value.exit_code == 130
    finally:
        ssh._SOCKETS.discard(mine)
        mine.close()
        guest.close()
    assert not process.interrupted()  # the next operation starts afresh


def test_tries_one_at_once_then_at_a_rhythm_until_the_time_is_up() -> None:
    import time

    from labctl.local.deadline import tries

    start = time.monotonic()
    seen = list(tries(0.2, every=0.05))
    took = time.monotonic() - start
    assert seen[-1] is True and not any(seen[:-1])  # only the last says so
    assert 4 <= len(seen) <= 6 and 0.2 <= took < 1.5
    assert list(tries(0, every=5)) == [True]  # no time: one try, the last, no wait


def test_a_thread_dying_after_ctrl_c_prints_no_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C closes the connections under the threads reading them; their
    errors are the interruption the main thread reports in one line."""
    monkeypatch.setattr(threading, "excepthook", process.quiet_threads_after_ctrl_c)
    monkeypatch.setattr(process, "CTRL_C_SEEN", threading.Event())

    def dies() -> None:
        raise OSError("Socket is closed")

    for seen in (False, True):
        if seen:
            process.CTRL_C_SEEN.set()
        t = threading.Thread(target=dies)
        t.start()
        t.join()
        printed = capsys.readouterr().err
        assert ("Traceback (most recent call last)" in printed) is not seen, printed

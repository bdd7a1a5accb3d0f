"""Local programs: Ctrl-C is forwarded once and waited out; time limits end with 124."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from labctl import process
from labctl.errors import Interrupted, TimedOut

CHILD = """
import signal, sys, time
seen = []
def on_int(signum, frame):
    seen.append(signum)
signal.signal(signal.SIGINT, on_int)
print("ready", flush=True)
while not seen:
    time.sleep(0.01)
time.sleep(0.5)                      # clean-up takes a while
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
        process.run([sys.executable, "-c", CHILD, str(tmp_path / "m")], timeout=1)
    assert exc.value.exit_code == 124
    assert (tmp_path / "m").read_text() == "1"  # it was asked to stop (SIGINT), not killed


def test_output_and_status() -> None:
    done = process.run(
        [
            sys.executable,
            "-c",
            "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)",
        ]
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, "out", "err")

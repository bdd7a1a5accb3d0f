"""The SSH backend for real, against paramiko's own server side on a socket
pair (tests/unit/sshd.py; no network): host keys checked then pinned by the
connection itself, every word quoted through a real shell, stdout and stderr
apart, stdin fed, a time limit enforced, files written with their mode, a
process left running, and every open socket known to Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import socket
from pathlib import Path

import paramiko
import pytest

from labctl.errors import ConnectError
from labctl.transport import ssh
from labctl.transport.hostkeys import HostKeys
from labctl.transport.interface import Endpoint

from ..sshd import serving

CLIENT_KEY = paramiko.ECDSAKey.generate()
HOST_KEY = paramiko.ECDSAKey.generate()


@pytest.fixture
def connect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    key_file = tmp_path / "private_key"
    CLIENT_KEY.write_private_key_file(str(key_file))
    keys = HostKeys(tmp_path / "host-keys.json")
    opened: list[ssh.SshTransport] = []
    servers = contextlib.ExitStack()

    def make(host_key: paramiko.PKey = HOST_KEY, machine_id: str = "id-1") -> ssh.SshTransport:
        endpoint = Endpoint("node1", "192.0.2.10", 22, "vagrant", str(key_file), machine_id)
        sock = servers.enter_context(serving(host_key, CLIENT_KEY))
        monkeypatch.setattr(socket, "create_connection", lambda *a, **kw: sock)
        t = ssh.SshTransport(endpoint, keys, connect_timeout=5)
        opened.append(t)
        return t.connect()

    with servers:
        yield make, keys
        for t in opened:
            t.close()


def test_a_command_runs_through_a_real_shell_with_every_word_quoted(connect) -> None:
    make, _ = connect
    t = make()
    done = t.run(["printf", "%s|", "a b; echo pwned", "$(id)"])
    assert (done.exit_code, done.stdout, done.stderr) == (0, "a b; echo pwned|$(id)|", "")
    both = t.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (both.exit_code, both.stdout, both.stderr) == (3, "out\n", "err\n")
    fed = t.run(["tr", "a-z", "A-Z"], stdin=b"quiet\n")
    assert fed.stdout == "QUIET\n"


def test_the_time_limit_is_enforced_in_the_guest(connect) -> None:
    make, _ = connect
    done = make().run(["sleep", "30"], timeout=0.3)
    assert done.exit_code == 124 and done.timed_out
    assert done.duration_ms < 10_000


def test_a_key_is_pinned_by_the_connection_and_a_changed_one_refused(connect) -> None:
    make, keys = connect
    make().run(["true"])
    pinned = json.loads(keys.path.read_text())["node1"]
    assert pinned == {"id": "id-1", "type": "ecdsa-sha2-nistp256", "key": HOST_KEY.get_base64()}
    other = paramiko.ECDSAKey.generate()
    with pytest.raises(ConnectError, match="host key of machine 'node1' changed") as exc:
        make(host_key=other)  # the same incarnation: refused, nothing pinned
    assert exc.value.pinned
    assert json.loads(keys.path.read_text())["node1"]["key"] == HOST_KEY.get_base64()
    make(host_key=other, machine_id="id-2")  # recreated: a new id, pinned anew
    assert json.loads(keys.path.read_text())["node1"]["key"] == other.get_base64()


def test_a_file_is_written_with_its_mode(connect, tmp_path: Path) -> None:
    make, _ = connect
    target = tmp_path / "written"
    make().put(b"secret\n", str(target), mode=0o640)
    assert target.read_bytes() == b"secret\n"
    assert oct(target.stat().st_mode & 0o777) == "0o640"


def test_a_process_left_running_talks_until_it_is_told_to_end(connect) -> None:
    make, _ = connect
    proc = make().start(["cat"])
    proc.write(b"one\nMARK\nrest")
    assert proc.read_until(b"MARK\n") == b"one\nMARK\n"
    proc.close_stdin()
    done = proc.wait(timeout=10)
    assert (done.exit_code, done.stdout) == (0, "rest")


def test_every_open_connection_is_known_to_ctrl_c(connect) -> None:
    make, _ = connect
    t = make()
    assert t._sock in ssh._SOCKETS.open
    t.close()
    assert not ssh._SOCKETS.open


def test_helper_threads_end_quietly_when_their_stream_is_taken_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C shuts every SSH socket and the interrupted caller closes the
    file it was sending: the threads that pump them end without a traceback
    (the thread that waits for the command reports how it ended)."""
    import io
    import threading

    from labctl.transport.remote import drain, feed

    class Closed:
        def sendall(self, data: bytes) -> None:
            raise OSError("Socket is closed")

        def recv(self, size: int) -> bytes:
            raise TimeoutError

    escaped: list[str] = []  # what Python would print as "Exception in thread"
    monkeypatch.setattr(threading, "excepthook", lambda a: escaped.append(repr(a.exc_value)))
    spool = io.BytesIO(b"x" * 10)
    spool.close()
    threads = [
        threading.Thread(target=feed, args=(Closed(), spool)),
        threading.Thread(target=feed, args=(Closed(), b"data")),
        threading.Thread(target=drain, args=(Closed().recv, bytearray())),
    ]
    for t in threads:
        t.start()
        t.join(timeout=5)
    assert escaped == []


def test_paramiko_is_imported_without_invoke_for_it_alone() -> None:
    """labctl keeps paramiko from importing `invoke` (0.1 s) but leaves the
    name free for anything else in the process."""
    import subprocess
    import sys

    # and threads that connect at once each get the whole module, never a
    # partly imported one
    probe = (
        "import sys, threading; from labctl.transport.ssh import import_paramiko\n"
        "got = []\n"
        "ts = [threading.Thread(target=lambda: got.append(import_paramiko().AuthenticationException))"
        " for _ in range(8)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "assert len(got) == 8, got\n"
        "import paramiko.config as c\n"
        "assert c.invoke is None and sys.modules.get('invoke', 'free') is not None\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

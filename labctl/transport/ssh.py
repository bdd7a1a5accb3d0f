"""The SSH backend (paramiko): one connection per guest, commands with their
stdout and stderr read at the same time (a full stream would otherwise stall
the command), a time limit enforced in the guest too (exit 124), files over
SFTP, and every open socket known to Ctrl-C."""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from labctl.errors import ConnectError, GuestError, Interrupted, LabctlError, Unreachable
from labctl.local import process
from labctl.local.deadline import Deadline
from labctl.transport.hostkeys import HostKeys
from labctl.transport.interface import (
    REMOTE_KILL_GRACE,
    TIMEOUT_EXIT,
    CommandFailed,
    Endpoint,
    Result,
    command_line,
)
from labctl.transport.remote import ChannelProcess, drain, feed

_IMPORTING = threading.Lock()


def import_paramiko() -> Any:
    """paramiko, without the `invoke` package it imports for ssh_config's
    `Match exec` (which labctl never uses): a tenth of a second saved on every
    command that talks to a guest. `invoke` is hidden only while paramiko is
    imported, once, under a lock (threads connect to guests in parallel)."""
    with _IMPORTING:
        if "paramiko" not in sys.modules:
            # paramiko logs a failed handshake with its traceback; with no
            # handler of its own, Python's last-resort handler would print
            # that to the user's terminal. labctl reports the failure itself.
            logging.getLogger("paramiko").addHandler(logging.NullHandler())
            hidden = "invoke" not in sys.modules
            if hidden:
                sys.modules["invoke"] = None  # type: ignore[assignment]
            try:
                import paramiko
            finally:
                if hidden and sys.modules.get("invoke", 0) is None:
                    del sys.modules["invoke"]
    import paramiko

    return paramiko


def load_key(path: str) -> Any:
    """A private key for paramiko. RSA keys skip cryptography's consistency
    check (about 0.1 s a key): they are Vagrant's, generated for this machine."""
    paramiko = import_paramiko()
    data = Path(path).read_bytes()
    if b"BEGIN RSA PRIVATE KEY" in data or b"BEGIN PRIVATE KEY" in data:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = serialization.load_pem_private_key(
            data, password=None, unsafe_skip_rsa_key_validation=True
        )
        if isinstance(key, rsa.RSAPrivateKey):
            return paramiko.RSAKey(key=key)
    return paramiko.PKey.from_path(path)


class _Sockets:
    """Every open SSH connection's socket, so that Ctrl-C can end them all:
    a shut-down socket ends paramiko's waits, on any thread, without taking
    any of paramiko's locks (which the interrupted code may hold)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()

    def add(self, sock: socket.socket) -> None:
        with self.lock:
            self.open.add(sock)

    def discard(self, sock: socket.socket) -> None:
        with self.lock:
            self.open.discard(sock)

    def shut_all(self) -> bool:
        """Called by Ctrl-C's handler: no lock here, a copy of the set instead
        (the handler may run while this thread holds self.lock)."""
        found = list(self.open)
        for sock in found:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return bool(found)


_SOCKETS = _Sockets()
process.on_ctrl_c(_SOCKETS.shut_all)


class SshTransport:
    """One paramiko connection to one guest."""

    def __init__(
        self,
        endpoint: Endpoint,
        host_keys: HostKeys,
        connect_timeout: float = 20.0,
        deadline: Deadline | None = None,
    ) -> None:
        """`deadline`: the operation's own (`--timeout`), which no command
        here outlives; each command also has a default limit (LABCTL_SSH_TIMEOUT)."""
        self.endpoint = endpoint
        self.name = endpoint.name
        self.host_keys = host_keys
        self.connect_timeout = connect_timeout
        self.deadline = deadline or Deadline()
        self._transport: Any = None
        self._sock: socket.socket | None = None

    # ------------------------------------------------------------ connection

    def connect(self) -> SshTransport:
        """Open the connection, retrying with backoff while the guest boots."""
        paramiko = import_paramiko()
        if process.interrupted():
            raise Interrupted(f"interrupted before connecting to {self.name}")

        deadline = time.monotonic() + self.deadline.cap("ssh", self.connect_timeout)
        delay = 0.2
        while True:
            try:
                self._transport = self._open(paramiko)
                return self
            except ConnectError:
                raise
            except paramiko.AuthenticationException as exc:
                # not a guest still booting: the address leads to another
                # machine (a stale one) or the key is wrong; no point waiting
                raise ConnectError(
                    f"machine {self.endpoint.name!r} at {self.endpoint.host}:{self.endpoint.port} "
                    f"refused its SSH key: {exc}",
                    hint="is it running? see `labctl status`",
                ) from exc
            except (OSError, EOFError, paramiko.SSHException) as exc:
                if time.monotonic() + delay > deadline:
                    ep = self.endpoint
                    raise Unreachable(
                        f"cannot reach machine {ep.name!r} at {ep.host}:{ep.port}: {exc or type(exc).__name__}",
                        hint="is it running? see `labctl status`",
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _open(self, paramiko: Any) -> Any:
        ep = self.endpoint
        sock = socket.create_connection((ep.host, ep.port), timeout=10)
        # paramiko leaves Nagle on: each request/reply exchange then waits out
        # the peer's delayed ACK (about 40 ms an exchange, 0.1 s a connection).
        with contextlib.suppress(OSError):  # not a TCP socket (the tests' socket pair)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._sock is not None:  # a dropped connection's
            _SOCKETS.discard(self._sock)
        _SOCKETS.add(sock)
        self._sock = sock
        t = paramiko.Transport(sock)
        try:
            t.start_client(timeout=10)
            key = t.get_remote_server_key()
            seen = (ep.name, ep.machine_id, key.get_name(), key.get_base64())
            to_pin = self.host_keys.check(*seen)
            try:
                pkey = load_key(ep.key_file)
            except (OSError, ValueError, paramiko.SSHException) as exc:
                raise ConnectError(f"cannot read the SSH key of {ep.name!r}: {exc}") from exc
            t.auth_publickey(ep.user, pkey)
            if to_pin:
                self.host_keys.pin(*seen)
            t.set_keepalive(15)
            return t
        except BaseException:
            t.close()
            _SOCKETS.discard(sock)
            self._sock = None
            raise

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._sock is not None:
            _SOCKETS.discard(self._sock)
            self._sock = None

    def __enter__(self) -> SshTransport:
        return self.connect() if self._transport is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _session(self) -> Any:
        """A new channel; reconnects once if the connection was dropped."""
        paramiko = import_paramiko()

        if self._transport is None:
            self.connect()
        try:
            return self._transport.open_session(timeout=10)
        except (EOFError, OSError, paramiko.SSHException):
            self.close()
            self.connect()
            return self._transport.open_session(timeout=10)

    # ------------------------------------------------------------ commands

    def _exec(self, cmd: str) -> Any:
        """A channel running `cmd`; paramiko's failures become ConnectError."""
        paramiko = import_paramiko()
        try:
            chan = self._session()
            chan.exec_command(cmd)
            return chan
        except (EOFError, OSError, paramiko.SSHException) as exc:
            raise ConnectError(
                f"{self.name}: the SSH connection failed: {exc or type(exc).__name__}"
            ) from exc

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
        """Run `argv` (each word quoted) and collect its output. Without `stdin`
        the command reads end-of-file at once, unless `hold_stdin` keeps it open
        as a terminal would (ctr closes a detached process's stdin on EOF). A
        time limit (`timeout`, else LABCTL_SSH_TIMEOUT's default; never past
        the deadline) is enforced in the guest too (timeout(1)), so nothing
        keeps running there."""
        timeout = self.deadline.cap("ssh", timeout)
        cmd = command_line(argv, sudo, timeout)
        start = time.monotonic()
        chan = self._exec(cmd)
        out, err = bytearray(), bytearray()
        readers = [
            threading.Thread(target=drain, args=(chan.recv, out), daemon=True),
            threading.Thread(target=drain, args=(chan.recv_stderr, err), daemon=True),
        ]
        if stdin is not None:
            readers.append(threading.Thread(target=feed, args=(chan, stdin), daemon=True))
        elif not hold_stdin:
            chan.shutdown_write()  # a command that reads stdin gets EOF, not a wait
        for t in readers:
            t.start()
        finished = chan.status_event.wait(timeout + REMOTE_KILL_GRACE + 5)
        if finished:
            for t in readers:
                t.join()
            code = chan.recv_exit_status()
        else:
            code = TIMEOUT_EXIT
        chan.close()
        result = Result(
            host=self.name,
            command=cmd,
            exit_code=code,
            stdout=out.decode(errors="replace"),
            stderr=err.decode(errors="replace"),
            duration_ms=int((time.monotonic() - start) * 1000),
            timed_out=not finished or code == TIMEOUT_EXIT,
        )
        if check and not result.ok:
            raise CommandFailed(result)
        return result

    def put(
        self,
        data: bytes | Path,
        remote: str,
        mode: int = 0o644,
        sudo: bool = False,
        owner: str | None = None,
    ) -> None:
        """Write `data` (bytes, or a local file streamed) to `remote` with `mode`
        (and `owner`, as root); the mode is set before any byte lands."""
        paramiko = import_paramiko()
        sudo = sudo or owner is not None
        # as root: upload to a private temporary file first, then install it
        target = f"/tmp/.labctl-put-{secrets.token_hex(8)}" if sudo else remote
        try:
            if self._transport is None:
                self.connect()
            sftp = self._transport.open_sftp_client()
            try:
                with sftp.open(target, "wb") as fh:
                    fh.chmod(0o600)
                    fh.set_pipelined(True)
                    if isinstance(data, Path):
                        with data.open("rb") as source:
                            for block in iter(lambda: source.read(1 << 20), b""):
                                fh.write(block)
                    else:
                        fh.write(data)
                if not sudo:
                    sftp.chmod(target, mode)
            finally:
                sftp.close()
            if sudo:
                chown = ["-o", owner, "-g", owner] if owner else []
                self.run(
                    ["install", "-m", f"{mode:o}", *chown, target, remote], sudo=True, check=True
                )
        except (EOFError, OSError, paramiko.SSHException) as exc:
            raise GuestError(f"{self.name}: cannot write {remote}: {exc}") from exc
        finally:
            if sudo:
                with contextlib.suppress(LabctlError):
                    self.run(["rm", "-f", target])

    def open_channel(self) -> Any:
        """A raw session channel, for interactive use (see labctl.local.terminal)."""
        return self._session()

    def start(self, argv: Sequence[str], *, sudo: bool = False) -> ChannelProcess:
        """Start `argv` and leave it running: a session to talk to (a SQL
        client holding a lock), or a stream to pipe (a dump)."""
        cmd = command_line(argv, sudo)
        return ChannelProcess(self.name, cmd, self._exec(cmd))

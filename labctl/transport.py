"""Commands in a guest over SSH (paramiko): one small interface.

`run(argv)` quotes every word with shlex.join here and nowhere else, so an
ID, a reference or a path from the user never reaches a shell unquoted.
stdout and stderr are read at the same time (a full stream would otherwise
stall the command); a time limit closes the channel and reports exit 124.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import shlex
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from labctl import process
from labctl.deadline import Deadline
from labctl.errors import ConnectError, ExitCode, GuestError, Interrupted, LabctlError
from labctl.fsutil import atomic_write

TIMEOUT_EXIT = 124
REMOTE_KILL_GRACE = 5  # seconds between timeout(1)'s TERM and its KILL
_CHUNK = 65536


@dataclass(frozen=True)
class Result:
    """What one command in one guest did."""

    host: str
    command: str
    exit_code: int
    stdout: str
    stderr: str
    duration_ms: int = 0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class CommandFailed(GuestError):
    """A guest command exited non-zero; carries its Result."""

    def __init__(self, result: Result, what: str | None = None) -> None:
        detail = (result.stderr.strip() or result.stdout.strip()).splitlines()
        reason = detail[-1] if detail else f"exit status {result.exit_code}"
        if result.timed_out:
            reason = "no answer within its time limit (--timeout, LABCTL_SSH_TIMEOUT)"
            self.exit_code = ExitCode.TIMEOUT
        super().__init__(f"{result.host}: {what or result.command}: {reason}")
        self.result = result


def command_line(argv: Sequence[str], sudo: bool = False, timeout: float | None = None) -> str:
    """The shell line for `argv`, each word quoted; sudo -n so it never prompts;
    timeout(1) inside sudo, so that it can stop a root command."""
    words = list(argv)
    if timeout is not None:
        words = ["timeout", "-k", str(REMOTE_KILL_GRACE), f"{timeout:g}", *words]
    if sudo:
        words = ["sudo", "-n", "-H", "--", *words]
    return shlex.join(words)


def import_paramiko() -> Any:
    """paramiko, without the `invoke` package it imports for ssh_config's
    `Match exec` (which labctl never uses): a tenth of a second saved on every
    command that talks to a guest."""
    if "paramiko" not in sys.modules:
        sys.modules.setdefault("invoke", None)  # type: ignore[arg-type]
        # paramiko logs a failed handshake with its traceback; with no handler
        # of its own, Python's last-resort handler would print that to the
        # user's terminal. labctl reports the failure itself.
        logging.getLogger("paramiko").addHandler(logging.NullHandler())
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


class Transport(Protocol):
    """How labctl runs things in a guest; tests and ops depend on this only."""

    name: str

    def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        check: bool = False,
        timeout: float | None = None,
        stdin: bytes | IO[bytes] | None = None,
        hold_stdin: bool = False,
    ) -> Result: ...

    def put(
        self,
        data: bytes | Path,
        remote: str,
        mode: int = 0o644,
        sudo: bool = False,
        owner: str | None = None,
    ) -> None: ...

    def start(self, argv: Sequence[str], *, sudo: bool = False) -> RemoteProcess: ...

    def close(self) -> None: ...


class HostKeys:
    """Host keys pinned per lab and per machine, in the lab's own file.

    Labs reuse addresses (127.0.0.1:2222, a freed container IP), so a key is
    pinned to a machine (and the Vagrant id of its current incarnation),
    never to host:port. A changed key is accepted only when the machine was
    recreated (its id changed), and pinned only once the machine has taken
    its own private key: a stale address must not pin another machine's key.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict[str, str]]:
        """The pins; none yet when the file is missing. A file that cannot be
        read is an error, never a fresh start: that would pin any key again."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise self._unreadable(exc) from None
        try:
            pins = json.loads(text)
            if not isinstance(pins, dict) or not all(
                isinstance(p, dict) and {"type", "key"} <= p.keys() for p in pins.values()
            ):
                raise ValueError("not a map of machine -> pinned key")
            return pins
        except ValueError as exc:
            raise self._unreadable(exc) from None

    def _unreadable(self, exc: Exception) -> LabctlError:
        return LabctlError(
            f"cannot read the pinned host keys in {self.path}: {exc}",
            hint="if you trust the machines as they are now, delete the file: "
            "each key is pinned again at the next connection",
        )

    def check(self, machine: str, machine_id: str, key_type: str, key_b64: str) -> bool:
        """ConnectError (pinned) for a changed key of the same incarnation;
        else whether the key is still to be pinned (with `pin`)."""
        with self._lock:
            pin = self._load().get(machine)
        wanted = {"id": machine_id, "type": key_type, "key": key_b64}
        if pin is None:
            return True
        if pin == wanted:
            return False
        same_key = (pin["type"], pin["key"]) == (key_type, key_b64)
        # no id (Vagrant's record of the machine is missing): not a recreation
        if not same_key and (pin.get("id") == machine_id or not machine_id):
            raise ConnectError(
                f"host key of machine {machine!r} changed ({pin['type']} -> {key_type}) "
                "though the machine was not recreated: refusing to connect",
                hint=f"if it was rebuilt on purpose, delete its entry in {self.path}; "
                "else look at what now answers at its address",
                pinned=True,
            )
        return True

    def pinned(self) -> dict[str, tuple[str, str]]:
        """machine -> (key type, key) for every machine pinned so far."""
        with self._lock:
            return {m: (p["type"], p["key"]) for m, p in self._load().items()}

    def pin(self, machine: str, machine_id: str, key_type: str, key_b64: str) -> None:
        with self._lock:
            pins = self._load()
            pins[machine] = {"id": machine_id, "type": key_type, "key": key_b64}
            self._save(pins)

    def _save(self, pins: dict[str, dict[str, str]]) -> None:
        atomic_write(self.path, json.dumps(pins, indent=2, sort_keys=True))


@dataclass(frozen=True)
class Endpoint:
    """Everything needed to open an SSH session to one machine."""

    name: str
    host: str
    port: int
    user: str
    key_file: str
    machine_id: str = ""


def _drain(recv: Any, sink: bytearray) -> None:
    while True:
        data = recv(_CHUNK)
        if not data:
            return
        sink.extend(data)


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
                    raise ConnectError(
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
            threading.Thread(target=_drain, args=(chan.recv, out), daemon=True),
            threading.Thread(target=_drain, args=(chan.recv_stderr, err), daemon=True),
        ]
        if stdin is not None:
            readers.append(threading.Thread(target=_feed, args=(chan, stdin), daemon=True))
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
        """A raw session channel, for interactive use (see labctl.terminal)."""
        return self._session()

    def start(self, argv: Sequence[str], *, sudo: bool = False) -> RemoteProcess:
        """Start `argv` and leave it running: a session to talk to (a SQL
        client holding a lock), or a stream to pipe (a dump)."""
        cmd = command_line(argv, sudo)
        return RemoteProcess(self.name, cmd, self._exec(cmd))


class RemoteProcess:
    """A command running in a guest: write its stdin, read its stdout as it
    comes; stderr is drained in the background (a full stream would stall it)."""

    def __init__(self, host: str, command: str, chan: Any) -> None:
        self.host = host
        self.command = command
        self._chan = chan
        self._err = bytearray()
        self._buffer = b""
        self._stderr = threading.Thread(
            target=_drain, args=(chan.recv_stderr, self._err), daemon=True
        )
        self._stderr.start()

    def write(self, data: bytes) -> None:
        self._chan.sendall(data)

    def close_stdin(self) -> None:
        self._chan.shutdown_write()

    def read(self, size: int = _CHUNK) -> bytes:
        """Up to `size` bytes of stdout; b"" at its end."""
        if self._buffer:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
            return data
        return bytes(self._chan.recv(size))

    def read_until(self, marker: bytes, timeout: float = 60.0) -> bytes:
        """stdout up to and including `marker`; ConnectError-free: a process that
        ends first, or a timeout, raises CommandFailed with what it said."""
        deadline = time.monotonic() + timeout
        data = self._buffer
        self._buffer = b""
        while marker not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CommandFailed(self._result(124, data, timed_out=True), "no answer in time")
            self._chan.settimeout(remaining)
            try:
                chunk = self._chan.recv(_CHUNK)
            except TimeoutError:
                continue
            finally:
                self._chan.settimeout(None)
            if not chunk:
                raise CommandFailed(self.wait(), "ended early")
            data += chunk
        end = data.index(marker) + len(marker)
        self._buffer = data[end:]
        return data[:end]

    def wait(self, timeout: float | None = None) -> Result:
        """Wait for the exit; the Result holds the stderr and unread stdout."""
        finished = self._chan.status_event.wait(timeout)
        rest = bytearray(self._buffer)
        self._buffer = b""
        if finished:
            _drain(self._chan.recv, rest)
            self._stderr.join()
        code = self._chan.recv_exit_status() if finished else TIMEOUT_EXIT
        self._chan.close()
        return self._result(code, bytes(rest), timed_out=not finished)

    def kill(self) -> None:
        """Close the channel; the command gets EOF/SIGPIPE (a SQL session ends,
        and its locks with it)."""
        self._chan.close()

    def _result(self, code: int, out: bytes, timed_out: bool = False) -> Result:
        return Result(
            self.host,
            self.command,
            code,
            out.decode(errors="replace"),
            bytes(self._err).decode(errors="replace"),
            timed_out=timed_out,
        )


def _feed(chan: Any, stdin: bytes | IO[bytes]) -> None:
    try:
        if isinstance(stdin, (bytes, bytearray)):
            chan.sendall(stdin)
        else:
            for block in iter(lambda: stdin.read(_CHUNK), b""):
                chan.sendall(block)
        chan.shutdown_write()
    except OSError:
        pass  # the command ended without reading all of its input

"""A small SSH server for the SSH backend's tests: paramiko's own server side
on one end of a socket pair (no network), running each command with the
local shell as sshd would, and serving SFTP from the local file system."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import paramiko


def _pipe(read: Any, write: Any, close: Any = None) -> threading.Thread:
    def pump() -> None:
        try:
            while data := read(65536):
                write(data)
        except OSError:
            pass
        if close is not None:
            close()

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    return t


def _run(channel: paramiko.Channel, command: str) -> None:
    proc = subprocess.Popen(
        ["sh", "-c", command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,  # what the client sends reaches the command at once
    )
    assert proc.stdin and proc.stdout and proc.stderr
    _pipe(channel.recv, proc.stdin.write, proc.stdin.close)
    outs = [
        _pipe(proc.stdout.read, channel.sendall),
        _pipe(proc.stderr.read, channel.sendall_stderr),
    ]
    code = proc.wait()
    for t in outs:
        t.join()
    proc.stdout.close()
    proc.stderr.close()
    channel.send_exit_status(code)
    channel.close()


class _Handle(paramiko.SFTPHandle):
    def chattr(self, attr: paramiko.SFTPAttributes) -> int:
        if attr.st_mode is not None:
            os.chmod(self.filename, attr.st_mode & 0o7777)
        return paramiko.SFTP_OK


class _Files(paramiko.SFTPServerInterface):
    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> Any:
        fd = os.open(path, flags, 0o644)
        handle = _Handle(flags)
        handle.filename = path
        handle.writefile = handle.readfile = os.fdopen(fd, "r+b" if flags & os.O_RDWR else "wb")
        return handle

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        if attr.st_mode is not None:
            os.chmod(path, attr.st_mode & 0o7777)
        return paramiko.SFTP_OK

    def stat(self, path: str) -> Any:
        return paramiko.SFTPAttributes.from_stat(os.stat(path))


class _Server(paramiko.ServerInterface):
    def __init__(self, allowed: paramiko.PKey) -> None:
        self.allowed = allowed

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = key.get_base64() == self.allowed.get_base64()
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        threading.Thread(target=_run, args=(channel, command.decode()), daemon=True).start()
        return True


@contextmanager
def serving(host_key: paramiko.PKey, client_key: paramiko.PKey) -> Iterator[socket.socket]:
    """The client's end of a socket pair, with an SSH server on the other."""
    client, server = socket.socketpair()
    t = paramiko.Transport(server)
    t.add_server_key(host_key)
    t.set_subsystem_handler("sftp", paramiko.SFTPServer, _Files)
    t.start_server(event=threading.Event(), server=_Server(client_key))
    try:
        yield client
    finally:
        t.close()

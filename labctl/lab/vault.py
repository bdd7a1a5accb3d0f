"""Secrets labctl generates for a lab: files 0600 in the lab's secrets/ folder.

A secret is read from its file when needed and handed to a guest on a
command's stdin or over SFTP; it never goes on a command line, into a
rendered file, or into labctl's output.
"""

from __future__ import annotations

import secrets
import string
from pathlib import Path

from labctl.lab.home import LabPaths
from labctl.local.fsutil import atomic_write

_ALPHABET = string.ascii_letters + string.digits


def secret_path(paths: LabPaths, name: str) -> Path:
    return paths.secrets / name


def existing_password(paths: LabPaths, name: str) -> str | None:
    """A secret made before, or None: for readers, which never create one."""
    try:
        return secret_path(paths, name).read_text().strip() or None
    except FileNotFoundError:
        return None


def password(paths: LabPaths, name: str, length: int = 24) -> str:
    """The lab's password `name`, made (and written 0600) on first use."""
    path = secret_path(paths, name)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = "".join(secrets.choice(_ALPHABET) for _ in range(length))
    atomic_write(path, value + "\n")
    return value


def ssh_keypair(paths: LabPaths, name: str) -> tuple[bytes, str]:
    """The lab's SSH key pair `name` (ed25519, OpenSSH format): private key
    bytes (kept 0600 in secrets/) and the public key line; made on first use."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = secret_path(paths, name)
    try:
        private = path.read_bytes()
        key = serialization.load_ssh_private_key(private, password=None)
    except FileNotFoundError:
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        atomic_write(path, private)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, f"{public.decode()} labctl-{paths.name}-{name}"

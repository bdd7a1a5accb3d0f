"""Secrets made once and kept 0600, never made by a reader; and what a shell
completes (from lab.json files only, never an error)."""

from __future__ import annotations

import os
from pathlib import Path

from labctl.lab import vault
from labctl.lab.home import LabPaths


def test_a_password_is_made_once_0600_and_readers_never_make_one(tmp_path: Path) -> None:
    paths = LabPaths(tmp_path / "lab")
    assert vault.existing_password(paths, "pw") is None
    assert not paths.secrets.exists()  # asking made nothing
    made = vault.password(paths, "pw")
    assert len(made) == 24 and made.isalnum()
    assert vault.password(paths, "pw") == made == vault.existing_password(paths, "pw")
    assert oct(os.stat(vault.secret_path(paths, "pw")).st_mode & 0o777) == "0o600"
    assert oct(paths.secrets.stat().st_mode & 0o777) == "0o700"


def test_an_ssh_key_pair_is_made_once_and_read_back(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    paths = LabPaths(tmp_path / "lab")
    private, public = vault.ssh_keypair(paths, "key")
    again, public_again = vault.ssh_keypair(paths, "key")
    assert (again, public_again) == (private, public)
    assert public.startswith("ssh-ed25519 ") and public.endswith(" labctl-lab-key")
    serialization.load_ssh_private_key(private, password=None)  # a key OpenSSH reads

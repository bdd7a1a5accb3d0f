"""A VM box is here or can be fetched before anything starts (providers.base)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labctl.errors import LabctlError

from ...conftest import require


@pytest.fixture
def vagrant_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "vagrant.d"
    monkeypatch.setenv("VAGRANT_HOME", str(home))
    return home


def test_a_box_that_is_here_is_enough(vagrant_home: Path, monkeypatch) -> None:
    from labctl.providers import base as box

    (vagrant_home / "boxes" / "debian-VAGRANTSLASH-bookworm64" / "0" / "libvirt").mkdir(
        parents=True
    )
    monkeypatch.setenv("VAGRANT_SERVER_URL", "http://127.0.0.1:1")  # nothing listens
    box.check_vm_box("debian/bookworm64", "libvirt")
    with pytest.raises(LabctlError):
        box.check_vm_box("debian/bookworm64", "virtualbox")  # here for libvirt only


def test_a_box_neither_here_nor_downloadable_fails_before_anything(
    vagrant_home: Path, monkeypatch
) -> None:
    from labctl.providers import base as box

    monkeypatch.setenv("VAGRANT_SERVER_URL", "http://127.0.0.1:1")
    with pytest.raises(LabctlError) as exc:
        box.check_vm_box("debian/bookworm64", "libvirt")
    assert exc.value.exit_code == 1
    assert exc.value.message == (
        "box 'debian/bookworm64' for libvirt is not on this host and "
        "http://127.0.0.1:1 cannot be reached"
    )
    assert exc.value.hint and "vagrant box add debian/bookworm64" in exc.value.hint


def test_a_box_server_that_answers_is_left_to_vagrant(vagrant_home: Path, monkeypatch) -> None:
    import socket

    from labctl.providers import base as box

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        monkeypatch.setenv("VAGRANT_SERVER_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
        box.check_vm_box("debian/bookworm64", "libvirt")  # downloadable: Vagrant will fetch it


def test_up_without_a_box_stops_before_anything_starts(
    cli, home: Path, vagrant_home: Path, monkeypatch
) -> None:
    from labctl.providers import libvirt

    require(shutil.which("vagrant"), "vagrant is not installed")
    require(libvirt.plugin_installed(), "vagrant-libvirt is not installed")
    monkeypatch.setenv("VAGRANT_SERVER_URL", "http://127.0.0.1:1")
    done = cli("up", "nodes", "--provider", "libvirt", "--box", "debian/bookworm64")
    assert done.code == 1
    assert "is not on this host and http://127.0.0.1:1 cannot be reached" in done.stderr
    assert len(done.stderr) < 600  # a line and a hint, not Vagrant's page
    assert not (home / "nodes").exists()

"""The host's package cache (lab.pkgcache): its hits read from its own log,
its port, its configuration, and that it acts only on its own process."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
from pathlib import Path

import pytest

from labctl.errors import LabctlError, SpecError
from labctl.lab import pkgcache
from labctl.lab.pkgcache import PackageCache

from ..captured import load


def test_a_second_guests_download_is_a_hit_in_the_caches_own_log() -> None:
    stats = pkgcache.stats_of(load("cache/apt-cacher-log.txt").stdout)
    # sl's .deb: fetched once, sent twice; the index files are not counted
    assert stats == pkgcache.Stats(hits=1, misses=1, bytes_served=2 * 13402, bytes_fetched=13436)


def test_lines_that_are_not_transfers_are_skipped() -> None:
    log = "garbage\n1|X|5|c|a.deb\n1|O|many|c|a.deb\n1|O|7|c|pool/a.deb\n"
    assert pkgcache.stats_of(log) == pkgcache.Stats(hits=1, misses=0, bytes_served=7)


@pytest.mark.parametrize("text", ["80", "32768", "65535", "x", "٣١٤٢", "-1", "3142 1"])
def test_a_port_apt_cacher_ng_cannot_listen_on_is_refused(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv("LABCTL_CACHE_PORT", text)
    with pytest.raises(SpecError, match="LABCTL_CACHE_PORT"):
        pkgcache.port()


def test_the_port_is_apt_cacher_ngs_own_unless_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABCTL_CACHE_PORT", raising=False)
    assert pkgcache.port() == 3142
    monkeypatch.setenv("LABCTL_CACHE_PORT", "32767")
    assert pkgcache.port() == 32767


def test_the_cache_lives_in_the_host_wide_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LABCTL_HOST_DIR", str(tmp_path))
    assert PackageCache.locate().root == tmp_path / "apt-cache"


def test_its_configuration_keeps_everything_in_its_folder(tmp_path: Path) -> None:
    cache = PackageCache(tmp_path)
    cache.write_config(3150)
    conf = (cache.conf / "acng.conf").read_text()
    assert f"CacheDir: {cache.files}\n" in conf and f"LogDir: {cache.logs}\n" in conf
    assert f"PidFile: {cache.pidfile}\n" in conf and "Port: 3150\n" in conf
    assert "BindAddress" not in conf  # every interface: each provider's guests reach another
    assert (cache.conf / "backends_debian").read_text() == "http://deb.debian.org/debian/\n"
    assert cache.running_port() == 3150


def test_a_pid_file_naming_another_program_is_not_the_cache(tmp_path: Path) -> None:
    cache = PackageCache(tmp_path)
    cache.pidfile.write_text(f"{os.getpid()}\n")  # this test runner, not apt-cacher-ng
    assert cache.pid() is None
    assert cache.stop() is False  # so stop sends it nothing
    assert not cache.state().running


def test_an_empty_folder_is_a_stopped_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABCTL_CACHE_PORT", "3151")
    state = PackageCache(tmp_path / "none").state()
    assert (state.running, state.pid, state.port, state.size) == (False, None, 3151, 0)
    assert state.stats == pkgcache.Stats()


def test_a_taken_port_is_refused_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/sbin/{name}")
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for port in random.sample(range(20000, 32768), 50):  # below the kernel's ephemeral
            with contextlib.suppress(OSError):
                held.bind(("127.0.0.1", port))
                break
        held.listen()
        monkeypatch.setenv("LABCTL_CACHE_PORT", str(port))
        with pytest.raises(LabctlError, match=f"port {port} is taken"):
            PackageCache(tmp_path).start()
    assert not (tmp_path / "conf").exists()  # nothing written


def test_without_apt_cacher_ng_the_error_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-cacher-ng on it
    monkeypatch.setenv("LABCTL_CACHE_PORT", "3152")
    with pytest.raises(LabctlError) as raised:
        PackageCache(tmp_path / "c").start()
    assert raised.value.hint == "apt-get install apt-cacher-ng"
    assert not (tmp_path / "c").exists()

"""Which machines of a lab are up and how to reach them.

`vagrant ssh-config` costs a second or more a call, so it is asked once per
lab and cached in the lab folder until the machines change: the cache is keyed
by the Vagrant ids of the lab's machines and the mtimes of their keys. labctl's
own lifecycle commands drop the cache; a stale one (a machine halted with plain
vagrant) is refreshed when a connection to it fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from labctl import process
from labctl.errors import VagrantError
from labctl.fsutil import atomic_write
from labctl.home import LabPaths
from labctl.provider_state import recorded_ids
from labctl.transport.interface import Endpoint

if TYPE_CHECKING:
    from labctl.vagrant import VagrantDriver


def machine_ids(paths: LabPaths) -> dict[str, str]:
    """machine -> Vagrant's id of its current incarnation, for created machines."""
    return {name: ident for name, (_, ident) in recorded_ids(paths.vagrant_dir).items()}


def fingerprint(paths: LabPaths) -> str:
    """Changes whenever a machine is created, destroyed or given a new key."""
    h = hashlib.sha256()
    for id_file in sorted(paths.vagrant_dir.glob("machines/*/*/id")):
        key = id_file.with_name("private_key")
        for f in (id_file, key):
            with contextlib.suppress(OSError):
                h.update(f"{f}:{f.stat().st_mtime_ns}:".encode())
        with contextlib.suppress(OSError):
            h.update(id_file.read_bytes())
    with contextlib.suppress(OSError):
        h.update(str(paths.vagrantfile.stat().st_mtime_ns).encode())
    return h.hexdigest()


def invalidate(paths: LabPaths) -> None:
    """Forget the cached ssh-config (after up, halt, reload, destroy...)."""
    with contextlib.suppress(FileNotFoundError):
        paths.ssh_config_cache.unlink()


def _load(cache: Path, key: str) -> dict[str, Endpoint] | None:
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return None
    if data.get("fingerprint") != key:
        return None
    try:
        return {name: Endpoint(**p) for name, p in data["machines"].items()}
    except (KeyError, TypeError, AttributeError):
        return None  # written by another labctl version: ask Vagrant again


def _save(cache: Path, key: str, params: dict[str, Endpoint]) -> None:
    atomic_write(
        cache,
        json.dumps({"fingerprint": key, "machines": {n: asdict(p) for n, p in params.items()}}),
    )


def ask_vagrant(driver: VagrantDriver, running: Sequence[str], every: bool) -> dict[str, Endpoint]:
    """ssh-config of the machines the provider says run (`every`: that is all
    of the lab's, so one call can answer; else one call each, as Vagrant
    refuses the all-machines form while some are not running). Each of them is
    in the answer, or Vagrant's own error for it is raised."""
    found: dict[str, Endpoint] = {}
    if every:
        with contextlib.suppress(VagrantError):  # each one is asked below
            found = driver.ssh_config()
    missing = [m for m in running if m not in found]
    if missing:
        with process.interruptible(), ThreadPoolExecutor(max_workers=min(8, len(missing))) as pool:
            for params in pool.map(driver.ssh_config, missing):
                found.update(params)
    return found


def endpoints(
    paths: LabPaths, running: Sequence[str], every: bool, refresh: bool = False
) -> dict[str, Endpoint]:
    """machine -> how to reach it over SSH, for the machines the provider says
    run (`every`: all the lab's); cached, each carrying the Vagrant id of the
    machine's incarnation."""
    key = fingerprint(paths)
    found = None if refresh else _load(paths.ssh_config_cache, key)
    # an empty answer is not kept: the machines may have been started since
    if not found:
        from labctl.vagrant import VagrantDriver

        found = ask_vagrant(VagrantDriver(paths.root), running, every)
        _save(paths.ssh_config_cache, key, found)
    ids = machine_ids(paths)
    return {name: replace(ep, machine_id=ids.get(name, "")) for name, ep in found.items()}

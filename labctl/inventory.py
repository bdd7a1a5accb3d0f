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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from labctl.errors import VagrantError
from labctl.home import LabPaths
from labctl.transport import Endpoint
from labctl.vagrant import SshParams, VagrantDriver


def machine_ids(paths: LabPaths) -> dict[str, str]:
    """machine -> Vagrant's id of its current incarnation, for created machines."""
    ids: dict[str, str] = {}
    for id_file in sorted(paths.vagrant_dir.glob("machines/*/*/id")):
        with contextlib.suppress(OSError):
            ids[id_file.parent.parent.name] = id_file.read_text().strip()
    return ids


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


def _load(cache: Path, key: str) -> dict[str, SshParams] | None:
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return None
    if data.get("fingerprint") != key:
        return None
    return {name: SshParams(**p) for name, p in data["machines"].items()}


def _save(cache: Path, key: str, params: dict[str, SshParams]) -> None:
    cache.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(
        json.dumps({"fingerprint": key, "machines": {n: asdict(p) for n, p in params.items()}})
    )
    tmp.replace(cache)


def ask_vagrant(driver: VagrantDriver) -> dict[str, SshParams]:
    """ssh-config of every running machine: one call, or one per running machine
    when some are not running (Vagrant then refuses the all-machines form)."""
    try:
        return driver.ssh_config()
    except VagrantError:
        running = [m.name for m in driver.status() if m.state == "running"]
    found: dict[str, SshParams] = {}
    if running:
        with ThreadPoolExecutor(max_workers=min(8, len(running))) as pool:
            for params in pool.map(driver.ssh_config, running):
                found.update(params)
    return found


def ssh_params(paths: LabPaths, refresh: bool = False) -> dict[str, SshParams]:
    """machine -> SSH parameters, for the lab's running machines (cached)."""
    key = fingerprint(paths)
    if not refresh:
        cached = _load(paths.ssh_config_cache, key)
        if cached is not None:
            return cached
    params = ask_vagrant(VagrantDriver(paths.root))
    _save(paths.ssh_config_cache, key, params)
    return params


def endpoints(paths: LabPaths, refresh: bool = False) -> dict[str, Endpoint]:
    """machine -> Endpoint (SSH parameters plus the machine's Vagrant id)."""
    ids = machine_ids(paths)
    return {
        name: Endpoint(name, p.host, p.port, p.user, p.key_file, ids.get(name, ""))
        for name, p in ssh_params(paths, refresh).items()
    }

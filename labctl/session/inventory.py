"""Which machines of a lab are up and how to reach them.

`vagrant ssh-config` costs a second or more a call, so it is asked once per
lab and cached in the lab folder until the machines change: the cache is keyed
by the Vagrant ids of the lab's machines and the mtimes of their keys. labctl's
own lifecycle commands drop the cache and fill it again for the machines left
running; a stale one (a machine halted with plain vagrant) is refreshed when a
connection to it fails.

Readers started together (parallel CI jobs) must not all ask Vagrant: each
vagrant process locks the machines it loads, so the others fail with "machine
is locked", and 28 Ruby processes at once take a 2-core host a minute. One
reader at a time fills the cache, under a lock file in the lab's folder; the
others wait for it and take its answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from labctl import providers
from labctl.errors import Interrupted, LabBusy, LabctlError, VagrantBusy, VagrantError
from labctl.lab.home import LabPaths
from labctl.lab.spec import LabSpec
from labctl.local import fsutil, process
from labctl.local.deadline import Deadline
from labctl.providers import states as provider_state
from labctl.providers.base import run_tool
from labctl.providers.states import recorded_ids
from labctl.transport.interface import Endpoint

if TYPE_CHECKING:
    from labctl.vagrant.driver import VagrantDriver


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


def read_cache(cache: Path, key: str) -> dict[str, Endpoint] | None:
    """The endpoints the cache holds for `key` (fingerprint()), if it holds an answer."""
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
    fsutil.atomic_write(
        cache,
        json.dumps({"fingerprint": key, "machines": {n: asdict(p) for n, p in params.items()}}),
    )


def _save_failure(cache: Path, key: str, exc: VagrantError | VagrantBusy) -> None:
    """Vagrant's refusal, kept for the readers that waited for it (never a
    warm cache: the next reader to come asks again)."""
    if isinstance(exc, VagrantBusy):
        kind, detail = "busy", exc.machine
    else:
        kind, detail = "vagrant", exc.error_class
    failed = {"kind": kind, "message": exc.message, "hint": exc.hint or "", "detail": detail}
    fsutil.atomic_write(cache, json.dumps({"fingerprint": key, "failed": failed}))


def _failure(cache: Path, key: str) -> VagrantError | VagrantBusy | None:
    """The refusal the last asker met, if that is what the cache holds."""
    try:
        data = json.loads(cache.read_text())
        failed = data["failed"] if data.get("fingerprint") == key else None
        if not failed:
            return None
        message, hint, detail = failed["message"], failed["hint"] or None, failed["detail"]
        if failed["kind"] == "busy":
            return VagrantBusy(message, hint, machine=detail)
        return VagrantError(message, hint, error_class=detail)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def told_by_provider(paths: LabPaths, running: Sequence[str]) -> dict[str, Endpoint] | None:
    """The running machines' endpoints from their provider's own tool, where
    it can tell them as Vagrant would (docker); None: ask Vagrant."""
    recorded = recorded_ids(paths.vagrant_dir)
    made_by = {recorded[m][0] for m in running if m in recorded}
    if not running or len(made_by) != 1 or any(m not in recorded for m in running):
        return None
    (name,) = made_by
    if name not in providers.PROVIDERS:
        return None
    ids = {m: recorded[m][1] for m in running}
    return providers.get(name).endpoints(ids, paths.vagrant_dir, run_tool)


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


# Which answer a reader found in the cache (inode, mtime): every answer is a
# new file (atomic_write), so another one means another reader asked since.
Stamp = tuple[int, int] | None


def _stamp(cache: Path) -> Stamp:
    try:
        st = cache.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)


@contextlib.contextmanager
def _one_asker(paths: LabPaths, deadline: Deadline) -> Iterator[None]:
    """The lab's asker lock, waited for as long as a question to Vagrant may take."""
    limit = deadline.cap("quick")

    def busy() -> LabBusy:
        return LabBusy(
            f"lab {paths.name!r}: another labctl has been asking Vagrant for the "
            f"machines' SSH addresses for {round(limit, 1):g} s",
            hint="wait for it to finish, then try again",
        )

    try:
        paths.state.mkdir(mode=0o700, exist_ok=True)  # never the lab folder itself
    except FileNotFoundError:
        raise LabctlError(
            f"lab {paths.name!r} is gone: its folder {paths.root} was removed"
        ) from None
    with fsutil.exclusive(paths.ssh_config_lock, limit, busy):
        yield


def _fill(
    paths: LabPaths,
    running: Sequence[str],
    every: bool,
    deadline: Deadline,
    refresh: bool = False,
    seen: Stamp = None,
) -> dict[str, Endpoint]:
    """The cache's answer, Vagrant asked by one reader at a time. One that
    waited takes the answer of the one it waited for, Vagrant's refusal too:
    an answer given since it `seen` the cache (any answer but a refusal, when
    it need not `refresh`)."""
    cache = paths.ssh_config_cache
    with _one_asker(paths, deadline):
        key = fingerprint(paths)
        given_since = _stamp(cache) != seen
        found = read_cache(cache, key)
        if found and (given_since or not refresh):
            return found
        refused = _failure(cache, key) if given_since else None
        if refused is not None:
            raise refused
        from labctl.vagrant.driver import VagrantDriver

        try:
            found = told_by_provider(paths, running) or ask_vagrant(
                VagrantDriver(paths.root, deadline=deadline), running, every
            )
        except (VagrantError, VagrantBusy) as exc:
            _save_failure(cache, key, exc)
            raise
        if found:
            _save(cache, key, found)
        else:  # an empty answer is not kept: the machines may have been started since
            invalidate(paths)
        return found


def endpoints(
    paths: LabPaths,
    running: Sequence[str],
    every: bool,
    refresh: bool = False,
    deadline: Deadline | None = None,
) -> dict[str, Endpoint]:
    """machine -> how to reach it over SSH, for the machines the provider says
    run (`every`: all the lab's); cached, each carrying the Vagrant id of the
    machine's incarnation. `deadline` bounds the wait for another reader's
    answer and Vagrant's own."""
    found = None if refresh else read_cache(paths.ssh_config_cache, fingerprint(paths))
    if not found:
        seen = _stamp(paths.ssh_config_cache)
        found = _fill(paths, running, every, deadline or Deadline(), refresh, seen)
    ids = machine_ids(paths)
    return {name: replace(ep, machine_id=ids.get(name, "")) for name, ep in found.items()}


def warm(paths: LabPaths, spec: LabSpec, deadline: Deadline | None = None) -> None:
    """Fill the cache after a change of the lab (up, reload, resume...), while
    the writer still holds the lab: the readers that follow it (CI jobs
    started together) find the answer waiting. Best effort: a reader that
    finds none asks, and reports what Vagrant says."""
    try:
        running = provider_state.ask([(paths, spec)])[0].running()
        if running:
            endpoints(paths, running, len(running) == len(spec.machines), deadline=deadline)
    except Interrupted:
        raise
    except LabctlError:
        pass

"""Pre-flight checks: what this host has for running labs, and how to fix what it lacks."""

from __future__ import annotations

import re
import shutil

from labctl import providers
from labctl.errors import LabctlError
from labctl.lab import pkgcache
from labctl.local import process
from labctl.providers.base import Check

__all__ = ["Check", "run_all"]

MIN_VAGRANT = (2, 2, 19)


def _vagrant() -> Check:
    exe = shutil.which("vagrant")
    if not exe:
        return Check("vagrant", False, "not found", "apt-get install vagrant", required=True)
    out = process.run([exe, "--version"], timeout=60).stdout
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    version = tuple(int(x) for x in m.groups()) if m else (0, 0, 0)
    ok = version >= MIN_VAGRANT
    return Check(
        "vagrant",
        ok,
        out.strip() or "unknown version",
        f"upgrade Vagrant to {'.'.join(map(str, MIN_VAGRANT))} or later",
        required=True,
    )


def run_all() -> list[Check]:
    """Every check, in the order a user would fix them: Vagrant, whether each
    provider is here, then what each has ready (the table's last first:
    docker's box, libvirt's box and KVM), the ssh client, the default provider."""
    here, ready = zip(*(p.checks() for p in providers.PROVIDERS.values()), strict=True)
    checks = [_vagrant(), *(c for found in here for c in found)]
    checks += [c for found in reversed(ready) for c in found]
    checks.append(
        Check(
            "ssh client",
            shutil.which("ssh") is not None,
            "for `vagrant ssh`",
            "apt-get install openssh-client",
        )
    )
    try:
        chosen = providers.choose()
        detail = f"{chosen.name} ({chosen.note})" if chosen.note else chosen.name
        checks.append(Check("default provider", True, detail, ""))
    except Exception as exc:  # detect() explains itself; doctor reports, never raises
        checks.append(
            Check("default provider", False, str(exc), "install one provider above", required=True)
        )
    checks.append(_package_cache())
    return checks


def _package_cache() -> Check:
    """Optional: without the cache, each guest downloads what no box carries."""
    if shutil.which(pkgcache.PROGRAM) is None:
        return Check(
            "package cache", False, "apt-cacher-ng not found", "apt-get install apt-cacher-ng"
        )
    try:
        state = pkgcache.PackageCache.locate().state()
    except LabctlError as exc:
        return Check("package cache", False, exc.message, "unset LABCTL_CACHE_PORT")
    if state.running:
        return Check("package cache", True, f"running on port {state.port}", "")
    return Check(
        "package cache", False, "stopped: each guest downloads for itself", "labctl cache start"
    )

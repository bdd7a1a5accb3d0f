"""What labctl's boxes carry: the roles' package lists (one list, read by the
provision scripts and the box build alike: ROLE_PACKAGES in provision/lib.sh),
the manifest a box is recorded with, and the rule that says whether a box is
current (built from the lists as they are now)."""

from __future__ import annotations

import enum
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from functools import cache

from labctl.errors import LabctlError
from labctl.local.datafiles import data_dir

# the block in lib.sh, between `ROLE_PACKAGES='` and the closing quote
_BLOCK = re.compile(r"^ROLE_PACKAGES='\n(.*?)^'$", re.S | re.M)
_LINE = re.compile(r"([a-z0-9][a-z0-9-]*):((?:\s+[a-z0-9][a-z0-9.+-]*)+)")
MANIFEST_FILE = "labctl-box.json"  # beside a VM box, and in a docker box's /etc/labctl
LABEL_PREFIX = "io.labctl.box."  # a docker box's manifest, as image labels


def parse_role_packages(lib_sh: str) -> dict[str, tuple[str, ...]]:
    """lib.sh's ROLE_PACKAGES block -> role -> its packages, in the file's order."""
    block = _BLOCK.search(lib_sh)
    if not block:
        raise LabctlError("provision/lib.sh has no ROLE_PACKAGES block")
    lists: dict[str, tuple[str, ...]] = {}
    for number, line in enumerate(block.group(1).splitlines(), 1):
        if not line.strip():
            continue
        found = _LINE.fullmatch(line.strip())
        if not found or found.group(1) in lists:
            raise LabctlError(f"lib.sh ROLE_PACKAGES line {number} is not `ROLE: PACKAGE...`")
        lists[found.group(1)] = tuple(found.group(2).split())
    return lists


@cache
def role_packages() -> dict[str, tuple[str, ...]]:
    """The lists this labctl's own provision scripts install from."""
    return parse_role_packages((data_dir("provision") / "lib.sh").read_text())


def lists_digest(lists: dict[str, tuple[str, ...]]) -> str:
    """What a box records of the lists it was built from: a change of any
    role's packages changes it; the order they are written in does not."""
    canonical = json.dumps({role: sorted(p) for role, p in sorted(lists.items())})
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def wanted(lists: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Every package of every role, once, in the lists' order."""
    return tuple(dict.fromkeys(p for packages in lists.values() for p in packages))


@dataclass(frozen=True)
class Manifest:
    """What a box carries, recorded when it was built."""

    lists: str  # lists_digest of the role package lists it was built from
    built: str  # UTC, ISO 8601
    roles: tuple[str, ...]  # the roles whose every package it carries
    packages: dict[str, str] = field(default_factory=dict)  # package -> version

    def fields(self) -> dict[str, str]:
        """Flat strings without spaces: a JSON file's keys, a docker image's labels."""
        return {
            "lists": self.lists,
            "built": self.built,
            "roles": ",".join(self.roles),
            "packages": ",".join(f"{p}={v}" for p, v in sorted(self.packages.items())),
        }

    @classmethod
    def from_fields(cls, found: dict[str, str]) -> Manifest | None:
        """The manifest those fields hold; None when they hold none."""
        if not found.get("lists") or not found.get("built"):
            return None
        pairs = (item.partition("=") for item in found.get("packages", "").split(",") if item)
        return cls(
            lists=found["lists"],
            built=found["built"],
            roles=tuple(r for r in found.get("roles", "").split(",") if r),
            packages={p: v for p, _, v in pairs},
        )

    def to_json(self) -> str:
        return json.dumps(self.fields(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest | None:
        try:
            found = json.loads(text)
        except ValueError:
            return None
        return cls.from_fields(found) if isinstance(found, dict) else None

    def labels(self) -> dict[str, str]:
        return {LABEL_PREFIX + key: value for key, value in self.fields().items()}

    @classmethod
    def from_labels(cls, labels: dict[str, str] | None) -> Manifest | None:
        found = {k.removeprefix(LABEL_PREFIX): v for k, v in (labels or {}).items()}
        return cls.from_fields(found)


def manifest_of(
    lists: dict[str, tuple[str, ...]], versions: dict[str, str], now: float | None = None
) -> Manifest:
    """The manifest of a box built from `lists` with `versions` installed."""
    return Manifest(
        lists=lists_digest(lists),
        built=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        roles=tuple(r for r, packages in lists.items() if all(p in versions for p in packages)),
        packages={p: versions[p] for p in wanted(lists) if p in versions},
    )


class Freshness(enum.Enum):
    CURRENT = "current"  # built from the lists as they are now
    STALE = "stale"  # built from other lists: the roles install what it lacks
    UNRECORDED = "unrecorded"  # no manifest: built by an older labctl, or not by labctl


def freshness(manifest: Manifest | None, lists: dict[str, tuple[str, ...]]) -> Freshness:
    """The staleness rule: a box is current when it records the digest of the
    role package lists as they are now."""
    if manifest is None:
        return Freshness.UNRECORDED
    return Freshness.CURRENT if manifest.lists == lists_digest(lists) else Freshness.STALE


def notice(box: str, state: Freshness, build: str = "labctl box build") -> str | None:
    """The one line `up` prints about a box that is not current (None if it is);
    `build`: the command that rebuilds it."""
    if state is Freshness.CURRENT:
        return None
    why = (
        "was built from older role package lists"
        if state is Freshness.STALE
        else "records no role package lists (built before labctl recorded them)"
    )
    return f"box {box} {why}: the roles will install what it lacks ({build} to rebuild)"


@dataclass(frozen=True)
class BoxInfo:
    """One of labctl's boxes on this host, as `labctl box ls` shows it."""

    provider: str
    name: str
    version: str  # a VM box's version; a docker image's short id
    size: int  # bytes
    state: Freshness
    manifest: Manifest | None

    @property
    def carries(self) -> tuple[str, ...]:
        return self.manifest.roles if self.manifest else ()

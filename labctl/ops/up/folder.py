"""The lab folder: its files staged beside the labs, validated by Vagrant and
moved in (render), or compared with what is there (up's plan)."""

from __future__ import annotations

import contextlib
import functools
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from labctl import providers
from labctl.errors import SpecError
from labctl.lab import hostnet
from labctl.lab.home import LabHome
from labctl.lab.spec import LabSpec
from labctl.ops.up.prepare import Prepared, Purpose, prepare, with_subnets_claimed
from labctl.ops.up.source import Request
from labctl.project import render
from labctl.session import inventory
from labctl.vagrant.driver import VagrantDriver


@dataclass(frozen=True)
class Rendered:
    spec: LabSpec
    path: str
    note: str = ""  # said when the provider is not installed here


def vagrant_validate(folder: Path, ignore_provider: bool = False) -> None:
    """Let Vagrant check the Vagrantfile in `folder` (without the provider, if asked)."""
    VagrantDriver(folder).validate(ignore_provider)


@contextlib.contextmanager
def staged(
    home: LabHome,
    spec: LabSpec,
    files: Mapping[str, str | bytes],
    validate: Callable[[Path], None] = vagrant_validate,
) -> Iterator[Path]:
    """The rendered files in a temporary folder beside the labs, validated by
    Vagrant; gone afterwards, whether the caller installed them or not."""
    staging = render.staging_folder(spec.name, home.root)
    try:
        render.write_tree(files, staging)
        validate(staging)
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write(
    home: LabHome, spec: LabSpec, files: Mapping[str, str | bytes], ignore_provider: bool = False
) -> str:
    """Stage the rendered files, let Vagrant validate them, then move them in."""
    paths = home.paths(spec.name)
    validate = functools.partial(vagrant_validate, ignore_provider=ignore_provider)
    with staged(home, spec, files, validate) as staging:
        render.install(staging, paths.root)
    inventory.invalidate(paths)
    return str(paths.root)


def stale(root: Path, files: Mapping[str, str | bytes]) -> bool:
    """Whether the lab folder differs from the files rendered for it (by a
    newer labctl, or edited by hand)."""
    for rel, content in files.items():
        try:
            have = (root / rel).read_bytes()
        except OSError:
            return True
        if have != (content if isinstance(content, bytes) else content.encode()):
            return True
    return False


def render_text(home: LabHome, lab: str | None, name: str | None, request: Request) -> str:
    """The Vagrantfile `render` would write, without writing anything."""
    spec = prepare(home, lab, name, request, Purpose.RENDER).spec
    return render.render_vagrantfile(spec, providers.get(spec.provider).accel(spec))


def render_lab(home: LabHome, lab: str | None, name: str | None, request: Request) -> Rendered:
    """Write (or rewrite) the lab folder and validate it with Vagrant. Machines
    that exist are never dropped from it: that is `up`'s plan to apply. A
    provider this host lacks is no obstacle (a lab prepared for a teammate's
    laptop): Vagrant validates without it, and the note says `up` needs it."""
    again = functools.partial(prepare, home, lab, name, request, Purpose.RENDER)
    first = again()  # bad input: no lock taken
    with home.lock(first.spec.name, "render"):
        prepared = with_subnets_claimed(home, again)
        spec = prepared.spec
        missing = not providers.get(spec.provider).installed()
        try:
            path = _render_prepared(home, prepared, missing)
        except BaseException:
            if not home.paths(spec.name).root.exists():  # nothing written: the subnet is free
                hostnet.SubnetClaims().release(home.root, spec.name)
            raise
    if not missing:
        return Rendered(spec, path)
    note = (
        f"provider {spec.provider} is not installed here: validated without it; "
        f"labctl up will need it ({providers.get(spec.provider).install_hint})"
    )
    return Rendered(spec, path, note)


def _render_prepared(home: LabHome, prepared: Prepared, missing: bool) -> str:
    touched = [s for s in prepared.changes if s.machine in prepared.created]
    if touched:
        raise SpecError(
            "the change is for machines that exist ("
            + ", ".join(f"{s.machine}: {s.action}" for s in touched)
            + "): render would record it without applying it",
            hint="labctl up applies it (see the plan first with --dry-run)",
        )
    files = prepared.files or _rerendered(home, prepared.spec)
    return _write(home, prepared.spec, files, ignore_provider=missing)


def _rerendered(home: LabHome, spec: LabSpec) -> dict[str, str | bytes]:
    """A lab's folder rendered again from its record: its lab.yaml and the
    user's scripts are taken from the folder itself."""
    root = home.paths(spec.name).root
    try:
        lab_yaml = (root / "lab.yaml").read_text()
        scripts = {
            p.script: (root / "provision" / p.script).read_bytes()
            for m in spec.machines
            for p in m.provisioners
            if p.script.startswith("user/")
        }
    except OSError as exc:
        raise SpecError(f"lab {spec.name!r} is missing a file: {exc}") from exc
    return render.lab_files(spec, lab_yaml, scripts, providers.get(spec.provider).accel(spec))

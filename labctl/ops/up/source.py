"""What a command asks for, read: the lab file it names, or the lab file a
built-in topology renders to (which `init` writes out), and the lab already
recorded under that name."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl import providers
from labctl.errors import SpecError
from labctl.lab.home import LabHome
from labctl.lab.hostpaths import check_path_text
from labctl.lab.spec import LabSpec, Origin, check_name, check_subnet
from labctl.labfile import topologies


@dataclass(frozen=True)
class Request:
    """What the command line asked for: a lab file, or a topology's parameters
    (count, agents, ...), and lab-wide values that win over the file's."""

    file: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    provider: str | None = None
    box: str | None = None
    subnet: str | None = None
    cpus: int | None = None
    memory: int | None = None
    libvirt_uri: str | None = None
    # host paths beyond the lab file's folder it may name (--allow-host-path)
    allow_host_paths: tuple[str, ...] = ()

    def overrides(self) -> dict[str, Any]:
        keys = ("provider", "box", "subnet", "cpus", "memory", "libvirt_uri")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


def _from_file(
    home: LabHome, lab: str | None, name: str | None, request: Request
) -> tuple[str, Any, Origin, LabSpec | None]:
    from labctl.labfile import schema

    if lab:
        raise SpecError(f"give a lab file (-f) or a lab or topology ({lab}), not both")
    if request.params:
        flags = ", ".join("--" + k.replace("_", "-") for k in request.params)
        raise SpecError(f"{flags}: options of a built-in topology; a lab file says it itself")
    if not request.file:
        raise SpecError("-f: give a lab file's path (it was empty)")
    check_path_text(request.file, "lab file")
    path = Path(request.file).expanduser()
    # the path reaches the lab's files (lab.json, comments): no control
    # character, however it was reached
    check_path_text(str(path.resolve()), "lab file")
    parsed = schema.read(path, request.file)
    stem = re.sub(r"[^a-z0-9-]", "-", path.stem.lower())
    lab_name = check_name(name or parsed.model.name or stem)
    existing = home.load(lab_name) if home.exists(lab_name) else None
    origin = Origin("file", str(path.resolve()))
    if existing and path.resolve() == (home.paths(lab_name).root / "lab.yaml").resolve():
        origin = existing.origin  # the lab folder's own copy of its file
    elif existing and existing.origin != origin and name is None:
        # two files that name the same lab (or none, and share a stem): never
        # let one quietly replace the other's machines
        raise SpecError(
            f"lab {lab_name!r} exists and comes from {existing.origin.label}, not {path}",
            hint=f"give this lab another name (`name:` or --name), or --name {lab_name} "
            "to apply this file to that lab",
        )
    return lab_name, parsed, origin, existing


def source(
    home: LabHome, lab: str | None, name: str | None, request: Request
) -> tuple[str, Any, Origin, LabSpec | None] | LabSpec:
    """(lab name, parsed lab file, origin, existing lab) of `up|render [LAB] [-f FILE]`;
    or the existing lab itself when it is to come up as recorded."""
    # an empty value given is a bad one, never "not given" (which would mean
    # the only lab, an automatic subnet, the detected provider)
    for value, check in ((lab, check_name), (name, check_name)):
        if value is not None:
            check(value)
    if request.subnet is not None:
        check_subnet(request.subnet)
    if request.provider is not None:
        providers.get(request.provider)
    if request.file is not None:
        return _from_file(home, lab, name, request)
    if not lab:
        lab = home.resolve(None)  # the only lab there is, or the error that says so
    asked = bool(request.params or request.overrides())
    if name or not home.exists(lab):
        if not name and lab not in topologies.TOPOLOGIES:
            labs = home.names()
            raise SpecError(
                f"unknown lab or topology {lab!r} (topologies: {', '.join(topologies.TOPOLOGIES)}"
                + (f"; labs: {', '.join(labs)})" if labs else ")")
            )
        topology, lab_name = topologies.check_topology(lab), check_name(name or lab)
        existing = home.load(lab_name) if home.exists(lab_name) else None
        if existing and existing.origin.name != topology:
            raise SpecError(
                f"lab {lab_name!r} exists, from {existing.origin.label}, not {topology}"
            )
        if existing and not asked:
            return existing
    else:
        lab_name = lab
        existing = home.load(lab)
        if existing.origin.kind == "file" and asked:
            raise SpecError(
                f"lab {lab!r} comes from {existing.origin.label}",
                hint=f"change that file, then: labctl up -f {existing.origin.name}",
            )
        if not asked:
            return existing
        topology = existing.origin.name
    given = dict(request.params)
    for key in ("cpus", "memory"):
        if getattr(request, key) is not None:
            given[key] = getattr(request, key)
    values = topology_values(topology, existing.origin.params if existing else {}, given)
    text = topologies.lab_text(topology, values)
    from labctl.labfile import schema  # pydantic and YAML: only when a lab file is read

    parsed = schema.parse(text, f"{topology}.yaml", Path.cwd())
    return lab_name, parsed, Origin("topology", topology, values), existing


def topology_values(
    topology: str, recorded: dict[str, Any], given: dict[str, Any]
) -> dict[str, Any]:
    """A topology's parameters; a war file given here is made absolute, since
    the lab file it goes into may be read from elsewhere (`init`)."""
    if given.get("jenkins_war"):
        from labctl.roles.jenkins import check_war

        given = {**given, "jenkins_war": check_war(given["jenkins_war"])}
    return topologies.params(topology, recorded, given)


def init_text(topology: str, params: dict[str, Any]) -> str:
    """A built-in topology as an editable lab file (checked as one)."""
    from labctl.labfile import schema

    text = topologies.lab_text(topology, topology_values(topology, {}, params))
    schema.parse(text, f"{topology}.yaml", Path.cwd())
    return text


def init(topology: str, params: dict[str, Any], output: Path, force: bool = False) -> Path:
    """Write a built-in topology's lab file to `output` (never over a file, unless forced)."""
    text = init_text(topology, params)
    try:
        with output.open("w" if force else "x") as fh:
            fh.write(text)
    except FileExistsError:
        raise SpecError(
            f"{output} exists: not overwriting it", hint="--output FILE, or --force"
        ) from None
    except OSError as exc:
        raise SpecError(f"cannot write {output}: {exc.strerror or exc}") from None
    return output

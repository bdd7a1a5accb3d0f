"""Lab files: YAML -> a validated LabSpec, every error with its line.

The schema is a pydantic model (published by `labctl schema` from the same
model); what a schema cannot say (sources that exist, no cycles, names after
`count`, addresses inside the subnet, scripts that exist) is checked after it,
with the path of the offending key, so every error reads
`lab.yaml:LINE: path.to.key: what is wrong`.

Importing this module costs pydantic and PyYAML: only commands that read a
lab file import it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_type_hints

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
    create_model,
)

from labctl import render, roles
from labctl.errors import InvalidField, SpecError
from labctl.spec import (
    PROVIDERS,
    ForwardedPort,
    LabSpec,
    Machine,
    Origin,
    Provisioner,
    check_name,
    check_subnet,
)

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
FIRST_AUTO_IP = 10
USER_SCRIPTS = "user"  # below the lab folder's provision/

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Loc = tuple[str | int, ...]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Port(_Strict):
    """A guest port forwarded to the host's loopback (Vagrant picks another
    host port when this one is taken)."""

    guest: int = Field(ge=1, le=65535)
    host: int = Field(ge=1, le=65535)
    id: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,30}$")] | None = None


class Defaults(_Strict):
    """What every machine gets unless it says otherwise."""

    cpus: int = Field(2, ge=1, le=64)
    memory: int = Field(1024, ge=256, le=262144, description="MiB")


def _options_model(role: str, options: type | None) -> type[BaseModel]:
    """A pydantic model of a role's options dataclass (an empty one for none)."""
    hints = get_type_hints(options) if options else {}
    made: type[BaseModel] = create_model(  # type: ignore[call-overload]
        f"Options_{role.replace('-', '_')}",
        __config__=ConfigDict(extra="forbid"),
        __doc__=(options.__doc__ if options else f"{role} takes no options"),
        **{f.name: (hints[f.name], f.default) for f in (fields(options) if options else ())},
    )
    return made


def _role_item(role: str, options: type | None) -> type[BaseModel]:
    """`- ROLE: {options}`: a one-key mapping."""
    optional: Any = _options_model(role, options) | None
    made: type[BaseModel] = create_model(
        f"Role_{role.replace('-', '_')}",
        __config__=ConfigDict(extra="forbid", populate_by_name=True),
        options=(optional, Field(None, alias=role)),
    )
    return made


def _role_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return "name"
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value)))
    if isinstance(value, BaseModel):  # serialising a model back
        return type(value).model_fields["options"].alias
    return None


_role_name: Any = Literal[tuple(roles.ROLES)]
_ROLE_CHOICES: list[Any] = [Annotated[_role_name, Tag("name")]] + [
    Annotated[_role_item(r.name, r.options), Tag(r.name)] for r in roles.ROLES.values()
]
if TYPE_CHECKING:
    RoleEntry = Any
else:
    RoleEntry = Annotated[
        Union[tuple(_ROLE_CHOICES)],  # noqa: UP007
        Discriminator(
            _role_tag,
            custom_error_type="role",
            custom_error_message="a role is a name or a one-key mapping `ROLE: {options}`; "
            "roles: " + ", ".join(roles.ROLES),
        ),
    ]


class MachineDecl(_Strict):
    """One machine, or `count` alike ones (NAME1, NAME2, ...)."""

    roles: list[RoleEntry] = Field(default_factory=list)
    count: int | None = Field(None, ge=1, le=9)
    cpus: int | None = Field(None, ge=1, le=64)
    memory: int | None = Field(None, ge=256, le=262144, description="MiB")
    box: str | None = Field(None, pattern=r"^\S+$")
    hostname: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,61}$")] | None = None
    ip: int | str | None = Field(
        None, description="the last octet (10), or a whole address inside the lab's subnet"
    )
    provision: list[str] = Field(
        default_factory=list,
        description="the user's own scripts, relative to the lab file; run as root after the roles",
    )
    ports: list[Port] = Field(default_factory=list)


def _lab_options_field(key: str, options: type) -> tuple[Any, Any]:
    model: Any = _options_model(key, options)
    return (model, Field(default_factory=model))


_providers: Any = Literal[PROVIDERS]
LabFileModel: Any = create_model(  # type: ignore[call-overload]
    "LabFile",
    __config__=ConfigDict(extra="forbid"),
    __doc__="A labctl lab: machines with roles on one private network.",
    name=(Name | None, None),
    provider=(_providers | None, None),
    box=(str | None, Field(None, pattern=r"^\S+$")),
    subnet=(str | None, Field(None, pattern=r"^\d{1,3}\.\d{1,3}\.\d{1,3}$")),
    timezone=(str | None, Field(None, pattern=r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")),
    libvirt_uri=(str | None, None),
    defaults=(Defaults, Field(default_factory=lambda: Defaults.model_validate({}))),
    machines=(dict[Name, MachineDecl], Field(min_length=1)),
    **{key: _lab_options_field(key, opts) for key, opts in roles.lab_options().items()},
)


def json_schema() -> dict[str, Any]:
    """The lab file's JSON Schema, for editors."""
    schema: dict[str, Any] = LabFileModel.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "labctl lab file",
    }


# ---------------------------------------------------------------- reading, with lines


@dataclass(frozen=True)
class Parsed:
    """A lab file that passed the schema, and where its keys are."""

    model: Any  # LabFileModel
    node: yaml.Node | None
    filename: str
    base_dir: Path

    def error(self, loc: Loc, message: str) -> SpecError:
        return SpecError(locate(self.node, loc, message, self.filename))


def locate(root: yaml.Node | None, loc: Loc, message: str, filename: str) -> str:
    """`file:LINE: path.to.key: message` for a pydantic-style `loc`. Parts of
    `loc` that are not in the file (union tags) are left out of the path; a
    last part not in the file (a missing key) stays in it."""
    node = root
    line = (root.start_mark.line + 1) if root is not None else 1
    path = ""
    for i, part in enumerate(loc):
        found = None
        key_line = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if str(k.value) == str(part):
                    found, key_line = v, k.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            found = node.value[part]
            key_line = found.start_mark.line + 1
        if found is not None:
            node, line = found, key_line or line
        elif isinstance(node, yaml.ScalarNode) or (i < len(loc) - 1 and part != "[key]"):
            continue  # a union's tag: not a key of the file
        if part == "[key]":
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return f"{filename}:{line}: {path or '(top)'}: {message}"


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    if kind == "string_pattern_mismatch" and "[key]" in error["loc"]:
        return f"invalid machine name {error['input']!r}: a lowercase letter, then up to 30 of a-z, 0-9, '-'"
    msg = str(error["msg"])
    return msg[0].lower() + msg[1:] if msg else kind


_STR_TAG = "tag:yaml.org,2002:str"


def _check_keys(node: yaml.Node | None, filename: str, path: str) -> None:
    """What PyYAML lets through: a key given twice (the last would win
    silently), and a key that is not a string (`on:` is a boolean in YAML)."""
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_keys(item, filename, f"{path}[{i}]")
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[str, int] = {}
    for key, value in node.value:
        name = str(key.value)
        where = f"{path}.{name}" if path else name
        line = key.start_mark.line + 1
        if key.tag != _STR_TAG:
            raise SpecError(
                f"{filename}:{line}: {where}: {name!r} is not read as a name in YAML: quote it"
            )
        if name in seen:
            raise SpecError(f"{filename}:{line}: {where}: given twice (first on line {seen[name]})")
        seen[name] = line
        _check_keys(value, filename, where)


def parse(text: str, filename: str, base_dir: Path) -> Parsed:
    """YAML text -> a lab file model; SpecError `file:LINE: key: problem`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{filename}:{line}: YAML syntax error: {problem}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{filename}:1: (top): a lab file is a mapping with a `machines` key")
    _check_keys(node, filename, "")
    try:
        model = LabFileModel.model_validate(data)
    except ValidationError as exc:
        # an unknown key says more than what it left missing
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        more = len(errors) - 1
        raise SpecError(
            locate(node, tuple(first["loc"]), _message(dict(first)), filename),
            hint=f"{more} more problem{'s' if more > 1 else ''} in the file" if more else None,
        ) from None
    return Parsed(model, node, filename, base_dir)


def read(path: Path) -> Parsed:
    """Parse the lab file at `path`."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read lab file {path}: {exc.strerror or exc}") from None
    return parse(text, path.name, path.resolve().parent)


# ---------------------------------------------------------------- building the spec


@dataclass(frozen=True)
class Resolved:
    """Lab-wide values decided outside the file (options, the existing lab, the host)."""

    name: str
    provider: str
    box: str
    subnet: str
    timezone: str
    lab_id: str
    origin: Origin
    cpus: int | None = None  # --cpus / --memory: over the file's defaults
    memory: int | None = None
    libvirt_uri: str | None = None


@dataclass(frozen=True)
class Built:
    """A spec, the user's scripts to copy into the lab folder, and the
    normalised lab file kept beside lab.json."""

    spec: LabSpec
    scripts: dict[str, bytes]
    normalised: str


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()[:16]


def _script_target(raw: str, base_dir: Path) -> tuple[Path, str]:
    """(the script's path, its path below the lab folder's provision/)."""
    base = base_dir.resolve()
    path = (base / raw).resolve()
    try:
        rel = PurePosixPath(path.relative_to(base).as_posix())
    except ValueError:
        rel = PurePosixPath("ext", path.name)
    # a lab folder's own lab.yaml names its copies: keep their place
    if rel.parts[:2] == ("provision", USER_SCRIPTS):
        rel = PurePosixPath(*rel.parts[2:])
    return path, f"{USER_SCRIPTS}/{rel}"


def _role_names(decl: MachineDecl) -> list[tuple[str, dict[str, str]]]:
    """[(role, options given)] of a machine declaration."""
    found: list[tuple[str, dict[str, str]]] = []
    for entry in decl.roles:
        if isinstance(entry, str):
            found.append((entry, {}))
        else:
            (role,) = entry.model_dump(by_alias=True).keys()
            opts = entry.model_dump(by_alias=True)[role] or {}
            found.append((role, {k: str(v) for k, v in opts.items() if v is not None}))
    return found


def _ip(p: Parsed, key: str, value: int | str, subnet: str) -> int:
    """A machine's `ip` as its last octet, checked against the subnet."""
    loc: Loc = ("machines", key, "ip")
    if isinstance(value, int):
        octet = value
    else:
        try:
            addr = ipaddress.IPv4Address(value)
        except ValueError:
            raise p.error(loc, f"{value!r} is not an IPv4 address") from None
        if addr not in ipaddress.IPv4Network(f"{subnet}.0/24"):
            raise p.error(loc, f"{value} is outside the lab's subnet {subnet}.0/24")
        octet = int(str(addr).rsplit(".", 1)[1])
    if not 2 <= octet <= 254:
        raise p.error(loc, f"{value} is not a usable host address of {subnet}.0/24 (2-254)")
    return octet


def _expand(
    p: Parsed, r: Resolved, existing: LabSpec | None
) -> tuple[list[Machine], dict[str, str], dict[str, Path]]:
    """Machines with names, hostnames, addresses and declared roles (options
    as given); which declaration each came from; the user scripts."""
    model = p.model
    kept_ips = {m.name: int(m.ip.rsplit(".", 1)[1]) for m in existing.machines} if existing else {}
    names: dict[str, str] = {}  # machine -> its key in the file
    planned: list[tuple[str, str, str, int | None]] = []  # (name, key, hostname, fixed octet)
    for key, decl in model.machines.items():
        count = decl.count
        for i in range(1, (count or 1) + 1):
            name = f"{key}{i}" if count else key
            if len(name) > 31:
                raise p.error(
                    ("machines", key, "count"), f"machine name {name!r} is longer than 31"
                )
            if name in names:
                raise p.error(
                    ("machines", key, "count" if count else "[key]"),
                    f"machine name {name!r} is already taken (by {names[name]})",
                )
            names[name] = key
            hostname = f"{decl.hostname}{i}" if decl.hostname and count else decl.hostname or name
            fixed = None
            if decl.ip is not None:
                fixed = _ip(p, key, decl.ip, r.subnet) + i - 1
                if fixed > 254:
                    raise p.error(
                        ("machines", key, "ip"), f"{count} machines from {decl.ip} run past .254"
                    )
            planned.append((name, key, hostname, fixed))
    # explicit addresses first, then those machines had (unless one is
    # claimed explicitly), then the lowest free ones: independent of order
    used: dict[int, str] = {}
    for name, key, _, fixed in planned:
        if fixed is None:
            continue
        if fixed in used:
            raise p.error(("machines", key, "ip"), f"{r.subnet}.{fixed} is taken by {used[fixed]}")
        used[fixed] = name
    octets = {name: fixed for name, _, _, fixed in planned if fixed is not None}
    for name, _, _, fixed in planned:
        kept = kept_ips.get(name)
        if fixed is None and kept is not None and kept not in used:
            used[kept] = name
            octets[name] = kept
    for name, _, _, _ in planned:
        if name not in octets:
            free = next((o for o in range(FIRST_AUTO_IP, 255) if o not in used), None)
            if free is None:
                raise p.error(("machines",), f"more machines than addresses in {r.subnet}.0/24")
            used[free] = name
            octets[name] = free
    hostnames: dict[str, str] = {}
    for name, key, hostname, _ in planned:
        if hostname in hostnames:
            raise p.error(
                ("machines", key, "hostname"),
                f"hostname {hostname!r} is taken by {hostnames[hostname]}",
            )
        hostnames[hostname] = name
    scripts: dict[str, Path] = {}
    machines = []
    for index, (name, key, hostname, _) in enumerate(planned):
        decl = model.machines[key]
        declared = _role_names(decl)
        for i, raw in enumerate(decl.provision):
            path, target = _script_target(raw, p.base_dir)
            if not path.is_file():
                raise p.error(("machines", key, "provision", i), f"no such script: {path}")
            if scripts.get(target, path) != path:
                raise p.error(
                    ("machines", key, "provision", i), f"another script is also called {target}"
                )
            scripts[target] = path
        machines.append(
            Machine(
                name=name,
                hostname=hostname,
                ip=f"{r.subnet}.{octets[name]}",
                cpus=decl.cpus or r.cpus or model.defaults.cpus,
                memory=decl.memory or r.memory or model.defaults.memory,
                box=decl.box or r.box,
                roles=tuple(dict.fromkeys(role for role, _ in declared)),
                options={role: opts for role, opts in declared if opts},
                primary=index == 0,
                ports=tuple(
                    ForwardedPort(port.id or f"port{port.guest}", port.guest, port.host)
                    for port in decl.ports
                ),
            )
        )
    return machines, names, scripts


def _where(p: Parsed, names: dict[str, str]) -> Callable[..., Loc]:
    """machine, then a path inside its declaration -> a loc in the file
    (a role's name becomes its index in `roles`)."""

    def where(machine: str, *rest: str) -> Loc:
        key = names.get(machine, machine)
        loc: list[str | int] = ["machines", key, *rest]
        if len(rest) >= 2 and rest[0] == "roles":
            found = [r for r, _ in _role_names(p.model.machines[key])]
            if rest[1] in found:
                loc.insert(3, found.index(rest[1]))
        return tuple(loc)

    return where


def _common(spec: LabSpec, lib: bytes, source: Path) -> Provisioner:
    hosts = " ".join(f"{x.ip}={x.hostname}" for x in spec.machines)
    script = source / "common.sh"
    return Provisioner(
        "common",
        "common.sh",
        {"LAB_HOSTS": hosts, "LAB_TIMEZONE": spec.timezone},
        digest=_digest(lib, script.read_bytes()),
    )


def build(p: Parsed, r: Resolved, existing: LabSpec | None = None) -> Built:
    """The lab a parsed file describes, with the values decided outside it."""
    model = p.model
    try:
        subnet = check_subnet(r.subnet)
    except SpecError as exc:
        if model.subnet == r.subnet:
            raise p.error(("subnet",), exc.message) from None
        raise
    r = replace(r, subnet=subnet, name=check_name(r.name))
    machines, names, script_paths = _expand(p, r, existing)
    family_opts = {key: getattr(model, key).model_dump() for key in roles.lab_options()}
    jenkins_war = family_opts.get("jenkins", {}).get("war")
    if jenkins_war:
        war = (p.base_dir / jenkins_war).expanduser().resolve()
        if not war.is_file():
            raise p.error(("jenkins", "war"), f"no such file: {war}")
        family_opts["jenkins"]["war"] = str(war)
    spec = LabSpec(
        id=r.lab_id,
        name=r.name,
        provider=r.provider,
        box=r.box,
        subnet=subnet,
        origin=r.origin,
        machines=tuple(machines),
        timezone=r.timezone,
        libvirt_uri=r.libvirt_uri,
        mysql=family_opts.get("mysql", {}),
        jenkins=family_opts.get("jenkins", {}),
    )
    try:
        resolved = roles.resolve(spec, _where(p, names))
    except InvalidField as exc:
        raise p.error(exc.loc, exc.message) from None
    spec = replace(
        spec,
        machines=tuple(
            replace(m, options={**m.options, **resolved.get(m.name, {})}) for m in spec.machines
        ),
    )
    source = render.data_dir("provision")
    lib = (source / "lib.sh").read_bytes()
    contents = {target: path.read_bytes() for target, path in script_paths.items()}

    def steps(m: Machine) -> tuple[Provisioner, ...]:
        own = [
            replace(s, digest=_digest(lib, (source / s.script).read_bytes()))
            for s in roles.provisioners(spec, m)
        ]
        decl = model.machines[names[m.name]]
        user = []
        for raw in decl.provision:
            _, target = _script_target(raw, p.base_dir)
            user.append(
                Provisioner(
                    f"script:{target.split('/', 1)[1]}", target, digest=_digest(contents[target])
                )
            )
        return (_common(spec, lib, source), *own, *user)

    spec = replace(spec, machines=tuple(replace(m, provisioners=steps(m)) for m in spec.machines))
    return Built(spec, contents, normalise(p, spec))


def normalise(p: Parsed, spec: LabSpec) -> str:
    """The lab file as given, with the lab-wide values decided and the scripts
    pointing at their copies in the lab folder (so the folder's lab.yaml
    works on its own: `labctl up -f LABFOLDER/lab.yaml`)."""
    data = p.model.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
    data = {
        "name": spec.name,
        "provider": spec.provider,
        "box": spec.box,
        "subnet": spec.subnet,
        "timezone": spec.timezone,
        **{
            k: v
            for k, v in data.items()
            if k not in ("name", "provider", "box", "subnet", "timezone")
        },
    }
    data["defaults"] = p.model.defaults.model_dump()
    for key, decl in p.model.machines.items():
        out = data["machines"][key]
        out["roles"] = [role if not opts else {role: opts} for role, opts in _role_names(decl)]
        if decl.provision:
            out["provision"] = [
                f"provision/{_script_target(raw, p.base_dir)[1]}" for raw in decl.provision
            ]
    if spec.jenkins.get("war"):
        data.setdefault("jenkins", {})["war"] = spec.jenkins["war"]
    header = f"# Lab {spec.name}, from {spec.origin.label}; normalised by labctl.\n"
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def dump_json(value: Any) -> str:
    return json.dumps(value, indent=2) + "\n"

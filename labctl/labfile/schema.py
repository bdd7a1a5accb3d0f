"""The lab file's schema: a pydantic model (published by `labctl schema`), and
YAML read with its line numbers, so that every error reads
`lab.yaml:LINE: path.to.key: what is wrong`.

What a schema cannot say is checked by labfile.build, with the same lines.
Importing this module costs pydantic and PyYAML: only commands that read a
lab file import it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
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

from labctl import roles
from labctl.errors import SpecError
from labctl.labfile import safeyaml
from labctl.providers import NAMES as PROVIDERS

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
# a Vagrant box or docker image name: no path, no space, nothing to expand
BOX_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,199}$"
# A libvirt URI from a lab file: a transport that connects, and no query
# string. libvirt's `ext` transport and its `command`, `netcat`, `socket` or
# `keyfile` parameters would run a program or read a file on this host;
# the user can still give any URI with --libvirt-uri.
LIBVIRT_URI_PATTERN = (
    r"^qemu(\+(ssh|libssh|libssh2|tcp|tls|unix))?://"
    r"([A-Za-z0-9._-]{1,64}@)?([A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\])?"
    r"(:[0-9]{1,5})?/(system|session)$"
)

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Loc = tuple[str | int, ...]


# strict: a boolean is not a number (`count: true`), nor a string a count
# (`count: "2"`); YAML already gives each value its type.
_CONFIG = ConfigDict(extra="forbid", strict=True)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


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
        __config__=_CONFIG,
        __doc__=(options.__doc__ if options else f"{role} takes no options"),
        **{f.name: (hints[f.name], f.default) for f in (fields(options) if options else ())},
    )
    return made


def _role_item(role: str, options: type | None) -> type[BaseModel]:
    """`- ROLE: {options}`: a one-key mapping."""
    optional: Any = _options_model(role, options) | None
    made: type[BaseModel] = create_model(
        f"Role_{role.replace('-', '_')}",
        __config__=ConfigDict(extra="forbid", strict=True, populate_by_name=True),
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
    box: str | None = Field(None, pattern=BOX_PATTERN)
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
    __config__=_CONFIG,
    __doc__="A labctl lab: machines with roles on one private network.",
    name=(Name | None, None),
    provider=(_providers | None, None),
    box=(str | None, Field(None, pattern=BOX_PATTERN)),
    # [0-9], not \d: the schema's regex engine takes any script's digits for \d
    subnet=(str | None, Field(None, pattern=r"^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$")),
    timezone=(str | None, Field(None, pattern=r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")),
    libvirt_uri=(
        str | None,
        Field(
            None,
            pattern=LIBVIRT_URI_PATTERN,
            description="qemu[+ssh|+tcp|+tls|...]://[user@]host[:port]/system|session; "
            "anything else only with --libvirt-uri",
        ),
    ),
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

    def error(self, loc: Loc, message: str, hint: str | None = None) -> SpecError:
        return SpecError(locate(self.node, loc, message, self.filename), hint)


def locate(
    root: yaml.Node | None, loc: Loc, message: str, filename: str, keep_last: bool = True
) -> str:
    """`file:LINE: path.to.key: message` for a pydantic-style `loc`. Parts of
    `loc` that are not in the file (union tags) are left out of the path; a
    last part not in the file (a missing key) stays in it with `keep_last`."""
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
        elif (
            isinstance(node, yaml.ScalarNode)
            or (i < len(loc) - 1 and part != "[key]")
            or not keep_last
        ):
            continue  # a union's tag: not a key of the file
        if part == "[key]":
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return f"{filename}:{line}: {path or '(top)'}: {message}"


_PATTERN_SAYS = {
    "name": "a lowercase letter, then up to 30 of a-z, 0-9, '-'",
    "subnet": "give the first three octets, e.g. 192.168.56",
    "hostname": "a lowercase letter, then up to 62 of a-z, 0-9, '-'",
    "box": "a box or image name (letters, digits and ._/:@+-)",
    "timezone": "a zone name such as Europe/Paris",
    "id": "a lowercase letter, then up to 30 of a-z, 0-9, '_', '-'",
    "libvirt_uri": "a lab file takes qemu[+ssh|+libssh|+tcp|+tls|+unix]://[user@]host[:port]"
    "/system or /session, without parameters (any other URI: --libvirt-uri on the command line)",
}
_MAPPING = "input should be a mapping (key: value)"
_PLAIN = {
    "model_type": _MAPPING,
    "model_attributes_type": _MAPPING,
    "dict_type": _MAPPING,
    "list_type": "input should be a list",
}


def _message(error: dict[str, Any]) -> str:
    """pydantic's words for one error, without its class names."""
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    if kind == "string_pattern_mismatch" and "[key]" in error["loc"]:
        return f"invalid machine name {error['input']!r}: a lowercase letter, then up to 30 of a-z, 0-9, '-'"
    if kind in _PLAIN:
        return _PLAIN[kind]
    if kind == "string_pattern_mismatch":
        key = next((p for p in reversed(error["loc"]) if isinstance(p, str)), "")
        if key in _PATTERN_SAYS:
            what = {"name": "lab name", "subnet": "subnet"}.get(key, "value")
            return f"invalid {what} {error['input']!r}: {_PATTERN_SAYS[key]}"
    msg = str(error["msg"])
    return msg[0].lower() + msg[1:] if msg else kind


def _first_problem(node: yaml.Node | None, errors: list[Any], filename: str) -> tuple[str, int]:
    """The first problem as one line, and how many other places have one. An
    unknown key says more than what it left missing; a union's branches that
    fail at one place are one problem (`an integer or a string`)."""
    where: dict[str, list[str]] = {}
    for error in sorted(errors, key=lambda e: e["type"] != "extra_forbidden"):
        place = locate(node, tuple(error["loc"]), "", filename, error["type"] == "missing")
        said = where.setdefault(place, [])
        message = _message(dict(error))
        if message not in said:
            said.append(message)
    place, said = next(iter(where.items()))
    prefix = "input should be "
    words = [said[0]] + [
        m.removeprefix(prefix) if said[0].startswith(prefix) else m for m in said[1:]
    ]
    return place + " or ".join(words), len(where) - 1


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
        line = key.start_mark.line + 1
        if not isinstance(key, yaml.ScalarNode):
            raise SpecError(
                f"{filename}:{line}: {path or '(top)'}: a key is a name, not a "
                + ("list" if isinstance(key, yaml.SequenceNode) else "mapping")
            )
        name = str(key.value)
        where = f"{path}.{name}" if path else name
        if key.tag == "tag:yaml.org,2002:merge":
            raise SpecError(
                f"{filename}:{line}: {path or '(top)'}: YAML merge keys (<<) are not supported"
            )
        if key.tag != _STR_TAG:
            raise SpecError(
                f"{filename}:{line}: {where}: {name!r} is not read as a name in YAML: quote it"
            )
        if name in seen:
            raise SpecError(f"{filename}:{line}: {where}: given twice (first on line {seen[name]})")
        seen[name] = line
        _check_keys(value, filename, where)


def load_with(text: str, filename: str, loader_class: type[Any]) -> tuple[yaml.Node | None, Any]:
    """(the node tree, for lines; the data) from one pass of the parser, the
    keys checked before the data is made (making it folds merge keys away)."""
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if isinstance(node, yaml.MappingNode):
            _check_keys(node, filename, "")
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _compose(text: str, filename: str) -> tuple[yaml.Node | None, Any]:
    safeyaml.check_text(text, filename)
    safeyaml.check_events(text, filename)
    try:
        return load_with(text, filename, safeyaml.FAST_LOADER)
    except yaml.YAMLError:
        if safeyaml.FAST_LOADER is safeyaml.CLEAR_LOADER:
            raise
        # raises again, in the clearer words
        return load_with(text, filename, safeyaml.CLEAR_LOADER)


def parse(text: str, filename: str, base_dir: Path) -> Parsed:
    """YAML text -> a lab file model; SpecError `file:LINE: key: problem`."""
    try:
        node, data = _compose(text, filename)
    except RecursionError:  # bounded by safeyaml's checks; never a crash if one slips by
        raise SpecError(f"{filename}:1: nested too deeply") from None
    except (ValueError, OverflowError) as exc:  # a value the constructor could not make
        raise SpecError(f"{filename}:1: a value cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{filename}:{line}: YAML syntax error: {problem}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{filename}:1: (top): a lab file is a mapping with a `machines` key")
    try:
        model = LabFileModel.model_validate(data)
    except ValidationError as exc:
        first, more = _first_problem(node, exc.errors(), filename)
        raise SpecError(
            first,
            hint=f"{more} more problem{'s' if more > 1 else ''} in the file" if more else None,
        ) from None
    return Parsed(model, node, filename, base_dir)


def read(path: Path, shown: str | None = None) -> Parsed:
    """Parse the lab file at `path` (`shown` as the user wrote it), within
    safeyaml's bounds."""
    text = safeyaml.read_text(path, f"lab file {shown or path}")
    return parse(text, path.name, path.resolve().parent)


def declared_roles(decl: MachineDecl) -> list[tuple[str, dict[str, str]]]:
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

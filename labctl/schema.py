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
from labctl.spec import PROVIDERS

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"

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


# libyaml when PyYAML was built with it: the same YAML, parsed in C, many
# times faster. Its syntax errors are worded less clearly than the Python
# parser's, which is asked again for the message.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load(text: str, filename: str, loader_class: type[Any]) -> tuple[yaml.Node | None, Any]:
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
    try:
        return _load(text, filename, _FAST_LOADER)
    except yaml.YAMLError:
        if _FAST_LOADER is yaml.SafeLoader:
            raise
        return _load(text, filename, yaml.SafeLoader)  # raises again, in the clearer words


def parse(text: str, filename: str, base_dir: Path) -> Parsed:
    """YAML text -> a lab file model; SpecError `file:LINE: key: problem`."""
    try:
        node, data = _compose(text, filename)
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

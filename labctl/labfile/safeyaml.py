"""YAML from a file anyone may have written, read within bounds: the file
itself (a regular file, at most MAX_BYTES, UTF-8), and its structure (nesting,
aliases expanded, scalar length, no explicit tags), all checked on the
parser's event stream before a node is composed. So an alias bomb, a deep
nest, /dev/zero or a FIFO is refused in one line, in milliseconds, with flat
memory, and nothing the constructor could choke on reaches it.

Errors are SpecError `FILE:LINE: problem`; the caller adds its key paths.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from labctl.errors import SpecError
from labctl.local.fsutil import read_regular

MAX_BYTES = 1 << 20  # a lab of 90 machines is a few KiB
MAX_DEPTH = 24
MAX_NODES = 50_000  # after aliases are expanded
MAX_SCALAR = 4096  # PATH_MAX; also keeps integers far below Python's 4300 digits

# libyaml when PyYAML was built with it: the same YAML, parsed in C, many
# times faster. Its syntax errors are worded less clearly than the Python
# parser's, which is asked again for the message.
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# What YAML's reader refuses (PyYAML's own set): found first here, so the
# error names the line the character is on, not the start of the file.
_NOT_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


def _no_dates(loader: type[Any]) -> type[Any]:
    """The loader without YAML 1.1's implicit timestamps: a lab file has no
    dates, and `2001-13-45` would otherwise reach datetime and fail there."""
    resolvers = {
        first: [(tag, regexp) for tag, regexp in found if tag != "tag:yaml.org,2002:timestamp"]
        for first, found in loader.yaml_implicit_resolvers.items()
    }
    return type(f"Lab{loader.__name__}", (loader,), {"yaml_implicit_resolvers": resolvers})


FAST_LOADER: Any = _no_dates(_FAST_LOADER)
CLEAR_LOADER: Any = _no_dates(yaml.SafeLoader)


def read_text(path: Path, shown: str) -> str:
    """The text of the file at `path` (`shown` as the user wrote it): only a
    regular file, never more than MAX_BYTES, and never a blocking open."""
    try:
        data = read_regular(path, MAX_BYTES)
    except (OSError, ValueError) as exc:
        raise SpecError(f"cannot read {shown}: {_why(exc)}") from None
    if len(data) > MAX_BYTES:
        raise SpecError(f"{shown}: larger than {MAX_BYTES // 1024} KiB")
    return decode(data, shown)


def _why(exc: BaseException) -> str:
    if isinstance(exc, ValueError):  # os.open's "embedded null byte"
        return "the path holds a NUL byte"
    return getattr(exc, "strerror", None) or str(exc)


def decode(data: bytes, shown: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SpecError(
            f"{shown}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}): a lab file is UTF-8"
        ) from None


def check_text(text: str, shown: str) -> None:
    """A character YAML does not allow, with its line."""
    bad = _NOT_PRINTABLE.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        raise SpecError(
            f"{shown}:{line}: control character U+{ord(bad.group()):04X} is not allowed here"
        )


def _where(shown: str, event: Any) -> str:
    mark = getattr(event, "start_mark", None)
    return f"{shown}:{mark.line + 1 if mark else 1}"


def check_events(text: str, shown: str) -> None:
    """Walk the parser's events once: nesting, every alias's expanded size
    (an alias costs what its anchor's node holds), scalar length and tags.
    A syntax error is left to the composer, which words it."""
    sizes: dict[str, int] = {}  # anchor -> nodes under it, itself included
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, count when it opened)
    count = 0
    try:
        for event in yaml.parse(text, Loader=FAST_LOADER):
            if isinstance(event, yaml.AliasEvent):
                if event.anchor not in sizes:
                    if any(anchor == event.anchor for anchor, _ in open_nodes):
                        raise SpecError(
                            f"{_where(shown, event)}: alias *{event.anchor} is inside its own "
                            "anchor (a recursive structure)"
                        )
                    continue  # undefined: the composer says so
                count += sizes[event.anchor]
            elif isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
                _check_node_event(event, shown)
                count += 1
                if isinstance(event, yaml.ScalarEvent):
                    if event.anchor:
                        sizes[event.anchor] = 1
                else:
                    open_nodes.append((event.anchor, count - 1))
                    if len(open_nodes) > MAX_DEPTH:
                        raise SpecError(
                            f"{_where(shown, event)}: nested deeper than {MAX_DEPTH} levels"
                        )
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, at = open_nodes.pop()
                if anchor:
                    sizes[anchor] = count - at
            if count > MAX_NODES:
                raise SpecError(
                    f"{_where(shown, event)}: more than {MAX_NODES} values once aliases are "
                    "expanded (an alias bomb?)"
                )
    except yaml.YAMLError as exc:
        # libyaml's own bound on flow nesting can trip before our count does
        # (it scans ahead); anything else is a syntax error the composer words
        if "nesting depth" in str(exc):
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else 1
            raise SpecError(f"{shown}:{line}: nested deeper than {MAX_DEPTH} levels") from None


def _check_node_event(event: Any, shown: str) -> None:
    if event.tag is not None:  # the parser leaves it None unless the file wrote one
        raise SpecError(
            f"{_where(shown, event)}: explicit YAML tag {_tag(event.tag)}: a lab file takes plain "
            "values (quote a string)"
        )
    if isinstance(event, yaml.ScalarEvent) and len(event.value) > MAX_SCALAR:
        raise SpecError(f"{_where(shown, event)}: a value longer than {MAX_SCALAR} characters")


def _tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


_CORE = "tag:yaml.org,2002:"

"""Python values as Ruby literals: the only way a value enters a Vagrantfile
(the lab's, and the boxes' own)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PRINTABLE = re.compile(r"[ -~]*")


def ruby_string(text: str) -> str:
    """A Ruby string literal of `text`, always on one line of printable ASCII,
    so it is safe in a comment too. Printable text is single-quoted (no
    interpolation, only \\ and \' mean anything); anything else is
    double-quoted with every character outside printable ASCII, and `#`
    (which would start #{...}), written as an escape."""
    if _PRINTABLE.fullmatch(text):
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    out = []
    for char in text:
        if char in '"\\#':
            out.append("\\" + char)
        elif " " <= char <= "~":
            out.append(char)
        elif 0xD800 <= ord(char) <= 0xDFFF:  # a byte that was not UTF-8: no Ruby string holds it
            raise ValueError(f"{text!r} is not UTF-8 text")
        else:
            out.append(f"\\u{{{ord(char):x}}}")
    return '"' + "".join(out) + '"'


def ruby(value: Any) -> str:
    """A Python value as a Ruby literal (strings by ruby_string)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return ruby_string(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{ruby(str(k))} => {ruby(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(ruby(v) for v in value) + "]"
    raise TypeError(f"no Ruby literal for {type(value).__name__}")

"""A row that shows a record: each field it does not give itself is the
record's attribute of the same name, so a row is declared once (its
dataclass) and not again, field by field, where it is made."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar, cast

R = TypeVar("R")


def row_of(cls: type[R], *records: object | None, **given: Any) -> R:
    """`cls` with `given`, every other field from the first of `records` that
    has it (a record may be None: a field none has keeps its default)."""
    found = {}
    for name in (f.name for f in fields(cast(Any, cls)) if f.name not in given):
        have = [r for r in records if r is not None and hasattr(r, name)]
        if have:
            found[name] = getattr(have[0], name)
    return cls(**given, **found)

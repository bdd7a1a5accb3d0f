"""The files labctl ships beside its code: templates/ and provision/."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]


def data_dir(name: str) -> Path:
    """templates/ or provision/: inside an installed wheel, else the source tree."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"labctl is installed without its {name}/ folder")

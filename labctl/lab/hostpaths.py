"""The host files a lab file may name: inside its own folder, symlinks
resolved, and beyond it only what the user allowed on the command line
(`--allow-host-path`). A lab file is data that anyone may have written, and
what it names is copied into the lab and run as root in the guests, so
`provision: [/etc/shadow]` or a symlink to ~/.ssh must never get there.
Only regular files are taken.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from labctl.errors import SpecError
from labctl.local.fsutil import NotRegular, read_regular


def bad_characters(text: str) -> str | None:
    """What makes `text` unfit for a path or name written into a lab's files:
    a control character, or a byte that is not UTF-8 (Python keeps those as
    surrogates)."""
    for char in text:
        if ord(char) < 0x20 or ord(char) == 0x7F:
            return f"a control character (U+{ord(char):04X})"
        if 0xD800 <= ord(char) <= 0xDFFF:
            return "bytes that are not UTF-8"
    return None


def check_path_text(text: str, what: str) -> str:
    """SpecError for a path given on the command line that no lab file can hold."""
    bad = bad_characters(text)
    if bad:
        raise SpecError(f"{what} {text!r} holds {bad}: rename it")
    return text


@dataclass(frozen=True)
class HostPaths:
    """The lab file's folder, and the host paths the user allowed beyond it
    (files, or folders and what they hold)."""

    folder: Path
    allowed: tuple[Path, ...] = ()

    @classmethod
    def of(cls, folder: Path, allowed: Iterable[str | Path] = ()) -> HostPaths:
        return cls(
            Path(folder).resolve(),
            tuple(Path(os.path.expanduser(str(p))).resolve() for p in allowed),
        )

    def within(self, path: Path) -> bool:
        return any(
            path == root or path.is_relative_to(root) for root in (self.folder, *self.allowed)
        )

    def file(self, raw: str, what: str = "file") -> Path:
        """The regular file `raw` names (relative to the lab file's folder),
        resolved; SpecError saying why not, in the words the file used."""
        bad = bad_characters(raw) or ("a NUL byte" if "\0" in raw else None)
        if bad:
            raise SpecError(f"{raw!r} holds {bad}")
        written = self.folder / os.path.expanduser(raw)
        path = written.resolve()
        if not self.within(path):
            leads = f" leads to {path}," if os.path.abspath(written) != str(path) else " is"
            raise SpecError(
                f"{raw}{leads} outside the lab file's folder ({self.folder})",
                hint=f"copy it into {self.folder}, or allow it: --allow-host-path {path}",
            )
        try:
            info = path.stat()
        except OSError:
            raise SpecError(f"no such {what}: {raw}") from None
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(f"{raw}: not a regular file")
        return path

    def read(self, path: Path, raw: str, limit: int = 16 << 20) -> bytes:
        """The content of a file `file` returned, within `limit` bytes."""
        try:
            data = read_regular(path, limit)
        except NotRegular:
            raise SpecError(f"{raw}: not a regular file") from None
        except OSError as exc:
            raise SpecError(f"cannot read {raw}: {exc.strerror or exc}") from None
        if len(data) > limit:
            raise SpecError(f"{raw}: larger than {limit >> 20} MiB")
        return data

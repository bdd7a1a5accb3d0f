"""`make golden`: write the handoff formats' golden files from the captured
lab states, for review with `git diff`. Never run by a test: a test only
compares."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.unit.test_handoff import FORMATS, GOLDEN, view


def main() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name, make in FORMATS:
        (GOLDEN / name).write_text(make(view()))
        print(f"wrote {GOLDEN / name}")


if __name__ == "__main__":
    main()

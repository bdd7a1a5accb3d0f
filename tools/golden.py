"""`make golden`: write the golden files (Vagrantfiles per topology, provider
and example; the handoff formats from the captured lab states), for review
with `git diff`. Never run by a test: a test only compares."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.unit.handoff.test_view import FORMATS, GOLDEN, view
from tests.unit.project.test_render import goldens


def main() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name, make in FORMATS:
        (GOLDEN / name).write_text(make(view()))
        print(f"wrote {GOLDEN / name}")
    for path, text in goldens().items():
        path.write_text(text)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

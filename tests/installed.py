"""The labctl the end-to-end tests and the bench run: the one users install.

`make user-venv` builds the wheel from these sources and installs it into
.venv-user, a virtualenv of labctl's runtime dependencies only (what
`pip install labctl` gives), and the Makefile hands its `labctl` over in
LABCTL_UNDER_TEST. Run by hand, without that variable, the tests ask make for
the same (a no-op when it is up to date). Either way the program is checked to
be an installed copy of exactly these sources, with none of the dev extras
beside it: what the editable dev install hides (a module only the dev extras
bring, a file the wheel leaves out) fails here as it would for a user.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
USER_VENV = ROOT / ".venv-user"
USER_PYTHON = USER_VENV / "bin" / "python"

# what the dev extras bring, by import name (the runtime needs none of them)
DEV_ONLY = ("pytest", "xdist", "mypy", "ruff", "importlinter", "jsonschema", "ansible", "PIL")

# package folder in the wheel -> its folder in the sources (pyproject's force-include)
DATA = {"_data/templates": "templates", "_data/provision": "provision"}

_ASK = """
import importlib.util, json, labctl, pathlib
print(json.dumps({
    "package": str(pathlib.Path(labctl.__file__).resolve().parent),
    "dev": [m for m in %r if importlib.util.find_spec(m) is not None],
}))
"""


class NotInstalled(Exception):
    """No labctl installed from the wheel can be had: why, in one message."""


def make(target: str) -> None:
    """A target of the Makefile (user-venv, runtime-venv), made up to date."""
    done = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(ROOT), target],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("MAKE")},
    )
    if done.returncode != 0:
        raise NotInstalled(f"make {target} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")


def labctl_under_test() -> Path:
    """The installed `labctl` program to test, checked (see check)."""
    given = os.environ.get("LABCTL_UNDER_TEST")
    if given:
        exe = Path(given)
    else:
        make("user-venv")
        exe = USER_VENV / "bin" / "labctl"
    check(exe)
    return exe


def check(exe: Path) -> None:
    """`exe` is labctl installed (not editable) from exactly these sources, in a
    virtualenv without the dev extras; else NotInstalled says what differs."""
    if not os.access(exe, os.X_OK):
        raise NotInstalled(f"{exe} is not an executable labctl (make user-venv makes one)")
    # A console script sits beside its virtualenv's interpreter, and starts
    # with its own folder first on sys.path: so does the question (`python -c`
    # elsewhere would put the working directory first, the sources here).
    bin_dir = exe.resolve().parent
    done = subprocess.run(
        [str(bin_dir / "python"), "-c", _ASK % (DEV_ONLY,)],
        capture_output=True,
        text=True,
        cwd=bin_dir,
    )
    if done.returncode != 0:
        raise NotInstalled(f"{exe} cannot import labctl:\n{done.stderr[-1500:]}")
    found = json.loads(done.stdout)
    package = Path(found["package"])
    if package == ROOT / "labctl":
        raise NotInstalled(
            f"{exe} runs the sources themselves (an editable install), not the wheel"
        )
    if found["dev"]:
        raise NotInstalled(f"{exe} has dev extras beside it: {', '.join(found['dev'])}")
    differ = differences(package)
    if differ:
        raise NotInstalled(
            f"{exe} is not these sources (make user-venv installs them): " + ", ".join(differ[:10])
        )


def differences(package: Path) -> list[str]:
    """Files that differ between the installed package and the sources, or are
    in one only (paths as in the package)."""
    pairs = [(package, ROOT / "labctl", "**/*.py")]
    pairs += [(package / inside, ROOT / outside, "**/*") for inside, outside in DATA.items()]
    differ = []
    for installed, source, pattern in pairs:
        have = _files(installed, pattern)
        want = _files(source, pattern)
        for rel in sorted(have.keys() | want.keys()):
            if have.get(rel) != want.get(rel):
                differ.append(str((installed / rel).relative_to(package)))
    return differ


def _files(root: Path, pattern: str) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.glob(pattern)
        if p.is_file() and "__pycache__" not in p.parts
    }

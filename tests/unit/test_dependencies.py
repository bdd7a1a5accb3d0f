"""labctl runs on what `pip install labctl` gives, and nothing else.

The dev extras bring packages labctl never declares (import-linter brings
click, which typer stopped depending on in 0.26): code importing one of them
passes every test in the dev virtualenv and fails for users. Two checks: every
module of labctl imported in the runtime-only virtualenv (`make runtime-venv`),
and a scan of labctl's imports against `[project.dependencies]`.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .. import installed
from ..conftest import require

PACKAGE = installed.ROOT / "labctl"

# Every module of the sources (not the copy the wheel installed there, which
# may be older), imported by the runtime virtualenv's interpreter, isolated
# (-I: no PYTHONPATH, no user site-packages).
_IMPORT_ALL = """
import importlib, pkgutil, sys, traceback
sys.path.insert(0, sys.argv[1])
import labctl
assert labctl.__file__.startswith(sys.argv[1] + "/labctl/"), labctl.__file__
failed = 0
for module in pkgutil.walk_packages(labctl.__path__, "labctl."):
    if module.name.endswith(".__main__"):  # importing it runs the program
        continue
    try:
        importlib.import_module(module.name)
    except Exception:
        failed += 1
        print(module.name, traceback.format_exc(limit=-1), sep=": ", file=sys.stderr)
sys.exit(1 if failed else 0)
"""


def runtime_venv() -> None:
    """The runtime-only virtualenv, up to date (a no-op under `make unit`)."""
    try:
        installed.make("runtime-venv")
    except installed.NotInstalled as exc:
        require(False, f"no runtime-only virtualenv: {exc}")


def _in_runtime_venv(
    code: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`code` run by the runtime-only virtualenv's Python (isolated: no user
    site, no PYTHONPATH), with the sources as its argument."""
    runtime_venv()
    return subprocess.run(
        [str(installed.USER_PYTHON), "-I", "-c", code, str(installed.ROOT)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_every_module_imports_with_the_runtime_dependencies_only() -> None:
    done = _in_runtime_venv(_IMPORT_ALL)
    assert done.returncode == 0, done.stderr


# Commands whose parsing reaches click's own classes (usage errors, where an
# option came from): typer hands them out from click or from its own copy.
_COMMANDS = """
import sys
sys.path.insert(0, sys.argv[1])
from labctl.cli import main
for argv in (["ctr", "ps", "--lab", "nosuch"], ["ctr", "--lab", "nosuch", "ps"], ["ctr", "ps", "--bogus"], ["ls"]):
    try:
        main(argv)
    except SystemExit as done:
        print(done.code)
"""


def test_commands_run_with_the_runtime_dependencies_only(tmp_path: Path) -> None:
    done = _in_runtime_venv(
        _COMMANDS,
        # a crash report, were there one, in the test's own folder
        env={"LABCTL_HOME": str(tmp_path), "TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.stdout.split() == ["2", "2", "2", "0"], done.stderr
    assert done.stderr.count("no lab named 'nosuch'") == 2
    assert "No such option" in done.stderr
    assert "internal error" not in done.stderr


def imports(source: str) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every absolute import in a module's source."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def declared() -> set[str]:
    """The distributions `[project.dependencies]` names (normalized), as the
    build backend reads them into the wheel."""
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")
    pyproject = tomllib.loads((installed.ROOT / "pyproject.toml").read_text())
    return {_normalized(_requirement_name(r)) for r in pyproject["project"]["dependencies"]}


def _requirement_name(requirement: str) -> str:
    found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert found, requirement
    return found.group()


def _normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def undeclared(source: str, allowed: set[str]) -> list[str]:
    """An import of `source` that no distribution in `allowed` provides, one
    line each; a private module of a package (typer._click: in some of the
    releases the pins allow, not in others) too."""
    provides = _providers()
    found = []
    for line, name in imports(source):
        top = name.partition(".")[0]
        if top == "labctl" or top in sys.stdlib_module_names:
            continue
        dists = {_normalized(d) for d in provides.get(top, [])}
        if not dists & allowed:
            by = ", ".join(sorted(dists)) or "no installed distribution"
            found.append(f"line {line}: {name} (from {by}) is not declared")
        elif any(part.startswith("_") for part in name.split(".")[1:]):
            found.append(f"line {line}: {name} is private to {top}")
    return found


@functools.cache
def _providers() -> dict[str, list[str]]:
    """import name -> the installed distributions that provide it (slow: every
    distribution's file list is read)."""
    return dict(importlib.metadata.packages_distributions())


def test_labctl_imports_only_what_it_declares() -> None:
    allowed = declared()
    found = [
        f"{path.relative_to(installed.ROOT)} {problem}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for problem in undeclared(path.read_text(), allowed)
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "def f():\n    from click.core import ParameterSource\n",  # issue 27's ctr bug
        "try:\n    import click\nexcept ImportError:\n    pass\n",
        "from typer._click.core import ParameterSource\n",
        "import pytest\n",
    ],
)
def test_the_scan_catches_an_undeclared_or_private_import(source: str) -> None:
    assert undeclared(source, declared())


def test_the_scan_allows_the_standard_library_labctl_and_declared_packages() -> None:
    source = "import os.path\nfrom labctl import ui\nimport yaml\nfrom vagrant import Vagrant\n"
    assert undeclared(source, declared()) == []

"""End-to-end fixtures: real Vagrant, the docker provider (libvirt in
test_libvirt.py), real guests.

Every lab a test brings up is destroyed when the test ends, pass or fail, and
the test then checks that no container of it is left. The labctl they run is
the one users install: the wheel's, in a virtualenv of runtime dependencies
only (tests/installed.py).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .. import installed
from ..conftest import require

_SUBNETS = itertools.count(100)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@functools.cache
def _under_test() -> Path | str:
    try:
        return installed.labctl_under_test()
    except installed.NotInstalled as exc:
        return str(exc)


def labctl_argv(*args: str) -> list[str]:
    """The command line of the labctl under test: the wheel's, installed."""
    exe = _under_test()
    if not isinstance(exe, Path):
        require(False, f"the installed labctl: {exe}")
    return [str(exe), *args]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    exe = _under_test() if _under_test.cache_info().currsize else None
    if isinstance(exe, Path):
        terminalreporter.write_line(f"e2e: the labctl under test was {exe} (the installed wheel)")


@dataclass
class Done:
    code: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def containers_of(lab: str) -> list[str]:
    return docker("ps", "-aq", "--filter", f"label=io.labctl.lab={lab}").split()


@pytest.fixture(scope="session")
def real_parts() -> None:
    require(shutil.which("vagrant"), "vagrant is not installed")
    require(shutil.which("docker"), "docker is not installed")
    ok = subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    require(ok, "the Docker engine is not answering")
    has_box = (
        subprocess.run(
            ["docker", "image", "inspect", "labctl/debian:bookworm"], capture_output=True
        ).returncode
        == 0
    )
    require(has_box, "the box image is missing: labctl box build")
    _sweep_killed_runs()


def _sweep_killed_runs() -> None:
    """Guests of an earlier run killed before its teardown. Each run has its
    own LABCTL_HOME, so none of them is this run's: lab names starting with
    e2e- (like the subnets from 192.168.100) are the tests' own, and two runs
    on one host at once are not supported."""
    listed = docker("ps", "-a", "--format", '{{.ID}}\t{{.Label "io.labctl.lab"}}')
    rows = (line.partition("\t") for line in listed.splitlines())
    stale = [cid for cid, _, lab in rows if lab.startswith("e2e-")]
    if stale:
        subprocess.run(["docker", "rm", "-f", "-v", *stale], capture_output=True)


@pytest.fixture(scope="session")
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("labs")


Labctl = Callable[..., Done]


@dataclass
class Seen:
    """Everything the run's labctl commands printed, every file of their lab
    folders, and every secret labctl generated, for the last test's grep."""

    outputs: list[tuple[str, str]] = field(default_factory=list)  # (command, what it printed)
    files: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # secret -> its file

    def output(self, args: Sequence[str], *texts: str) -> None:
        self.outputs.extend((" ".join(args), text) for text in texts)

    def lab_folders(self, home: Path) -> None:
        for secret in home.glob("*/secrets/*"):
            text = secret.read_text(errors="replace").strip()
            # a private key: its longest line stands for it
            token = max(text.splitlines(), key=len) if "PRIVATE KEY" in text else text
            if len(token) >= 8:
                self.secrets[token] = str(secret)
        for lab in (p for p in home.iterdir() if p.is_dir()) if home.is_dir() else []:
            for path in lab.rglob("*"):
                skip = {".vagrant", "secrets"} & set(path.relative_to(lab).parts)
                if path.is_file() and not skip and path.stat().st_size < 1_000_000:
                    self.files[str(path)] = path.read_text(errors="replace")


SEEN = Seen()


class Running:
    """One labctl started as from a terminal: its own process group, which a
    Ctrl-C reaches as a whole."""

    def __init__(self, home: Path, host_dir: Path, *args: str, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            labctl_argv(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            cwd=cwd,
            env={
                "LABCTL_PROVIDER": "docker",
                **os.environ,
                "LABCTL_HOME": str(home),
                "LABCTL_HOST_DIR": str(host_dir),
            },
        )
        self.seen: list[str] = []
        self.args = args

    def wait_for(self, *needles: str) -> str:
        """Read its output until a line holds one of `needles`."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.seen.append(line)
            if any(n in line for n in needles):
                return line
        raise AssertionError(f"never said any of {needles}:\n" + "".join(self.seen[-40:]))

    def ctrl_c(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)

    def finish(self, timeout: float = 600) -> tuple[int, str]:
        assert self.proc.stdout is not None
        rest = self.proc.stdout.read()
        code = self.proc.wait(timeout=timeout)
        text = "".join(self.seen) + rest
        SEEN.output(self.args, text)
        return code, text


@pytest.fixture(scope="session")
def host_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This run's host-wide records (subnet claims): an earlier run's labs,
    left in its own temporary homes, hold no subnet of this one."""
    return tmp_path_factory.mktemp("host")


@pytest.fixture(scope="session")
def labctl(real_parts: None, lab_home: Path, host_dir: Path) -> Labctl:
    """Run the real `labctl` command in a subprocess, as a user would: the
    one installed from the wheel."""
    labctl_argv()  # checked (or skipped) once, before any lab is made

    def run(
        *args: str,
        timeout: float = 900,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Done:
        environment = {
            # the docker provider unless a test names another (libvirt is
            # detected first on a host that has it)
            "LABCTL_PROVIDER": "docker",
            **os.environ,
            "LABCTL_HOME": str(lab_home),
            "LABCTL_HOST_DIR": str(host_dir),
            "VAGRANT_CHECKPOINT_DISABLE": "1",
            **(env or {}),
        }
        done = subprocess.run(
            labctl_argv(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            env=environment,
        )
        SEEN.output(args, done.stdout, done.stderr)
        SEEN.lab_folders(Path(environment["LABCTL_HOME"]))
        return Done(done.returncode, done.stdout, done.stderr)

    return run


def change_counts(labctl: Labctl, lab: str) -> dict[str, int]:
    """machine -> changes recorded by its provision scripts (provision/lib.sh);
    a second provision run of an unchanged lab must add none."""
    done = labctl(
        "exec",
        "--lab",
        lab,
        "--json",
        "--",
        "sh",
        "-c",
        "cat /var/lib/labctl/changes.log 2>/dev/null | wc -l",
    )
    assert done.code == 0, done.stderr
    return {row["vm"]: int(row["stdout"]) for row in done.json()}


def fresh_subnet() -> str:
    """A /24 per lab, away from the defaults a developer's own labs use."""
    return f"192.168.{next(_SUBNETS)}"


def destroy_and_check(labctl: Labctl, name: str) -> None:
    labctl("destroy", name, "--yes")
    left = containers_of(name)
    if left:  # never leave guests behind, even when destroy is what broke
        subprocess.run(["docker", "rm", "-f", "-v", *left], capture_output=True)
    assert not left, f"destroy left containers of {name}: {left}"


@contextlib.contextmanager
def lab_attempt(labctl: Labctl, name: str, *args: str) -> Iterator[tuple[str, str, Done]]:
    """`labctl up` of a lab for a whole module, however it ended; the lab is
    destroyed afterwards."""
    subnet = fresh_subnet()
    try:
        yield (
            name,
            subnet,
            labctl("up", *args, "--name", name, "--subnet", subnet, "--provider", "docker", "-q"),
        )
    finally:
        destroy_and_check(labctl, name)


@contextlib.contextmanager
def lab_up(labctl: Labctl, name: str, *args: str) -> Iterator[tuple[str, str]]:
    """A lab brought up for a whole module; destroyed afterwards."""
    with lab_attempt(labctl, name, *args) as (_, subnet, up):
        assert up.code == 0, up.stderr[-3000:]
        yield name, subnet


@pytest.fixture
def make_lab(labctl: Labctl) -> Iterator[Callable[..., tuple[str, str]]]:
    """make_lab(name) -> (name, subnet); destroyed and checked at teardown."""
    made: list[str] = []

    def make(name: str) -> tuple[str, str]:
        made.append(name)
        return name, fresh_subnet()

    yield make
    for name in made:
        destroy_and_check(labctl, name)

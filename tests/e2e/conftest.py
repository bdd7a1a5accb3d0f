"""End-to-end fixtures: real Vagrant, the docker provider (libvirt in
test_libvirt.py), real guests.

Every lab a test brings up is destroyed when the test ends, pass or fail, and
the test then checks that no container of it is left; at the end of the run,
no container of the run and no volume one of them mounted is left either.
The labctl they run is the one users install: the wheel's, in a virtualenv
of runtime dependencies only (tests/installed.py).
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
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from labctl.providers.docker import LAB_ID_LABEL

from .. import installed
from ..conftest import require


def _worker() -> int:
    """This pytest-xdist worker's number (`make e2e` runs two), 0 without xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name[2:].isdigit() else 0


# Each worker its own /24s (the labs of one run come to about 30).
SUBNETS_PER_WORKER = 50
_SUBNETS = itertools.count(100 + SUBNETS_PER_WORKER * _worker())

# `make e2e` runs two workers, each taking whole files (pytest-xdist's
# loadfile: a module's labs are made once): the real VMs first, the longest
# file by far and mostly QEMU's work, so the docker files share out beside it.
FIRST = "test_libvirt.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
    items.sort(key=lambda item: Path(str(item.fspath)).name != FIRST)  # stable


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


# Every e2e run going on on this host, a file each: its pid, holding its
# temporary folder (where its labs' Vagrantfiles are). Shared by every checkout.
RUNS = Path("/var/tmp/labctl-e2e-runs")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


def _runs_going_on() -> set[Path]:
    """The temporary folders of the e2e runs whose process still runs (this
    one's too; a killed run's entry is removed), and of any pytest run still
    going on (its folder's lock names a live process): a checkout whose
    suite does not register its runs yet."""
    roots = set()
    for entry in RUNS.glob("*") if RUNS.is_dir() else []:
        if not entry.name.isdigit():
            continue
        if _alive(int(entry.name)):
            with contextlib.suppress(OSError):
                roots.add(Path(entry.read_text()))
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
    for tmp in {Path(tempfile.gettempdir()), Path("/tmp"), Path("/dev/shm")}:
        for lock in tmp.glob("pytest-of-*/pytest-*/.lock"):
            with contextlib.suppress(OSError, ValueError):
                if _alive(int(lock.read_text())):
                    roots.add(lock.parent.resolve())
    return roots


def _made_under(root: Path, lab_id: str) -> bool:
    """Whether a lab of this id was rendered under `root` (its id is a label
    in its Vagrantfile's docker arguments)."""
    needle = f"{LAB_ID_LABEL}={lab_id}"
    for _ in range(3):  # a lab folder removed under the walk: walk again
        try:
            return any(needle in f.read_text() for f in root.rglob("Vagrantfile"))
        except OSError:
            continue
    return False


def _sweep_killed_runs() -> None:
    """Guests of an earlier run killed before its teardown: labs named e2e-
    (like the subnets from 192.168.100) are the tests' own, and one is
    stale when no run going on on this host (in any checkout) rendered it.
    Another run's guests, and anything not named e2e-, are left alone."""
    going_on = _runs_going_on()
    stale = [
        cid
        for cid, lab, lab_id in _labelled()
        if lab.startswith("e2e-") and not any(_made_under(root, lab_id) for root in going_on)
    ]
    if stale:
        subprocess.run(["docker", "rm", "-f", "-v", *stale], capture_output=True)
    if libvirt_answers():
        for lab in set(LIBVIRT_LABS) - _libvirt_labs_of(going_on):
            libvirt_sweep(lab)


def _labelled() -> list[tuple[str, str, str]]:
    """(id, lab, lab id) of every container on the host ("" for a label it lacks)."""
    listed = docker(
        "ps",
        "-a",
        "--format",
        f'{{{{.ID}}}}\t{{{{.Label "io.labctl.lab"}}}}\t{{{{.Label "{LAB_ID_LABEL}"}}}}',
    )
    rows = (line.split("\t") for line in listed.splitlines())
    return [(row[0], row[1], row[2]) for row in rows if len(row) == 3]


# ---------------------------------------------------------------- libvirt

URI = "qemu:///system"
# the libvirt labs of the suite (tests/e2e/test_libvirt.py): fixed names, so
# a killed run's domains are found by the next one
LIBVIRT_LABS = ("e2e-lv-nodes", "e2e-lv-pair")


def virsh(*args: str) -> str:
    done = subprocess.run(["virsh", "-c", URI, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def libvirt_answers() -> bool:
    if not shutil.which("virsh"):
        return False
    done = subprocess.run(["virsh", "-c", URI, "version"], capture_output=True, timeout=120)
    return done.returncode == 0


def _volumes(pool: str) -> list[str]:
    """A pool's volume names (virsh 9's vol-list has no --name: a table)."""
    rows = virsh("vol-list", pool).splitlines()[2:]
    return [row.split()[0] for row in rows if row.strip()]


def libvirt_residue(lab: str) -> dict[str, list[str]]:
    """What libvirt still holds of a lab: domains and volumes named after it,
    and its two networks (private and management)."""
    prefix = f"labctl-{lab}-"
    pools = virsh("pool-list", "--all", "--name").split()
    return {
        "domains": [d for d in virsh("list", "--all", "--name").split() if d.startswith(prefix)],
        "volumes": [v for pool in pools for v in _volumes(pool) if v.startswith(prefix)],
        "networks": [
            n
            for n in virsh("net-list", "--all", "--name").split()
            if n in (f"labctl-{lab}", f"labctl-{lab}-mgmt")
        ],
    }


def libvirt_sweep(lab: str) -> dict[str, list[str]]:
    """Remove whatever libvirt holds of one of the suite's labs; what was there."""
    left = libvirt_residue(lab)
    for domain in left["domains"]:
        subprocess.run(["virsh", "-c", URI, "destroy", domain], capture_output=True)
        subprocess.run(
            ["virsh", "-c", URI, "undefine", domain, "--remove-all-storage"], capture_output=True
        )
    for net in left["networks"]:
        subprocess.run(["virsh", "-c", URI, "net-destroy", net], capture_output=True)
        subprocess.run(["virsh", "-c", URI, "net-undefine", net], capture_output=True)
    for vol in libvirt_residue(lab)["volumes"]:
        subprocess.run(
            ["virsh", "-c", URI, "vol-delete", "--pool", "default", vol], capture_output=True
        )
    return left


def _libvirt_labs_of(roots: set[Path]) -> set[str]:
    """The suite's libvirt labs that a run going on has a folder of."""
    return {lab for lab in LIBVIRT_LABS for root in roots if any(root.rglob(f"labs*/{lab}"))}


# containers made and volumes mounted, as each happens
WATCHED = [
    "docker", "events", "--format", "{{json .}}",
    "--filter", "type=container", "--filter", "type=volume",
    "--filter", "event=create", "--filter", "event=mount",
]  # fmt: skip


class EngineEvents:
    """What the Docker engine did during the run (`docker events`, watched
    from its start): the containers of the run's own labs (their lab id in
    a Vagrantfile under the run's temporary folder: not another run's, nor
    a developer's lab that happens to be named e2e-something), and the
    volumes they mounted. Such a volume is anonymous (the guests'
    /var/lib/containerd) and has no label: its mount is its only tie to the
    container that made it."""

    def __init__(self) -> None:
        self.root: Path | None = None
        self.containers: set[str] = set()
        self.volumes: set[str] = set()
        self.proc: subprocess.Popen[str] | None = None

    def start(self, root: Path | None = None) -> None:
        """Watch (again after the engine restarted: its stream ends with it)."""
        self.root = root or self.root
        self.stop()
        self.proc = subprocess.Popen(
            WATCHED, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with contextlib.suppress(ValueError, AttributeError):
                self._note(json.loads(line))

    def _note(self, event: dict[str, Any]) -> None:
        """One event, in the engine's order: a container's create before its mounts."""
        actor = event.get("Actor") or {}
        attributes = actor.get("Attributes") or {}
        lab_id = attributes.get(LAB_ID_LABEL, "")
        if event.get("Type") == "container":
            if lab_id and self.root is not None and _made_under(self.root, lab_id):
                self.containers.add(actor.get("ID", ""))
        elif attributes.get("container") in self.containers:
            self.volumes.add(actor.get("ID", ""))


ENGINE = EngineEvents()


@pytest.fixture(scope="session", autouse=True)
def _nothing_of_the_run_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The run, known to other runs on this host while it goes on (so their
    sweep leaves its guests alone); and after it, nothing of its own on the
    host: no container of its labs, no volume one of them mounted (a
    container removed without -v leaves its anonymous volume behind), no
    libvirt domain, volume or network of its libvirt labs. What is found is
    removed, and the run fails naming it. Nothing else is touched."""
    root = tmp_path_factory.getbasetemp()
    if not RUNS.is_dir():
        RUNS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # every user's runs register here
            RUNS.chmod(0o1777)
    mine = RUNS / str(os.getpid())
    mine.write_text(str(root))
    engine = shutil.which("docker") and (
        subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    )
    if engine:
        ENGINE.start(root)
    try:
        yield
    finally:
        mine.unlink(missing_ok=True)
    # the suite's libvirt labs, made under this run's folder: none left
    domains: dict[str, list[str]] = {}
    if libvirt_answers():
        for lab in _libvirt_labs_of({root}):
            left = libvirt_sweep(lab)
            if any(left.values()):
                domains[lab] = [n for names in left.values() for n in names]
    assert not domains, f"the run left in libvirt {domains} (now removed)"
    if not engine:
        return
    ENGINE.stop()
    containers = sorted(ENGINE.containers & set(docker("ps", "-aq", "--no-trunc").split()))
    if containers:
        subprocess.run(["docker", "rm", "-f", "-v", *containers], capture_output=True)
    volumes = sorted(ENGINE.volumes & set(docker("volume", "ls", "-q").split()))
    if volumes:
        subprocess.run(["docker", "volume", "rm", *volumes], capture_output=True)
    assert not containers and not volumes, (
        f"the run left containers {containers} and volumes {volumes} (now removed)"
    )


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

# the commands whose very job is to show a secret to its user
SHOWS = ("jenkins password",)


def secret_leaks(seen: Seen) -> list[str]:
    """Where a secret labctl generated appears in anything labctl printed
    (but the commands that show one) or in any file of a lab folder outside
    secrets/."""
    return [
        f"{source} in {where}"
        for secret, source in seen.secrets.items()
        for where, text in [
            *(
                (f"the output of labctl {cmd}", out)
                for cmd, out in seen.outputs
                if not cmd.startswith(SHOWS)
            ),
            *seen.files.items(),
        ]
        if secret in text
    ]


def tracebacks(seen: Seen) -> list[tuple[str, str]]:
    return [(c, o) for c, o in seen.outputs if "Traceback (most recent call last)" in o]


@pytest.fixture(scope="session", autouse=True)
def _no_secret_anywhere_the_run_looked() -> Iterator[None]:
    """At the end of the run, whatever was selected: no generated secret
    (replication and Jenkins passwords, SSH keys) in any output or lab file,
    and no traceback printed by any command. Under LABCTL_REQUIRE_REAL a run
    that gave the grep nothing to look at fails: it checked nothing."""
    yield
    strict = bool(os.environ.get("LABCTL_REQUIRE_REAL"))
    if SEEN.secrets:
        assert any(p.endswith("/Vagrantfile") for p in SEEN.files)  # the folders were read
        leaks = secret_leaks(SEEN)
        assert not leaks, leaks[:10]
    elif strict:
        pytest.fail("the secret grep did not run: no lab of this run generated a secret")
    if SEEN.outputs:
        printed = tracebacks(SEEN)
        assert not printed, printed[0]
    elif strict:
        pytest.fail("the traceback grep did not run: no labctl command ran")


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
    left in its own temporary homes, hold no subnet of this one; the workers
    of one run share them, so two never choose the same free subnet."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return tmp_path_factory.mktemp("host")
    shared = tmp_path_factory.getbasetemp().parent / "host"
    shared.mkdir(exist_ok=True)
    return shared


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


def shell_on_each(labctl: Labctl, lab: str, script: str) -> dict[str, str]:
    """machine -> what `sh -c SCRIPT` printed on each machine of `lab` (labctl
    exec --json), which must succeed on every one."""
    done = labctl("exec", "--lab", lab, "--json", "--", "sh", "-c", script)
    assert done.code == 0, done.stderr
    return {row["vm"]: row["stdout"] for row in done.json()}


def change_counts(labctl: Labctl, lab: str) -> dict[str, int]:
    """machine -> changes recorded by its provision scripts (provision/lib.sh);
    a second provision run of an unchanged lab must add none."""
    counted = shell_on_each(labctl, lab, "cat /var/lib/labctl/changes.log 2>/dev/null | wc -l")
    return {vm: int(out) for vm, out in counted.items()}


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


def services_by_testinfra(
    labctl: Labctl, lab: str, machine: str, services: Sequence[str]
) -> dict[str, bool]:
    """service -> pytest-testinfra's `is_running`, through the lab's own
    `labctl ssh-config` and no --sudo: a plain user's check, as the user's
    own test suite makes it."""
    import testinfra  # a dev dependency: the user's tool, not labctl's

    done = labctl("ssh-config", lab)
    assert done.code == 0, done.stderr
    with tempfile.NamedTemporaryFile("w", suffix=".ssh-config") as config:
        config.write(done.stdout)
        config.flush()
        host = testinfra.get_host(f"ssh://{lab}-{machine}", ssh_config=config.name)
        assert host.user().name == "vagrant"  # not root: no sudo anywhere
        return {name: host.service(name).is_running for name in services}

"""Shared fixtures: a private LABCTL_HOME per test, and labctl run in-process."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"  # the captured outputs and golden files, for every test


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str


FAKE_TOOL = """#!/bin/sh
# unit tests run no real Vagrant, Docker or hypervisor (tests marked `vagrant` do)
case "${0##*/} $1" in
  "vagrant validate") exit 0 ;;
  "vagrant --version") echo "Vagrant 2.3.4"; exit 0 ;;
esac
echo "${0##*/} is not run by unit tests: mark the test vagrant ($*)" >&2
exit 99
"""


@pytest.fixture(scope="session")
def _fake_tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fake-tools")
    for tool in ("vagrant", "docker"):
        (folder / tool).write_text(FAKE_TOOL)
        (folder / tool).chmod(0o755)
    return folder


@pytest.fixture(autouse=True)
def _unit_tools(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, _fake_tools: Path
) -> None:
    """A unit test finds fakes of vagrant and docker first on
    PATH: `vagrant validate` passes, anything else fails loudly. Tests marked
    `vagrant` use the real ones and run with the end-to-end tests."""
    if "unit" in request.node.path.parts and not request.node.get_closest_marker("vagrant"):
        monkeypatch.setenv("PATH", f"{_fake_tools}:{os.environ.get('PATH', '')}")


@pytest.fixture(autouse=True)
def _host_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Host-wide records (subnet claims) of this test only, never /var/tmp's;
    and a host with no network of its own, nor docker or libvirt asked who
    holds one (a test that wants some says so): what runs on this host (a
    developer's labs) never changes a test's answer."""
    from labctl import providers
    from labctl.lab import hostnet

    monkeypatch.setenv("LABCTL_HOST_DIR", str(tmp_path / "host"))
    routes = tmp_path / "no-routes"
    routes.write_text("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n")
    monkeypatch.setattr(hostnet, "ROUTES", routes)
    monkeypatch.setattr(providers, "HOLDERS", ())


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "labs"
    monkeypatch.setenv("LABCTL_HOME", str(root))
    monkeypatch.delenv("LABCTL_LAB", raising=False)
    monkeypatch.delenv("LABCTL_PROVIDER", raising=False)
    return root


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run labctl's real entry point in-process; return exit code and output."""
    from labctl.cli import main

    def run(*args: str) -> Ran:
        with pytest.raises(SystemExit) as exc:
            main(list(args))
        out, err = capsys.readouterr()
        code = exc.value.code
        return Ran(int(code) if code is not None else 0, out, err)

    return run


def tree(root: Path) -> list[str]:
    """Every path under root (for 'nothing was written' assertions)."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


os.environ.setdefault("VAGRANT_CHECKPOINT_DISABLE", "1")


def require(condition: object, why: str) -> None:
    """Skip when a real part is missing, except under `make test`
    (LABCTL_REQUIRE_REAL=1), where a missing part is a failure."""
    if condition:
        return
    if os.environ.get("LABCTL_REQUIRE_REAL"):
        pytest.fail(f"required for this test: {why}")
    pytest.skip(why)

"""The provider a lab takes when nothing names one (providers/__init__.py):
the first usable one, unless it would emulate where a later one would not."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl import providers
from labctl.errors import SpecError
from labctl.lab.home import LabHome
from labctl.ops.up.prepare import Purpose, prepare
from labctl.ops.up.source import Request
from labctl.project import render
from labctl.providers import libvirt

from .labs import topology

PVM = libvirt.Accel("tcg", "QEMU emulation: /dev/kvm is PVM (kvm_pvm), ...", "PVM")
KVM = libvirt.Accel("kvm", "KVM (kvm_intel)")


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """Which providers are usable here (VirtualBox not, unless a test says so);
    libvirt's acceleration is the test's to set."""
    usable = {"virtualbox": False, "libvirt": True, "docker": True}
    for name, provider in providers.PROVIDERS.items():
        monkeypatch.setattr(provider, "usable", lambda name=name: usable[name])
    return usable


def test_libvirt_with_kvm_is_the_default(host: dict[str, bool], monkeypatch) -> None:
    monkeypatch.setattr(libvirt, "vm_accel", lambda: KVM)
    assert providers.choose() == providers.Choice("libvirt")
    assert providers.detect() == "libvirt"


def test_libvirt_that_would_emulate_gives_way_to_docker(host: dict[str, bool], monkeypatch) -> None:
    monkeypatch.setattr(libvirt, "vm_accel", lambda: PVM)
    assert providers.choose() == providers.Choice(
        "docker", "libvirt would emulate here (PVM): using docker; --provider libvirt for real VMs"
    )


def test_emulated_libvirt_without_docker_is_still_libvirt(
    host: dict[str, bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(libvirt, "vm_accel", lambda: PVM)
    host["docker"] = False
    assert providers.choose() == providers.Choice("libvirt")


def test_virtualbox_comes_first_and_never_emulates(host: dict[str, bool], monkeypatch) -> None:
    monkeypatch.setattr(libvirt, "vm_accel", lambda: PVM)
    host["virtualbox"] = True
    assert providers.choose() == providers.Choice("virtualbox")


def test_no_usable_provider_says_how_to_find_out(host: dict[str, bool]) -> None:
    host.update(libvirt=False, docker=False)
    with pytest.raises(SpecError, match="no usable Vagrant provider"):
        providers.choose()


def lab_file(tmp_path: Path, provider: str = "") -> str:
    path = tmp_path / "lab.yaml"
    path.write_text((f"provider: {provider}\n" if provider else "") + "machines:\n  vm: {}\n")
    return str(path)


@pytest.fixture
def home(tmp_path: Path, host: dict[str, bool], monkeypatch: pytest.MonkeyPatch) -> LabHome:
    monkeypatch.setattr(libvirt, "vm_accel", lambda: PVM)
    (tmp_path / "home").mkdir()
    return LabHome(tmp_path / "home")


def test_up_says_which_provider_it_took_and_why(home: LabHome, tmp_path: Path) -> None:
    prepared = prepare(home, None, "new", Request(file=lab_file(tmp_path)), Purpose.UP)
    assert prepared.spec.provider == "docker"
    assert prepared.notes == (
        "libvirt would emulate here (PVM): using docker; --provider libvirt for real VMs",
    )


@pytest.mark.parametrize(
    ("request_", "env"),
    [
        (Request(provider="libvirt"), {}),  # --provider
        (Request(), {"LABCTL_PROVIDER": "libvirt"}),
        (None, {}),  # the lab file's provider:
    ],
)
def test_a_provider_named_is_taken_without_a_word(
    home: LabHome,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request_: Request | None,
    env: dict[str, str],
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    given = request_ or Request()
    path = lab_file(tmp_path, "" if request_ else "libvirt")
    req = Request(file=path, provider=given.provider)
    prepared = prepare(home, None, "named", req, Purpose.UP)
    assert (prepared.spec.provider, prepared.notes) == ("libvirt", ())


def test_an_existing_lab_keeps_its_provider(home: LabHome, tmp_path: Path) -> None:
    old = topology("nodes", "libvirt", count=1, name="old")
    render.write_tree(render.lab_files(old, ""), home.paths("old").root)
    prepared = prepare(home, None, "old", Request(file=lab_file(tmp_path)), Purpose.UP)
    assert (prepared.spec.provider, prepared.notes) == ("libvirt", ())

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from labctl.errors import LabBusy, SpecError
from labctl.home import LabHome
from labctl.spec import spec_to_record

from .labs import topology


def add_lab(home: LabHome, name: str, subnet: str) -> None:
    spec = topology("nodes", name=name, subnet=subnet, lab_id=name)
    root = home.root / name
    root.mkdir(parents=True)
    (root / "lab.json").write_text(json.dumps(spec_to_record(spec)))


def test_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABCTL_LAB", raising=False)
    home = LabHome(tmp_path)
    with pytest.raises(SpecError, match="no lab in"):
        home.resolve(None)
    add_lab(home, "one", "192.168.56")
    assert home.resolve(None) == "one"
    add_lab(home, "two", "192.168.57")
    with pytest.raises(SpecError, match=r"several labs exist \(one, two\)"):
        home.resolve(None)
    assert home.resolve("two") == "two"
    monkeypatch.setenv("LABCTL_LAB", "one")
    assert home.resolve(None) == "one"
    with pytest.raises(SpecError, match=r"no lab named 'three'.*\(labs: one, two\)"):
        home.resolve("three")


def test_free_subnet_skips_used(tmp_path: Path) -> None:
    home = LabHome(tmp_path)
    assert home.free_subnet() == "192.168.56"
    add_lab(home, "a", "192.168.56")
    add_lab(home, "b", "192.168.58")
    assert home.free_subnet() == "192.168.57"
    with pytest.raises(SpecError, match="already used by lab 'b'"):
        home.check_subnet_free("192.168.58", "c")
    home.check_subnet_free("192.168.58", "b")  # its own subnet


def test_lock_is_exclusive_and_says_who(tmp_path: Path) -> None:
    home = LabHome(tmp_path)
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with home.lock("lab", "up"):
            held.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    # flock is per open file description, so a second open in this process conflicts too
    with pytest.raises(LabBusy, match=r"labctl up \(pid \d+\)") as exc, home.lock("lab", "halt"):
        pass
    assert exc.value.exit_code == 75
    # a refused labctl leaves the holder's lock alone, so the next is refused too
    assert (tmp_path / ".locks" / "lab.lock").exists()
    with pytest.raises(LabBusy), home.lock("lab", "destroy"):
        pass
    release.set()
    t.join()
    assert not (tmp_path / ".locks" / "lab.lock").exists()  # no lab folder: no lock file
    with home.lock("lab", "halt"):
        pass

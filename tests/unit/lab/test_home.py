from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from labctl.errors import LabBusy, SpecError
from labctl.lab.home import LabHome
from labctl.lab.spec import spec_to_record
from labctl.ops.up.folder import staged
from labctl.project import render

from ..labs import topology


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
    add_lab(home, "x", "192.168.58")
    (home.root / "x").rename(home.root / ".render-x-0a1b2c")
    assert home.names() == ["one", "two"], "a staging folder is not a lab"


def test_a_staging_folder_is_gone_whatever_stops_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = LabHome(tmp_path / "labs")
    spec = topology("nodes", name="demo", subnet="192.168.56", lab_id="demo")

    def interrupted(files: object, root: Path) -> None:
        root.mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(render, "write_tree", interrupted)
    with pytest.raises(KeyboardInterrupt), staged(home, spec, {"Vagrantfile": ""}):
        pass
    assert list(home.root.iterdir()) == []


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


def test_readers_share_the_lab_and_keep_writers_out(tmp_path: Path) -> None:
    home = LabHome(tmp_path)
    (tmp_path / "lab").mkdir()
    with home.lock("lab", "read", shared=True), home.lock("lab", "read", shared=True):
        # two readers at once; a writer is kept out, told it is a reader
        with pytest.raises(LabBusy, match="another labctl") as exc, home.lock("lab", "destroy"):
            pass
        assert exc.value.exit_code == 75
        assert "pid" not in exc.value.message  # no finished writer named
    # a writer keeps readers out, and says who it is
    with (
        home.lock("lab", "destroy"),
        pytest.raises(LabBusy, match=r"labctl destroy \(pid \d+\)"),
        home.lock("lab", "read", shared=True),
    ):
        pass
    with home.lock("lab", "read", shared=True):  # free again
        pass


def test_a_session_holds_the_lab_unless_told_not_to(tmp_path: Path) -> None:
    import json

    from labctl.lab.spec import spec_to_record
    from labctl.session.group import LabSession

    from ..labs import topology

    home = LabHome(tmp_path)
    (tmp_path / "lab").mkdir()
    spec = topology("nodes", count=1, name="lab")
    (tmp_path / "lab" / "lab.json").write_text(json.dumps(spec_to_record(spec)))
    with LabSession(home, "lab"), pytest.raises(LabBusy), home.lock("lab", "destroy"):
        pass
    with home.lock("lab", "up"), LabSession(home, "lab", hold=False) as session:
        assert session.spec.name == "lab"  # a role's set-up inside up
    with pytest.raises(LabBusy), home.lock("lab", "up"), LabSession(home, "lab"):
        pass
    with home.lock("lab", "destroy"):  # every hold was let go
        pass

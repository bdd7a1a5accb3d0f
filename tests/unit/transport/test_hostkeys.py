"""Host key pinning (per lab, per machine); unreadable pins fail closed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.errors import ConnectError, LabctlError
from labctl.transport.hostkeys import HostKeys


def see(keys: HostKeys, *seen: str) -> None:
    """What a connection does: check the key, then pin it once logged in."""
    if keys.check(*seen):
        keys.pin(*seen)


def test_first_contact_pins_then_the_same_key_passes(tmp_path: Path) -> None:
    keys = HostKeys(tmp_path / "host-keys.json")
    assert keys.check("node1", "id-1", "ssh-ed25519", "AAAA1")
    assert not (tmp_path / "host-keys.json").exists()  # nothing pinned before the login
    keys.pin("node1", "id-1", "ssh-ed25519", "AAAA1")
    assert not keys.check("node1", "id-1", "ssh-ed25519", "AAAA1")
    pins = json.loads((tmp_path / "host-keys.json").read_text())
    assert pins == {"node1": {"id": "id-1", "type": "ssh-ed25519", "key": "AAAA1"}}
    assert oct((tmp_path / "host-keys.json").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("machine_id", ["id-1", ""])
def test_changed_key_of_the_same_machine_is_refused(tmp_path: Path, machine_id: str) -> None:
    """The same incarnation, or one Vagrant has no record of."""
    keys = HostKeys(tmp_path / "host-keys.json")
    see(keys, "node1", "id-1", "ssh-ed25519", "AAAA1")
    with pytest.raises(ConnectError, match="host key of machine 'node1' changed") as exc:
        keys.check("node1", machine_id, "ssh-ed25519", "EVIL")
    assert exc.value.pinned
    assert json.loads((tmp_path / "host-keys.json").read_text())["node1"]["key"] == "AAAA1"


def test_recreated_machine_is_pinned_again(tmp_path: Path) -> None:
    keys = HostKeys(tmp_path / "host-keys.json")
    see(keys, "node1", "id-1", "ssh-ed25519", "AAAA1")
    see(keys, "node1", "id-2", "ssh-ed25519", "BBBB2")  # vagrant destroy + up: a new id
    assert json.loads((tmp_path / "host-keys.json").read_text())["node1"] == {
        "id": "id-2",
        "type": "ssh-ed25519",
        "key": "BBBB2",
    }


def test_pins_are_per_machine_not_per_port(tmp_path: Path) -> None:
    keys = HostKeys(tmp_path / "host-keys.json")
    see(keys, "node1", "id-1", "ssh-ed25519", "AAAA1")
    see(keys, "node2", "id-9", "ssh-ed25519", "CCCC3")  # node1's old address, another machine
    assert set(json.loads((tmp_path / "host-keys.json").read_text())) == {"node1", "node2"}


def test_machines_pinned_at_once_by_several_labctls_are_all_kept(tmp_path: Path) -> None:
    """Readers started together each pin their first machine: none writes
    back the file it read over another's pin (each HostKeys here is one
    labctl; the file lock is what keeps them apart)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "host-keys.json"
    start = threading.Barrier(12)

    def one(i: int) -> None:
        keys = HostKeys(path)
        start.wait()
        keys.pin(f"node{i}", f"id-{i}", "ssh-ed25519", f"AAAA{i}")

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(one, range(12)))
    assert sorted(json.loads(path.read_text())) == sorted(f"node{i}" for i in range(12))


@pytest.mark.parametrize(
    "text",
    ["{not json", '["a list"]', '{"node1": {"type": "ssh-ed25519"}}', '{"node1": "x"}'],
)
def test_unreadable_host_keys_fail_closed(tmp_path: Path, text: str) -> None:
    path = tmp_path / "host-keys.json"
    path.write_text(text)
    keys = HostKeys(path)
    with pytest.raises(LabctlError, match="cannot read the pinned host keys") as exc:
        keys.check("node1", "id1", "ssh-ed25519", "AAAA")
    assert exc.value.hint and "delete the file" in exc.value.hint
    with pytest.raises(LabctlError):
        keys.pinned()


def test_missing_host_keys_are_a_fresh_start(tmp_path: Path) -> None:
    keys = HostKeys(tmp_path / "host-keys.json")
    assert keys.check("node1", "id1", "ssh-ed25519", "AAAA") is True
    keys.pin("node1", "id1", "ssh-ed25519", "AAAA")
    assert keys.pinned() == {"node1": ("ssh-ed25519", "AAAA")}

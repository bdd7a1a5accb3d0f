"""Building the docker box, as the programs it runs (debootstrap, chroot,
bash for the import pipe): a fake host (conftest.py) answers each one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.local import process
from labctl.providers import docker as docker_box
from labctl.providers import packages
from labctl.transport.interface import Endpoint

from ..captured import load
from .conftest import FakeHost


def test_the_docker_box_as_its_programs(
    fake_host: FakeHost, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(docker_box, "inspect_image", lambda image=docker_box.DOCKER_BOX: None)
    monkeypatch.setattr(
        docker_box.tempfile, "mkdtemp", lambda prefix, dir: str(tmp_path / "work" / "build")
    )
    assert docker_box.build(on_event=lambda event: None)
    assert fake_host.programs() == [
        "debootstrap",
        *["chroot"] * 4,  # the vagrant user, its key, its services
        "chroot",  # which of the roles' packages the suite ships
        *["mount", "chroot", "umount"],  # installed with /proc mounted
        *["chroot"] * 3,  # disabled, cleaned, their versions asked
        "bash",
    ]
    pipe = fake_host.calls[-1]
    assert pipe[:4] == ["bash", "-o", "pipefail", "-c"]
    assert pipe[4] == docker_box.IMPORT_PIPE and pipe[7] == docker_box.DOCKER_BOX
    labels = dict(arg.removeprefix("--change=LABEL ").split("=", 1) for arg in pipe[8:])
    assert labels["io.labctl.box.lists"] == f'"{packages.lists_digest(packages.role_packages())}"'
    assert "containerd=1.0-" in labels["io.labctl.box.packages"]


def test_the_docker_box_knows_what_it_carries_from_its_labels() -> None:
    lists = packages.role_packages()
    manifest = packages.manifest_of(lists, {"containerd": "1.6.20~ds1-1+deb12u3"}, now=0)
    inspected = {"Id": "sha256:14e06e94413004adb2", "Size": 945851078}
    answer = json.dumps([{**inspected, "Config": {"Labels": manifest.labels()}}])
    found = docker_box.parse_image(process.Completed(("docker",), 0, answer, ""))
    assert found is not None
    box = docker_box.box_info(docker_box.DOCKER_BOX, found)
    assert (box.provider, box.version, box.size) == ("docker", "14e06e944130", 945851078)
    assert (box.manifest, box.state) == (manifest, packages.Freshness.CURRENT)
    # built by an older labctl: no labels at all
    old = docker_box.box_info(
        docker_box.DOCKER_BOX, {"Id": "sha256:ab", "Config": {"Labels": None}}
    )
    assert (old.manifest, old.state) == (None, packages.Freshness.UNRECORDED)
    assert docker_box.parse_image(process.Completed(("docker",), 0, "[]", "")) is None


def test_up_says_when_the_docker_box_is_not_current(monkeypatch: pytest.MonkeyPatch) -> None:
    from ..labs import topology

    spec = topology("nodes", "docker", count=2)
    stale = packages.manifest_of({"containerd": ("containerd",)}, {}, now=0)
    labels = {"Id": "sha256:ab", "Config": {"Labels": stale.labels()}}
    monkeypatch.setattr(docker_box, "engine_answers", lambda timeout=10.0: True)
    monkeypatch.setattr(docker_box, "inspect_image", lambda image=docker_box.DOCKER_BOX: labels)
    monkeypatch.setattr(docker_box, "refuse_foreign_containers", lambda spec: None)
    said: list[str] = []
    provider = docker_box.Docker()
    provider.ready(spec, lambda event: said.append(event.text))
    assert said == [
        f"box {docker_box.DOCKER_BOX} was built from older role package lists: the roles will "
        "install what it lacks (labctl box build to rebuild)"
    ]
    said.clear()  # machines already made have their own root file system: nothing to say
    provider.ready(spec, lambda event: said.append(event.text), frozenset({"node1", "node2"}))
    assert said == []
    assert [b.state for b in provider.boxes()] == [packages.Freshness.STALE]


# ---------------------------------------------------------------- ssh endpoints

NODE1 = "741d05b82b0c91153fd1c5232a1b77f5080bb31439ca97cbb50933ce89d22d99"
NODE2 = "da845d1bbce34a650992490e7fc52d83710c08bd6dbc897d2ff5710d7b0d4f6e"


def _keys(vagrant_dir: Path, *machines: str) -> None:
    for m in machines:
        folder = vagrant_dir / "machines" / m / "docker"
        folder.mkdir(parents=True)
        (folder / "private_key").write_text("key\n")


def _answering(relative: str, asked: list[list[str]]):
    def run(argv):
        asked.append(list(argv))
        return load(relative).completed()

    return run


def test_a_running_machine_is_reached_as_vagrant_would(tmp_path: Path) -> None:
    """Vagrant's docker provider: the container's bridge address, port 22,
    user vagrant, the key it put in the machine's folder."""
    _keys(tmp_path, "node1")
    asked: list[list[str]] = []
    found = docker_box.ssh_endpoints(
        {"node1": NODE1}, tmp_path, _answering("providers/docker-inspect.txt", asked)
    )
    key = str(tmp_path / "machines" / "node1" / "docker" / "private_key")
    assert found == {"node1": Endpoint("node1", "172.17.0.2", 22, "vagrant", key)}
    assert asked == [["docker", "inspect", "--type", "container", NODE1]]


@pytest.mark.parametrize(
    ("ids", "keyed", "capture"),
    [
        ({"node1": NODE1, "node2": NODE2}, ("node1", "node2"), "docker-inspect.txt"),  # exited
        ({"node1": NODE1}, (), "docker-inspect.txt"),  # Vagrant's insecure key still
        ({"node1": NODE1}, ("node1",), "docker-inspect-no-engine.txt"),
        ({"node1": "0" * 64}, ("node1",), "docker-inspect.txt"),  # no such container
    ],
)
def test_anything_else_is_left_to_vagrant(
    tmp_path: Path, ids: dict[str, str], keyed: tuple[str, ...], capture: str
) -> None:
    _keys(tmp_path, *keyed)
    asked: list[list[str]] = []
    run = _answering(f"providers/{capture}", asked)
    assert docker_box.ssh_endpoints(ids, tmp_path, run) is None
    assert len(asked) == (1 if keyed else 0)  # no key: docker not even asked

"""Building the docker box, as the programs it runs (debootstrap, chroot,
bash for the import pipe): a fake host (conftest.py) answers each one."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.providers import docker as docker_box

from .conftest import FakeHost


def test_the_docker_box_as_its_programs(
    fake_host: FakeHost, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(docker_box, "image_present", lambda image=docker_box.DOCKER_BOX: False)
    monkeypatch.setattr(
        docker_box.tempfile, "mkdtemp", lambda prefix, dir: str(tmp_path / "work" / "build")
    )
    assert docker_box.build(on_event=lambda event: None)
    assert fake_host.programs() == ["debootstrap", *["chroot"] * 4, "bash"]
    pipe = fake_host.calls[-1]
    assert pipe[:4] == ["bash", "-o", "pipefail", "-c"]
    assert pipe[4] == docker_box.IMPORT_PIPE and pipe[-1] == docker_box.DOCKER_BOX

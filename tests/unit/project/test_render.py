"""Rendering: Ruby literals, golden Vagrantfiles per topology and provider, and
`vagrant validate` on each (real Vagrant)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from labctl.project import render

from ...conftest import DATA, require
from ..labs import from_text, topology

GOLDEN = DATA / "golden"
CASES = [
    ("nodes", "docker", {"count": 2}),
    ("nodes", "virtualbox", {"count": 2}),
    (
        "nodes",
        "libvirt",
        {"count": 2, "libvirt_uri": "qemu+ssh://lab@big-host/system", "mgmt_subnet": "192.168.59"},
    ),
    ("jenkins", "docker", {"agents": 2}),
    ("jenkins", "virtualbox", {"agents": 2}),
    ("jenkins", "libvirt", {"agents": 2, "mgmt_subnet": "192.168.59"}),
    ("mysql-pair", "docker", {"replicas": 2}),
    ("mysql-pair", "virtualbox", {"replicas": 2}),
    ("mysql-pair", "libvirt", {"replicas": 2, "mgmt_subnet": "192.168.59"}),
]


def make_spec(name: str, provider: str, **kw: object):
    return topology(
        name,
        provider,
        name=f"g-{name}",
        subnet="192.168.60",
        timezone="Europe/Paris",
        lab_id="0123456789ab",
        **kw,
    )


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plain", "'plain'"),
        ("it's", "'it\\'s'"),
        ("#{system('id')}", "'#{system(\\'id\\')}'"),
        ("back\\slash", "'back\\\\slash'"),
        ('"double"', "'\"double\"'"),
        (3, "3"),
        (True, "true"),
        (None, "nil"),
        (["a", 1], "['a', 1]"),
        ({"K": "v"}, "{'K' => 'v'}"),
    ],
)
def test_ruby_literals(value: object, literal: str) -> None:
    assert render.ruby(value) == literal


def test_ruby_refuses_unknown_types() -> None:
    with pytest.raises(TypeError):
        render.ruby(object())


@pytest.mark.parametrize(("topology", "provider", "kw"), CASES)
def test_golden_vagrantfiles(topology: str, provider: str, kw: dict) -> None:
    text = render.render_vagrantfile(make_spec(topology, provider, **kw))
    _compare(text, GOLDEN / f"{topology}-{provider}.Vagrantfile")


def _compare(text: str, golden: Path) -> None:
    """Only ever compared: `make golden` rewrites the files, for review."""
    assert text == golden.read_text()


def goldens() -> dict[Path, str]:
    """Every golden Vagrantfile and what it must hold (for `make golden`)."""
    found = {
        GOLDEN / f"{t}-{p}.Vagrantfile": render.render_vagrantfile(make_spec(t, p, **kw))
        for t, p, kw in CASES
    }
    for path in EXAMPLES:
        for provider in ("docker", "libvirt"):
            found[GOLDEN / f"example-{path.parent.name}-{provider}.Vagrantfile"] = (
                render.render_vagrantfile(example_spec(path, provider).spec)
            )
    return found


EXAMPLES = sorted((Path(__file__).parents[3] / "examples").glob("*/lab.yaml"))


def example_spec(path: Path, provider: str):
    return from_text(
        path.read_text(),
        base_dir=path.parent,
        provider=provider,
        name=path.parent.name,
        subnet="192.168.61",
        lab_id="0123456789ab",
        mgmt_subnet="192.168.62" if provider == "libvirt" else None,
    )


@pytest.mark.parametrize("provider", ["docker", "libvirt"])
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_golden_examples(path: Path, provider: str) -> None:
    built = example_spec(path, provider)
    text = render.render_vagrantfile(built.spec)
    _compare(text, GOLDEN / f"example-{path.parent.name}-{provider}.Vagrantfile")


def test_examples_exist() -> None:
    assert [p.parent.name for p in EXAMPLES] == ["mixed"]


def test_docker_block_has_the_container_flags() -> None:
    text = render.render_vagrantfile(make_spec("nodes", "docker", count=1))
    for flag in (
        "--cap-add=SYS_ADMIN",
        "--cgroupns=host",
        "--tmpfs=/run",
        "--volume=/var/lib/containerd",
        "--security-opt=seccomp=unconfined",
    ):
        assert flag in text
    assert "--privileged" not in text
    assert "d.has_ssh = true" in text
    assert "config.vm.box" not in text  # docker runs an image, not a box


def test_forwarded_port_binds_loopback() -> None:
    text = render.render_vagrantfile(make_spec("jenkins", "virtualbox", agents=0))
    assert (
        'node.vm.network "forwarded_port", id: \'jenkins\', guest: 8080, host: 8080, host_ip: "127.0.0.1"'
        in text
    )


def test_lab_files_carry_only_used_scripts() -> None:
    files = render.lab_files(make_spec("nodes", "docker", count=1, containerd=False), "")
    assert sorted(files) == [
        "Vagrantfile",
        "lab.json",
        "lab.yaml",
        "provision/common.sh",
        "provision/lib.sh",
    ]


def test_hostile_values_stay_data() -> None:
    # A time zone is the one free-form string that reaches a template from the host.
    spec = make_spec("nodes", "docker", count=1)
    from dataclasses import replace

    evil = replace(spec, timezone="x'; `touch /tmp/pwned`; '")
    evil_machines = tuple(
        replace(
            m,
            provisioners=tuple(
                replace(p, env={**p.env, "LAB_TIMEZONE": evil.timezone}) for p in m.provisioners
            ),
        )
        for m in spec.machines
    )
    text = render.render_vagrantfile(replace(evil, machines=evil_machines))
    assert "'x\\'; `touch /tmp/pwned`; \\''" in text


def _virtualbox_stand_in(tmp_path: Path) -> str:
    """VirtualBox cannot run in this sandbox; Vagrant only asks `VBoxManage
    --version` before validating the virtualbox block, so a stand-in that
    answers that lets Vagrant check every vb.* setting for real."""
    if shutil.which("VBoxManage"):
        return os.environ["PATH"]
    bindir = tmp_path / "bin"
    bindir.mkdir()
    stub = bindir / "VBoxManage"
    stub.write_text("#!/bin/sh\necho 7.0.14r161095\n")
    stub.chmod(0o755)
    return f"{bindir}:{os.environ['PATH']}"


@pytest.mark.vagrant
@pytest.mark.parametrize(("topology", "provider", "kw"), CASES)
def test_vagrant_validates(topology: str, provider: str, kw: dict, tmp_path: Path) -> None:
    require(shutil.which("vagrant"), "vagrant is not installed")
    root = tmp_path / "lab"
    render.write_tree(render.lab_files(make_spec(topology, provider, **kw), ""), root)
    path = _virtualbox_stand_in(tmp_path) if provider == "virtualbox" else os.environ["PATH"]
    env = {**os.environ, "VAGRANT_CHECKPOINT_DISABLE": "1", "PATH": path}
    done = subprocess.run(
        ["vagrant", "validate"], cwd=root, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validated successfully" in done.stdout


@pytest.mark.vagrant
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_vagrant_validates_examples(path: Path, tmp_path: Path) -> None:
    require(shutil.which("vagrant"), "vagrant is not installed")
    built = example_spec(path, "docker")
    root = tmp_path / "lab"
    render.write_tree(render.lab_files(built.spec, built.normalised, built.scripts), root)
    assert (root / "provision/user/scripts/app.sh").read_bytes() == (
        path.parent / "scripts/app.sh"
    ).read_bytes()
    done = subprocess.run(
        ["vagrant", "validate"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "VAGRANT_CHECKPOINT_DISABLE": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr

"""A lab acts on its own machines only, whatever Vagrant's host-wide machine
index holds. Vagrant answers a machine name with any indexed machine whose id
begins with it (hashicorp/vagrant#4556): here another lab runs beside ours,
and its machine is planted in the index again under ids beginning with every
hex prefix of our machines' names. Our up, status, provision, halt and
destroy, and plain `vagrant status` in our folder, touch only ours."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

from .conftest import Labctl, containers_of, destroy_and_check, docker

OURS = ("db-1", "cafe-2")  # hex prefixes d, db, c, ca, caf, cafe


def _state(lab: str) -> list[str]:
    """Each container of `lab`: running?, and when it last started."""
    ids = containers_of(lab)
    return docker("inspect", "-f", "{{.State.Running}} {{.State.StartedAt}}", *ids).splitlines()


def _plant(index: Path, entry: dict[str, object], names: tuple[str, ...]) -> list[str]:
    """`entry` again under an id beginning with every hex prefix of `names`."""
    data = json.loads(index.read_text())
    planted = []
    for name in names:
        for end in range(1, len(name) + 1):
            prefix = name[:end]
            if any(c not in "0123456789abcdef" for c in prefix):
                break
            uuid = prefix + secrets.token_hex(16)[len(prefix) :]
            data["machines"][uuid] = entry
            planted.append(uuid)
    tmp = index.with_suffix(".labctl-test")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, index)
    return planted


def test_only_our_machines_whatever_the_machine_index_holds(
    labctl: Labctl, lab_home: Path, tmp_path: Path
) -> None:
    env = {"VAGRANT_HOME": str(tmp_path / "vagrant.d")}  # this test's own index
    other, ours = "e2e-idx-other", "e2e-idx-ours"
    (tmp_path / "lab.yaml").write_text(
        # no subnet: labctl takes a free one (other runs on this host may hold the tests' own)
        f"name: {ours}\nprovider: docker\nmachines:\n"
        + "".join(f"  {name}: {{}}\n" for name in OURS)
    )
    try:
        up = labctl(
            "up", "nodes", "--name", other, "--count", "1", "--no-containerd",
            "--provider", "docker", "-q", env=env,
        )  # fmt: skip
        assert up.code == 0, up.stderr[-2000:]
        index = tmp_path / "vagrant.d" / "data" / "machine-index" / "index"
        (entry,) = json.loads(index.read_text())["machines"].values()
        planted = _plant(index, entry, OURS)
        assert len(planted) == 6
        before = _state(other)
        assert all(s.startswith("true ") for s in before)

        steps = [
            ("up", "-f", str(tmp_path / "lab.yaml"), "-q"),
            ("status", ours, "--json"),
            ("provision", ours, "db-1"),
            ("halt", ours),
        ]
        for argv in steps:
            done = labctl(*argv, env=env)
            assert done.code == 0, (argv, done.stderr[-2000:])
            assert _state(other) == before, f"{argv} touched {other}"
        assert {
            r["name"]: r["state"] for r in labctl("status", ours, "--json", env=env).json()
        } == {name: "stopped" for name in OURS}
        # the lab folder is a plain Vagrant project that plain vagrant drives safely
        plain = subprocess.run(
            ["vagrant", "status", "--machine-readable"],
            cwd=lab_home / ours,
            capture_output=True,
            text=True,
            env={**os.environ, **env},
        )
        assert plain.returncode == 0, plain.stderr
        named = {line.split(",")[1] for line in plain.stdout.splitlines() if ",state," in line}
        assert named == set(OURS)

        # a name Vagrant would take for an id is refused before anything is done
        (tmp_path / "hex.yaml").write_text(
            f"name: e2e-idx-hex\nprovider: docker\nmachines:\n  {OURS[0].replace('-', '')}: {{}}\n"
        )
        hex_up = labctl("up", "-f", str(tmp_path / "hex.yaml"), env=env)
        assert hex_up.code == 2 and "only hexadecimal digits" in hex_up.stderr, hex_up.stderr
        assert not (lab_home / "e2e-idx-hex").exists()

        gone = labctl("destroy", ours, "--yes", env=env)
        assert gone.code == 0, gone.stderr[-2000:]
        assert containers_of(ours) == []
        assert _state(other) == before
    finally:
        for lab in (ours, other):
            labctl("destroy", lab, "--yes", env=env)
            destroy_and_check(labctl, lab)

"""Fast labs (issue 28): `up` against its floor, a plain `vagrant up
--no-provision` of the very Vagrantfile labctl rendered for the lab (what
Vagrant and the machines themselves cost), in turns; the host package
cache's second install; and labctl's boxes, their sizes and build times.

Run alone with `python tools/bench/fastlabs.py [docker|libvirt|cache]...`;
`make bench` runs it after the other figures.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests import installed  # noqa: E402  (run as a script: the repository first on the path)

LABCTL = [str(installed.labctl_under_test())]


@dataclass(frozen=True)
class Case:
    """One lab measured against its floor; `goal` is the most `up` may cost
    as a multiple of the floor, `cap` in seconds (0: none)."""

    label: str
    lab: str
    args: tuple[str, ...]
    provider: str
    subnet: str
    goal: float
    cap: float = 0.0
    check: tuple[str, ...] = ()  # run after up, inside the measured time


CASES = {
    "docker": [
        Case(
            "docker, up nodes --count 3 (containerd)",
            "fast3",
            ("up", "nodes", "--count", "3", "--containerd"),
            "docker",
            "192.168.196",
            1.5,
        ),
        Case(
            "docker, mysql-pair --replicas 2 to healthy",
            "fastpair",
            ("mysql-pair", "--replicas", "2", "--no-containerd"),
            "docker",
            "192.168.197",
            2.0,
            cap=30.0,
            check=("mysql", "check"),
        ),
    ],
    "libvirt": [
        Case(
            "libvirt (emulated), up nodes --count 2 (containerd)",
            "fastvm",
            ("up", "nodes", "--count", "2", "--containerd"),
            "libvirt",
            "192.168.198",
            1.5,
        )
    ],
}


def run(argv: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> float:
    """Seconds `argv` took; SystemExit with its output when it fails."""
    start = time.perf_counter()
    done = subprocess.run(list(argv), env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{(done.stdout + done.stderr)[-3000:]}")
    return took


def quietly(argv: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> None:
    subprocess.run(list(argv), env=env, cwd=cwd, capture_output=True)


def lab_args(case: Case) -> list[str]:
    return [*case.args, "--name", case.lab, "--provider", case.provider, "--subnet", case.subnet]


def floor(case: Case, env: dict[str, str]) -> float:
    """`vagrant up --no-provision` of the Vagrantfile labctl renders for the
    lab, in its folder; the machines destroyed after."""
    rendered = subprocess.run(
        [*LABCTL, "render", *(lab_args(case)[1:] if case.args[0] == "up" else lab_args(case))],
        env=env,
        capture_output=True,
        text=True,
    )
    if rendered.returncode != 0:
        raise SystemExit(f"render of {case.lab} failed:\n{rendered.stderr[-2000:]}")
    folder = Path(rendered.stdout.strip().splitlines()[-1])
    try:
        return run(["vagrant", "up", "--no-provision"], env, cwd=folder)
    finally:
        quietly(["vagrant", "destroy", "-f"], env, cwd=folder)
        quietly([*LABCTL, "destroy", case.lab, "--yes"], env)


def labctl_up(case: Case, env: dict[str, str]) -> float:
    up = [*LABCTL, *lab_args(case), "-q"]
    try:
        took = run(up, env)
        if case.check:
            took += run([*LABCTL, *case.check, "--lab", case.lab], env)
        return took
    finally:
        quietly([*LABCTL, "destroy", case.lab, "--yes"], env)


def measure(case: Case, env: dict[str, str], rounds: int) -> tuple[float, float]:
    """(floor, up): the smallest of `rounds` each, taken in turns."""
    floors, ups = [], []
    for n in range(rounds):
        print(f"  {case.label}: round {n + 1} of {rounds}...", flush=True)
        floors.append(floor(case, env))
        ups.append(labctl_up(case, env))
    return min(floors), min(ups)


def free_port() -> int:
    for port in range(3143, 3200):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise SystemExit("no free port for the bench's package cache")


CACHE_LAB = """\
name: {name}
machines:
  one:
    provision: [extra.sh]
"""
# Packages no box carries: what a user's own script would install.
EXTRA = "gcc make"
CACHE_SCRIPT = f"""#!/usr/bin/env bash
set -euo pipefail
apt-get update -qq
apt-get install -y -qq --no-install-recommends {EXTRA}
"""


def cache(env: dict[str, str]) -> dict[str, float]:
    """The same extra packages installed in two labs, one after the other,
    through a package cache of the bench's own (its folder, its port)."""
    folder = Path(tempfile.mkdtemp(prefix="labctl-bench-cache-"))
    env = {**env, "LABCTL_HOST_DIR": str(folder / "host"), "LABCTL_CACHE_PORT": str(free_port())}
    run([*LABCTL, "cache", "start"], env)
    figures: dict[str, float] = {}
    try:
        for n, name in enumerate(("cachea", "cacheb")):
            lab = folder / name
            lab.mkdir()
            (lab / "lab.yaml").write_text(CACHE_LAB.format(name=name))
            (lab / "extra.sh").write_text(CACHE_SCRIPT)
            up = [*LABCTL, "up", "-f", str(lab / "lab.yaml"), "--provider", "docker", "-q"]
            try:
                figures[("first", "second")[n]] = run([*up, "--subnet", f"192.168.{199 - n}"], env)
            finally:
                quietly([*LABCTL, "destroy", name, "--yes"], env)
        state = json.loads(
            subprocess.run(
                [*LABCTL, "cache", "status", "--json"], env=env, capture_output=True, text=True
            ).stdout
        )
        figures.update({f"cache {k}": float(v) for k, v in state["stats"].items()})
    finally:
        quietly([*LABCTL, "cache", "stop"], env)
        shutil.rmtree(folder, ignore_errors=True)
    return figures


def boxes(env: dict[str, str]) -> list[dict[str, object]]:
    done = subprocess.run([*LABCTL, "box", "ls", "--json"], env=env, capture_output=True, text=True)
    return list(json.loads(done.stdout)) if done.returncode == 0 else []


def libvirt_here() -> bool:
    answers = subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True)
    return answers.returncode == 0


def report(
    results: dict[str, tuple[Case, float, float]],
    cached: dict[str, float],
    listed: list[dict[str, object]],
) -> list[tuple[str, bool]]:
    """Print the figures; the goals, each with whether it is met."""
    goals: list[tuple[str, bool]] = []
    print("fast labs: labctl up against a plain vagrant up --no-provision of its Vagrantfile")
    for case, bare, up in results.values():
        ratio = up / bare
        print(f"  {case.label:<52} floor {bare:6.1f} s   up {up:6.1f} s   {ratio:4.2f}x")
        goals.append(
            (f"{case.label}: {ratio:.2f}x the floor (<= {case.goal:g}x)", ratio <= case.goal)
        )
        if case.cap:
            goals.append((f"{case.label}: {up:.1f} s (<= {case.cap:g} s)", up <= case.cap))
    if cached:
        print(
            f"  package cache, {EXTRA} in a user's script: first lab {cached['first']:.1f} s, "
            f"second {cached['second']:.1f} s; {cached['cache hits']:.0f} hits, "
            f"{cached['cache misses']:.0f} misses, "
            f"{cached['cache bytes_fetched'] / 1e6:.1f} MB fetched once"
        )
        goals.append(
            (
                f"package cache: the second lab's {cached['cache hits']:.0f} packages from it",
                cached["cache hits"] >= cached["cache misses"] > 0,
            )
        )
    for box in listed:
        print(
            f"  box {box['provider']:<8} {box['name']:<24} {int(box['size']) / 1e6:6.0f} MB  "  # type: ignore[call-overload]
            f"carries {','.join(box['carries']) or '-'}  ({box['state']})"  # type: ignore[arg-type]
        )
    print()
    return goals


def main(parts: Sequence[str] = ()) -> list[tuple[str, bool]]:
    chosen = list(parts) or ["docker", "cache", *(["libvirt"] if libvirt_here() else [])]
    home = tempfile.mkdtemp(prefix="labctl-bench-fast-")
    env = {**os.environ, "LABCTL_HOME": home, "VAGRANT_CHECKPOINT_DISABLE": "1"}
    env.pop("PYTHONPATH", None)
    results: dict[str, tuple[Case, float, float]] = {}
    cached: dict[str, float] = {}
    try:
        for part in chosen:
            if part == "cache":
                print("fast labs: the package cache...", flush=True)
                cached = cache(env)
                continue
            for case in CASES[part]:
                bare, up = measure(case, env, rounds=3 if part == "docker" else 1)
                results[case.lab] = (case, bare, up)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print()
    return report(results, cached, boxes(env))


if __name__ == "__main__":
    for text, ok in main(sys.argv[1:]):
        print(f"  {text:<70} {'met' if ok else 'NOT met'}")

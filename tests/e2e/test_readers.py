"""Readers in parallel (issue 27, finding 8): right after `up`, 16 `exec`,
8 `status` and 4 `ssh -c` started at once on one 3-machine lab, as parallel
CI jobs start them. Before, each found the ssh-config cache cold and asked
Vagrant itself, and 6 of the 28 failed on Vagrant's "machine is locked"."""

from __future__ import annotations

import time
from pathlib import Path

from .conftest import Running


def readers(lab: str) -> list[tuple[str, ...]]:
    """The 28 commands, in the order they are started."""
    execs = [("exec", "--lab", lab, "--", "hostname")] * 16
    statuses = [("status", lab)] * 8
    sshs = [("ssh", lab, f"node{i % 3 + 1}", "-c", "hostname") for i in range(4)]
    return [*execs, *statuses, *sshs]


def all_at_once(lab_home: Path, host_dir: Path, lab: str) -> list[tuple[tuple[str, ...], int, str]]:
    started = [(args, Running(lab_home, host_dir, *args)) for args in readers(lab)]
    return [(args, *run.finish(timeout=300)) for args, run in started]


def test_28_readers_right_after_up_all_succeed(labctl, make_lab, lab_home, host_dir) -> None:
    lab, subnet = make_lab("e2e-readers")
    up = labctl(
        "up", "nodes", "--count", "3", "--name", lab, "--subnet", subnet,
        "--provider", "docker", "--no-containerd", "-q",
    )  # fmt: skip
    assert up.code == 0, up.stderr[-3000:]
    cache = lab_home / lab / ".labctl" / "ssh-config.json"
    assert cache.is_file()  # `up` asked Vagrant before it let the lab go

    # warm, as `up` leaves it; then cold, as after a change made with plain
    # vagrant: one reader asks Vagrant, the 27 others wait for its answer
    for round_ in ("warm", "cold"):
        if round_ == "cold":
            cache.unlink()
        start = time.monotonic()
        done = all_at_once(lab_home, host_dir, lab)
        took = time.monotonic() - start
        failed = [(" ".join(args), code, out[-500:]) for args, code, out in done if code != 0]
        assert not failed, f"{round_}: {len(failed)} of 28 failed: {failed}"
        for args, _, out in done:
            if args[0] == "exec":
                assert sorted(line.split(": ")[0] for line in out.splitlines()) == [
                    "node1",
                    "node2",
                    "node3",
                ], out
            elif args[0] == "ssh":
                assert out.strip() == args[2], out
            else:
                assert out.count("running") == 3, out
        print(f"28 readers at once, {round_} cache: {took:.1f} s")

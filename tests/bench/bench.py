"""`make bench`: labctl's speed, measured against the tools it replaces.

1. Start-up: `labctl --help` next to `python -c pass`.
2. Listing containerd tasks in every machine of a lab, three ways, run in
   turns so that the machine's noise falls on all three alike:
   - `vagrant ssh VM -c 'sudo ctr t ls'`, one machine after the other;
   - plain OpenSSH, all machines in parallel, with a saved `vagrant ssh-config`;
   - `labctl ctr ps` (every namespace of every machine, Python start included).
   Once on a 3-machine lab, once on an 8-machine lab. Prints medians and ratios.

Goals (issue #5): labctl <= 1.5x OpenSSH with 3 machines, < 2x with 8.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LABCTL = [sys.executable, "-m", "labctl"]
SUBNET = {3: "192.168.190", 8: "192.168.191"}


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(
    argv: list[str], env: dict[str, str], check: bool = True, **kw: object
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if check and done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{done.stderr[-2000:]}")
    return done


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def startup(env: dict[str, str], rounds: int = 15) -> None:
    py, help_ = [], []
    for _ in range(rounds):
        py.append(timed(lambda: run([sys.executable, "-c", "pass"], env)))
        help_.append(timed(lambda: run([*LABCTL, "--help"], env)))
    print(f"start-up (median of {rounds})")
    print(f"  python -c pass      {median_ms(py):7.1f} ms")
    print(f"  labctl --help       {median_ms(help_):7.1f} ms")
    print()


def listing(
    count: int, env: dict[str, str], rounds: int, vagrant_rounds: int
) -> tuple[float, float, float]:
    lab = f"bench{count}"
    print(f"bringing up a {count}-machine lab (containerd in each)...", flush=True)
    up = run(
        [
            *LABCTL,
            "up",
            "nodes",
            "--name",
            lab,
            "--count",
            str(count),
            "--subnet",
            SUBNET[count],
            "--provider",
            "docker",
            "-q",
        ],
        env,
        check=False,
    )
    if up.returncode != 0:
        raise SystemExit(f"labctl up failed:\n{up.stderr[-3000:]}")
    folder = Path(env["LABCTL_HOME"]) / lab
    machines = [f"node{i}" for i in range(1, count + 1)]
    try:
        config = folder / "bench-ssh-config"
        config.write_text(run(["vagrant", "ssh-config"], env, cwd=folder).stdout)

        def vagrant_loop() -> None:
            for m in machines:
                run(["vagrant", "ssh", m, "-c", "sudo ctr t ls"], env, cwd=folder)

        def openssh_parallel() -> None:
            procs = [
                subprocess.Popen(
                    ["ssh", "-F", str(config), m, "sudo ctr t ls"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for m in machines
            ]
            if any(p.wait() for p in procs):
                raise SystemExit("openssh failed")

        def labctl_ps() -> None:
            run([*LABCTL, "ctr", "--lab", lab, "ps"], env)

        for warm in (openssh_parallel, labctl_ps):  # first contact: host keys, caches
            warm()
        samples: dict[str, list[float]] = {"vagrant": [], "openssh": [], "labctl": []}
        for i in range(rounds):
            samples["openssh"].append(timed(openssh_parallel))
            samples["labctl"].append(timed(labctl_ps))
            if i < vagrant_rounds:
                samples["vagrant"].append(timed(vagrant_loop))
        v, o, lc = (median_ms(samples[k]) for k in ("vagrant", "openssh", "labctl"))
        print(f"{count} machines (median of {rounds}; vagrant ssh: {vagrant_rounds})")
        print(f"  vagrant ssh -c, one after another  {v:8.1f} ms")
        print(f"  OpenSSH in parallel                {o:8.1f} ms")
        print(
            f"  labctl ctr ps                      {lc:8.1f} ms   = {lc / o:.2f}x OpenSSH, {v / lc:.1f}x faster than vagrant ssh"
        )
        print()
        return v, o, lc
    finally:
        run([*LABCTL, "destroy", lab, "--yes"], env, check=False)


def main() -> None:
    for tool in ("vagrant", "ssh", "docker"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed for the benchmark (make bench installs it)")
    home = tempfile.mkdtemp(prefix="labctl-bench-")
    env = {
        **os.environ,
        "LABCTL_HOME": home,
        "VAGRANT_CHECKPOINT_DISABLE": "1",
        "PYTHONPATH": str(ROOT),
    }
    try:
        startup(env)
        results = {
            count: listing(count, env, rounds, vagrant_rounds)
            for count, rounds, vagrant_rounds in ((3, 11, 3), (8, 9, 2))
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)
    three, eight = results[3][2] / results[3][1], results[8][2] / results[8][1]
    print("goals: labctl ctr ps <= 1.5x OpenSSH with 3 machines, < 2x with 8")
    print(f"  3 machines: {three:.2f}x  {'met' if three <= 1.5 else 'NOT met'}")
    print(f"  8 machines: {eight:.2f}x  {'met' if eight < 2 else 'NOT met'}")


if __name__ == "__main__":
    main()

"""`make bench`: labctl's speed, measured against the tools it replaces.

Four labs come up first: 3 and 9 machines with containerd, and two of one
machine each (for `ls`). Then, each measurement run in turns so that the
machine's noise falls on every contender alike:

1. Start-up: `labctl --help` next to `python -c pass`.
2. Listing containerd tasks in every machine of a lab, three ways:
   - `vagrant ssh VM -c 'sudo ctr t ls'`, one machine after the other;
   - plain OpenSSH, all machines in parallel, with a saved `vagrant ssh-config`;
   - `labctl ctr ps` (every namespace of every machine, Python start included).
3. `labctl status` next to `vagrant status` in the same lab folder.
4. `labctl ls` with the four labs.

5. 28 readers at once on the 3-machine lab (16 `exec`, 8 `status`, 4 `ssh
   -c`, as parallel CI jobs start them), with the ssh-config cache cold (one
   of them asks Vagrant, the others wait for its answer) and warm.

6. The providers side by side (when this host runs libvirt): building
   labctl's box, `up` of 2 machines, halt, a cold boot to SSH (`up` of the
   halted lab), and the host memory each machine takes, on docker and libvirt.

7. Fast labs (tools/bench/fastlabs.py): `up` of a containerd lab and of a
   mysql-pair against a plain `vagrant up --no-provision` of the Vagrantfile
   labctl renders for it, on docker and libvirt; the package cache's second
   install; the boxes' sizes.

Goals: ctr ps <= 1.5x OpenSSH with 3 machines, < 2x with 9 (issue #5);
status >= 8x faster than vagrant status with 3 machines, status of 9 machines
<= 1.3x that of 3, ls of 4 labs < 0.5 s, --help < 0.15 s (issue #10); up
<= 1.5x its floor (containerd, docker and libvirt), mysql-pair of 3 <= 2x and
<= 30 s (issue 28).
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests import installed  # noqa: E402  (run as a script: the repository first on the path)
from tools.bench import fastlabs  # noqa: E402

# the labctl users install (the wheel's, in a virtualenv of runtime dependencies
# only), as the e2e tests run it
try:
    LABCTL = [str(installed.labctl_under_test())]
except installed.NotInstalled as exc:
    raise SystemExit(f"bench: no installed labctl to measure: {exc}") from exc
LABS = {"bench3": 3, "bench9": 9, "bench1a": 1, "bench1b": 1}
SUBNETS = {
    "bench3": "192.168.190",
    "bench9": "192.168.191",
    "bench1a": "192.168.192",
    "bench1b": "192.168.193",
}


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


def startup(env: dict[str, str], rounds: int = 15) -> float:
    py, help_ = [], []
    for _ in range(rounds):
        py.append(timed(lambda: run([sys.executable, "-c", "pass"], env)))
        help_.append(timed(lambda: run([*LABCTL, "--help"], env)))
    print(f"start-up (median of {rounds})")
    print(f"  python -c pass      {median_ms(py):7.1f} ms")
    print(f"  labctl --help       {median_ms(help_):7.1f} ms")
    print()
    return median_ms(help_)


def bring_up(env: dict[str, str]) -> None:
    for lab, count in LABS.items():
        print(f"bringing up {lab} ({count} machines)...", flush=True)
        extra = ["--containerd"] if count > 1 else ["--no-containerd"]
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
                SUBNETS[lab],
                "--provider",
                "docker",
                "-q",
                *extra,
            ],
            env,
            check=False,
        )
        if up.returncode != 0:
            raise SystemExit(f"labctl up {lab} failed:\n{up.stderr[-3000:]}")
    print()


def listing(
    lab: str, env: dict[str, str], rounds: int, vagrant_rounds: int
) -> tuple[float, float, float]:
    count = LABS[lab]
    folder = Path(env["LABCTL_HOME"]) / lab
    machines = [f"node{i}" for i in range(1, count + 1)]
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
    print(f"ctr ps, {count} machines (median of {rounds}; vagrant ssh: {vagrant_rounds})")
    print(f"  vagrant ssh -c, one after another  {v:8.1f} ms")
    print(f"  OpenSSH in parallel                {o:8.1f} ms")
    print(
        f"  labctl ctr ps                      {lc:8.1f} ms   = {lc / o:.2f}x OpenSSH, {v / lc:.1f}x faster than vagrant ssh"
    )
    print()
    return v, o, lc


def status(lab: str, env: dict[str, str], rounds: int, vagrant_rounds: int) -> tuple[float, float]:
    """labctl status next to vagrant status, in turns."""
    folder = Path(env["LABCTL_HOME"]) / lab
    ours: list[float] = []
    theirs: list[float] = []
    run([*LABCTL, "status", lab], env)  # warm: nothing is cached, but the OS's file cache
    for i in range(rounds):
        ours.append(timed(lambda: run([*LABCTL, "status", lab], env)))
        if i < vagrant_rounds:
            theirs.append(timed(lambda: run(["vagrant", "status"], env, cwd=folder)))
    lc, v = median_ms(ours), median_ms(theirs)
    print(f"status, {LABS[lab]} machines (median of {rounds}; vagrant status: {vagrant_rounds})")
    print(f"  vagrant status                     {v:8.1f} ms")
    print(f"  labctl status                      {lc:8.1f} ms   = {v / lc:.1f}x faster")
    print()
    return v, lc


def listing_labs(env: dict[str, str], rounds: int) -> float:
    samples = [timed(lambda: run([*LABCTL, "ls"], env)) for _ in range(rounds)]
    ls = median_ms(samples)
    print(f"ls, {len(LABS)} labs, {sum(LABS.values())} machines (median of {rounds})")
    print(f"  labctl ls                          {ls:8.1f} ms")
    print()
    return ls


def reader_commands(lab: str) -> list[list[str]]:
    execs = [["exec", "--lab", lab, "--", "true"]] * 16
    statuses = [["status", lab]] * 8
    sshs = [["ssh", lab, f"node{i % 3 + 1}", "-c", "true"] for i in range(4)]
    return [*execs, *statuses, *sshs]


def readers_once(lab: str, env: dict[str, str]) -> tuple[float, float, int]:
    """The 28 readers started together: the time until the last ends, the
    slowest exec, and how many failed."""

    def one(args: list[str]) -> tuple[str, float, int]:
        start = time.perf_counter()
        done = run([*LABCTL, *args], env, check=False)
        return args[0], time.perf_counter() - start, done.returncode

    start = time.perf_counter()
    with ThreadPoolExecutor(28) as pool:
        results = list(pool.map(one, reader_commands(lab)))
    wall = time.perf_counter() - start
    slowest = max(took for kind, took, _ in results if kind == "exec")
    return wall, slowest, sum(1 for _, _, code in results if code != 0)


def readers(lab: str, env: dict[str, str], rounds: int) -> dict[str, tuple[float, float, int]]:
    """Cold (the cache dropped, as a change of the lab drops it) and warm, in turns."""
    cache = Path(env["LABCTL_HOME"]) / lab / ".labctl" / "ssh-config.json"
    samples: dict[str, list[tuple[float, float, int]]] = {"cold": [], "warm": []}
    for _ in range(rounds):
        cache.unlink(missing_ok=True)
        samples["cold"].append(readers_once(lab, env))
        samples["warm"].append(readers_once(lab, env))
    print(f"28 readers at once, {LABS[lab]} machines (median of {rounds})")
    figures = {}
    for kind, got in samples.items():
        wall = statistics.median(w for w, _, _ in got)
        slowest = statistics.median(s for _, s, _ in got)
        failed = sum(f for _, _, f in got)
        figures[kind] = (wall, slowest, failed)
        print(
            f"  {kind} cache   all done {wall:5.1f} s   slowest exec {slowest:5.1f} s"
            f"   failed {failed} of {28 * rounds}"
        )
    print()
    return figures


def rss_mib(pids: list[int]) -> float:
    """Resident memory of these host processes, MiB."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def machine_memory(provider: str, lab: str) -> float:
    """Host memory per machine of a running lab, MiB: QEMU's resident set
    (libvirt), the container's cgroup (docker)."""
    if provider == "libvirt":
        listed = subprocess.run(
            ["pgrep", "-f", f"guest=labctl-{lab}-"], capture_output=True, text=True
        )
        pids = [int(p) for p in listed.stdout.split()]
        return rss_mib(pids) / max(len(pids), 1)
    names = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=io.labctl.lab={lab}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    # every process of the container (docker stats reads 0 where the host's
    # cgroups keep no memory account)
    mib = []
    for name in names:
        top = subprocess.run(
            ["docker", "top", name, "-o", "pid,rss"], capture_output=True, text=True
        ).stdout.splitlines()[1:]
        mib.append(sum(int(row.split()[1]) for row in top if len(row.split()) == 2) / 1024)
    return sum(mib) / max(len(mib), 1)


def build_box(provider: str) -> float:
    """Seconds to build labctl's box for `provider` from nothing, under a name
    of its own (the boxes labs use are left alone), removed afterwards."""
    from labctl.providers import docker as box
    from labctl.providers import libvirt_box

    if provider == "docker":
        image = "labctl/debian:bench"
        took = timed(lambda: box.build(image, force=True))
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True)
        return took
    name = "labctl/bench"
    built: list[libvirt_box.Built | None] = []
    took = timed(lambda: built.append(libvirt_box.build(name, force=True)))
    subprocess.run(["vagrant", "box", "remove", name, "--all", "--force"], capture_output=True)
    for path in libvirt_box.BOOT_DIR.glob("labctl-bench-*"):
        path.unlink()
    return took


def one_provider(provider: str, env: dict[str, str]) -> dict[str, float]:
    lab = f"benchp-{provider}"
    print(f"providers: {provider}...", flush=True)
    f = {"box build": build_box(provider)}
    up = [*LABCTL, "up", "nodes", "--name", lab, "--count", "2", "--no-containerd", "-q"]
    up += [
        "--provider",
        provider,
        "--subnet",
        "192.168.194" if provider == "docker" else "192.168.195",
    ]
    try:
        f["up, 2 machines"] = timed(lambda: run(up, env))
        f["memory per machine"] = machine_memory(provider, lab)
        f["halt"] = timed(lambda: run([*LABCTL, "halt", lab], env))
        f["cold boot to SSH"] = timed(lambda: run([*LABCTL, "up", lab, "-q"], env))
    finally:
        run([*LABCTL, "destroy", lab, "--yes"], env, check=False)
    return f


def providers_side_by_side(env: dict[str, str]) -> dict[str, dict[str, float]]:
    """The same 2-machine lab on docker and on libvirt, one after the other."""
    from labctl.providers import libvirt

    accel = libvirt.vm_accel()
    answers = subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True)
    chosen = ["docker"] + (["libvirt"] if accel.kind and answers.returncode == 0 else [])
    figures = {provider: one_provider(provider, env) for provider in chosen}
    print()
    rows = ["box build", "up, 2 machines", "halt", "cold boot to SSH", "memory per machine"]
    print(
        "providers (one run; libvirt: "
        + (accel.detail if "libvirt" in figures else "not here")
        + ")"
    )
    print(f"  {'':<22}" + "".join(f"{p:>12}" for p in figures))
    for row in rows:
        unit = "MiB" if row.startswith("memory") else "s"
        cells = "".join(f"{figures[p][row]:>8.0f} {unit:<3}" for p in figures)
        print(f"  {row:<22}{cells}")
    print()
    return figures


def main() -> None:
    for tool in ("vagrant", "ssh", "docker"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed for the benchmark (make bench installs it)")
    print(f"labctl under test: {LABCTL[0]} (the installed wheel)")
    home = tempfile.mkdtemp(prefix="labctl-bench-")
    env = {
        **os.environ,
        "LABCTL_HOME": home,
        "VAGRANT_CHECKPOINT_DISABLE": "1",
    }
    # the installed labctl, never the sources beside it
    env.pop("PYTHONPATH", None)
    # measured as installed: Python's compiled modules cached, as pip leaves them
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        bring_up(env)
        help_ms = startup(env)
        ps = {
            lab: listing(lab, env, rounds, vr)
            for lab, rounds, vr in (("bench3", 11, 3), ("bench9", 9, 2))
        }
        st = {lab: status(lab, env, 11, 3) for lab in ("bench3", "bench9")}
        ls = listing_labs(env, 11)
        together = readers("bench3", env, 3)
        providers_side_by_side(env)
        fast = fastlabs.main()
    finally:
        for lab in LABS:
            run([*LABCTL, "destroy", lab, "--yes"], env, check=False)
        shutil.rmtree(home, ignore_errors=True)
    three, nine = ps["bench3"][2] / ps["bench3"][1], ps["bench9"][2] / ps["bench9"][1]
    faster = st["bench3"][0] / st["bench3"][1]
    growth = st["bench9"][1] / st["bench3"][1]

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    goals = [
        (f"ctr ps, 3 machines: {three:.2f}x OpenSSH (<= 1.5x)", three <= 1.5),
        (f"ctr ps, 9 machines: {nine:.2f}x OpenSSH (< 2x)", nine < 2),
        (f"status, 3 machines: {faster:.1f}x faster than vagrant status (>= 8x)", faster >= 8),
        (f"status, 9 vs 3 machines: {growth:.2f}x (<= 1.3x)", growth <= 1.3),
        (f"ls, 4 labs: {ls:.0f} ms (< 500 ms)", ls < 500),
        (
            f"28 readers at once: {together['cold'][2] + together['warm'][2]} failed (none)",
            together["cold"][2] + together["warm"][2] == 0,
        ),
        (f"--help: {help_ms:.0f} ms (< 150 ms)", help_ms < 150),
        *fast,
    ]
    print("goals")
    for text, ok in goals:
        print(f"  {text:<62} {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()

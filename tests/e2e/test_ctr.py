"""`labctl ctr` and `labctl exec` end to end: real containerd in three guests."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tools.oci import IMAGE_NAME, build_busybox_image

from .conftest import docker, lab_up, labctl_argv, shell_on_each

HOSTILE = [
    "x; touch /tmp/pwned",
    "$(touch /tmp/pwned)",
    "`touch /tmp/pwned`",
    "it's",
    'a "quoted" id',
    "two words",
    "-rf",
]


@pytest.fixture(scope="module")
def lab(labctl):
    with lab_up(labctl, "e2e-ctr", "nodes", "--count", "3") as (name, _):
        yield name


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_busybox_image(tmp_path_factory.mktemp("img") / "busybox-oci.tar")


@pytest.fixture(scope="module")
def ctr(labctl, lab):
    def run(*args: str, **kw):
        return labctl("ctr", "--lab", lab, *args, **kw)

    return run


@pytest.fixture(scope="module")
def imported(ctr, image: Path) -> str:
    done = ctr("images", "import", str(image))
    assert done.code == 0, done.stderr
    assert done.stdout.count("unpacking docker.io/labctl/busybox:latest") == 3  # one per machine
    return IMAGE_NAME


def test_the_whole_cycle_by_hand(ctr, imported: str) -> None:
    ns = ctr("ns", "ls", "--json")
    assert {(r["vm"], r["namespace"]) for r in ns.json()} >= {
        ("node1", "default"),
        ("node2", "default"),
        ("node3", "default"),
    }
    images = ctr("--vm", "node1", "images", "ls", "--json").json()
    assert [(r["vm"], r["ref"]) for r in images] == [("node1", imported)]

    assert ctr("--vm", "node1", "c", "create", imported, "test", "/bin/sh").code == 0
    info = ctr("--vm", "node1", "c", "info", "test").json()
    assert info[0]["vm"] == "node1" and info[0]["info"]["Spec"]["process"]["args"] == ["/bin/sh"]
    assert ctr("--vm", "node1", "t", "start", "-d", "test").code == 0
    for i in (1, 2, 3):
        done = ctr("--vm", "node1", "t", "exec", "-d", "--exec-id", f"pro{i}", "test", "/bin/sh")
        assert done.code == 0, done.stderr
    procs = ctr("--vm", "node1", "t", "ps", "test", "--json").json()
    assert sorted(p["exec_id"] for p in procs) == [
        "",
        "pro1",
        "pro2",
        "pro3",
    ]  # the init PID plus three
    assert len({p["pid"] for p in procs}) == 4

    again = ctr("--vm", "node1", "t", "start", "-d", "test")
    assert again.code == 1
    assert "node1: ctr: task test: already exists" in again.stderr

    assert ctr("--vm", "node1", "t", "kill", "-s", "9", "test").code == 0
    time.sleep(0.5)
    assert ctr("--vm", "node1", "t", "rm", "-f", "test").code == 0
    assert ctr("--vm", "node1", "c", "rm", "test").code == 0
    gone = ctr("--vm", "node1", "c", "info", "test")
    assert (
        gone.code == 1
        and 'node1: ctr: container "test" in namespace "default": not found' in gone.stderr
    )


def test_image_mount_shows_its_files(ctr, labctl, lab, imported: str) -> None:
    assert (
        labctl(
            "exec", "--lab", lab, "--vm", "node2", "--sudo", "--", "mkdir", "-p", "/mnt/img"
        ).code
        == 0
    )
    assert ctr("--vm", "node2", "images", "mount", imported, "/mnt/img").code == 0
    try:
        listed = labctl(
            "exec", "--lab", lab, "--vm", "node2", "--sudo", "--", "ls", "/mnt/img/bin/busybox"
        )
        assert listed.code == 0 and "node2: /mnt/img/bin/busybox" in listed.stdout
    finally:
        assert ctr("--vm", "node2", "images", "unmount", "/mnt/img").code == 0


def test_ps_lists_every_machines_tasks(ctr, imported: str) -> None:
    for vm in ("node1", "node2", "node3"):
        done = ctr("--vm", vm, "run", imported, f"idle-{vm}", "sleep", "600")
        assert done.code == 0, done.stderr
    rows = ctr("ps", "--json").json()
    mine = {(r["vm"], r["container"]) for r in rows if r["container"].startswith("idle-")}
    assert mine == {("node1", "idle-node1"), ("node2", "idle-node2"), ("node3", "idle-node3")}
    assert all(
        r["status"] == "RUNNING" and r["pid"] > 0 and r["namespace"] == "default"
        for r in rows
        if r["container"].startswith("idle-")
    )
    table = ctr("ps")
    assert table.stdout.splitlines()[0].split() == ["VM", "NAMESPACE", "CONTAINER", "PID", "STATUS"]
    for vm in ("node1", "node2", "node3"):
        assert ctr("--vm", vm, "rm", f"idle-{vm}").code == 0
    assert not [r for r in ctr("ps", "--json").json() if r["container"].startswith("idle-")]


def test_service_restarts_a_killed_task(ctr, labctl, lab, imported: str) -> None:
    # PID 1 of a container ignores SIGTERM unless it traps it
    assert (
        ctr(
            "--vm",
            "node2",
            "c",
            "create",
            imported,
            "svc",
            "sh",
            "-c",
            "trap 'exit 0' TERM; sleep 3600 & wait",
        ).code
        == 0
    )
    done = ctr("--vm", "node2", "service", "svc")
    assert done.code == 0, done.stderr
    assert "labctl-ctr-default-svc.service" in done.stdout

    def pid() -> int:
        for _ in range(50):
            rows = [
                r
                for r in ctr("--vm", "node2", "t", "ls", "--json").json()
                if r["container"] == "svc" and r["status"] == "RUNNING"
            ]
            if rows:
                return int(rows[0]["pid"])
            time.sleep(0.3)
        raise AssertionError("svc is not running")

    first = pid()
    killed = labctl("exec", "--lab", lab, "--vm", "node2", "--sudo", "--", "kill", "-9", str(first))
    assert killed.code == 0, killed.stdout + killed.stderr
    start = time.monotonic()
    second = pid()
    while second == first and time.monotonic() - start < 15:
        time.sleep(0.3)
        second = pid()
    assert second != first, "the task did not come back"
    assert time.monotonic() - start < 15
    assert ctr("--vm", "node2", "rm", "svc").code == 0  # the unit goes too, or it would restart it
    time.sleep(2)
    assert not [
        r for r in ctr("--vm", "node2", "t", "ls", "--json").json() if r["container"] == "svc"
    ]
    unit = labctl(
        "exec",
        "--lab",
        lab,
        "--vm",
        "node2",
        "--",
        "test",
        "-e",
        "/etc/systemd/system/labctl-ctr-default-svc.service",
    )
    assert unit.code == 1


def test_hostile_input_never_reaches_a_shell(
    ctr, labctl, lab, imported: str, tmp_path: Path
) -> None:
    for value in HOSTILE:
        for args in (
            ["c", "create", imported, value, "/bin/sh"],
            ["c", "info", value],
            ["t", "start", "-d", value],
            ["images", "pull", value],
            ["images", "rm", value],
            ["images", "mount", imported, value],
            ["-n", value, "c", "ls"],
            ["ns", "rm", value],
        ):
            done = ctr("--vm", "node1", *args)
            # 2: a value starting with "-" is taken for an option (pass it after --)
            assert done.code in (0, 1, 2), (args, done.stderr)
            assert "Traceback" not in done.stderr
    evil = tmp_path / "x; touch $(echo pwned).tar"
    evil.write_bytes(b"not an image")
    done = ctr("--vm", "node1", "images", "import", "--name", "$(touch /tmp/pwned)", str(evil))
    assert done.code == 1
    echoed = labctl(
        "exec",
        "--lab",
        lab,
        "--json",
        "--",
        "echo",
        "$(id)",
        "`id`",
        "a b",
        "it's",
        ";",
        "touch",
        "/tmp/pwned",
    )
    assert echoed.code == 0
    assert {r["stdout"] for r in echoed.json()} == {"$(id) `id` a b it's ; touch /tmp/pwned\n"}
    check = shell_on_each(
        labctl, lab, "ls /tmp/pwned /var/lib/containerd/pwned 2>/dev/null | wc -l"
    )
    assert {out.strip() for out in check.values()} == {"0"}
    assert not Path("/tmp/pwned").exists()


def test_ctr_errors_and_traps(ctr, tmp_path: Path) -> None:
    missing = ctr("c", "info", "nope")
    assert missing.code == 1
    for vm in ("node1", "node2", "node3"):
        assert f'{vm}: ctr: container "nope" in namespace "default": not found' in missing.stderr
    short = ctr("--vm", "node1", "images", "pull", "alpine", timeout=120)
    assert "pulling docker.io/library/alpine:latest" in short.stderr
    assert short.code == 1  # no registry in the lab; ctr's own error is shown
    assert "node1: ctr:" in short.stderr
    nofile = ctr("--vm", "node1", "images", "import", str(tmp_path / "missing.tar"))
    assert nofile.code == 2 and "cannot read image archive" in nofile.stderr


def test_namespace_not_empty_says_what_is_left(ctr, image: Path) -> None:
    assert ctr("--vm", "node3", "ns", "create", "full").code == 0
    assert ctr("--vm", "node3", "-n", "full", "images", "import", str(image)).code == 0
    assert ctr("--vm", "node3", "-n", "full", "c", "create", IMAGE_NAME, "c1").code == 0
    done = ctr("--vm", "node3", "ns", "rm", "full")
    assert done.code == 1
    text = " ".join(done.stderr.split())
    assert (
        "node3: namespace 'full' is not empty: 1 container (c1); 1 image (docker.io/labctl/busybox:latest)"
        in text
    )
    assert ctr("--vm", "node3", "-n", "full", "c", "rm", "c1").code == 0
    assert ctr("--vm", "node3", "-n", "full", "images", "rm", IMAGE_NAME).code == 0
    assert ctr("--vm", "node3", "ns", "rm", "full").code == 0


def test_bad_usage(ctr, labctl, tmp_path: Path) -> None:
    done = ctr("--vm", "node9", "ps")
    assert done.code == 2 and "no machine 'node9'" in done.stderr
    nolab = labctl("ctr", "ps", env={"LABCTL_HOME": str(tmp_path / "empty")})
    assert nolab.code == 2 and "no lab in" in nolab.stderr
    noexec = ctr("--vm", "node1", "t", "exec", "x")
    assert noexec.code == 2


def test_exec_streams_and_time_limit(labctl, lab) -> None:
    five = 5 * 1024 * 1024
    script = (
        f"head -c {five} /dev/zero | tr '\\0' a & head -c {five} /dev/zero | tr '\\0' b >&2; wait"
    )
    done = labctl("exec", "--lab", lab, "--vm", "node1", "--json", "--", "sh", "-c", script)
    assert done.code == 0, done.stderr[-500:]
    (row,) = done.json()
    assert row["stdout"] == "a" * five and row["stderr"] == "b" * five
    assert set(row) >= {"vm", "rc", "stdout", "stderr", "duration_ms"}
    start = time.monotonic()
    slow = labctl("exec", "--lab", lab, "--timeout", "2", "--", "sleep", "30")
    assert slow.code == 124
    assert time.monotonic() - start < 15


def test_changed_host_key_is_refused(labctl, lab, lab_home: Path) -> None:
    pins_file = lab_home / lab / ".labctl" / "host-keys.json"
    pins = json.loads(pins_file.read_text())
    real = pins["node1"]["key"]
    pins["node1"]["key"] = real[:-8] + "AAAAAAAA"
    pins_file.write_text(json.dumps(pins))
    done = labctl("exec", "--lab", lab, "--vm", "node1", "--", "true")
    assert done.code == 1
    assert "host key of machine 'node1' changed" in done.stderr
    assert "AAAAAAAA" in json.loads(pins_file.read_text())["node1"]["key"]  # not silently re-pinned
    pins["node1"]["key"] = real
    pins_file.write_text(json.dumps(pins))
    assert labctl("exec", "--lab", lab, "--vm", "node1", "--", "true").code == 0
    assert (
        not (Path.home() / ".ssh" / "known_hosts").exists()
        or "labctl" not in (Path.home() / ".ssh" / "known_hosts").read_text()
    )


def test_interactive_shell_gets_a_terminal_of_the_right_size(
    ctr, lab, lab_home: Path, imported: str
) -> None:
    import fcntl
    import os
    import pty
    import select
    import struct
    import subprocess
    import termios

    assert ctr("--vm", "node3", "run", imported, "tty", "sleep", "600").code == 0
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    proc = subprocess.Popen(
        labctl_argv("ctr", "--lab", lab, "--vm", "node3", "shell", "tty"),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "LABCTL_HOME": str(lab_home), "TERM": "xterm"},
    )
    os.close(slave)
    seen, typed, prompt_at, asked = b"", False, None, 1
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the other side closed: labctl is exiting
                break
            seen += chunk
            if (
                b"\x1b[6n" in chunk
            ):  # the shell asks where the cursor is: answer as a terminal would
                os.write(master, b"\x1b[1;1R")
        if prompt_at is None and b"# " in seen:
            prompt_at = time.monotonic()
        # type like a person, a moment after the prompt: ctr sizes the
        # container's terminal just after it starts the shell (on a loaded
        # host, seconds after), so ask for the size until it has come
        if not typed and prompt_at is not None and time.monotonic() - prompt_at > asked * 1.5:
            if b"33 101" in seen or asked == 10:
                os.write(master, b"echo pty-$((6*7)); exit\r")
                typed = True
            else:
                os.write(master, b"stty size\r")
                asked += 1
    proc.wait(timeout=30)
    os.close(master)
    text = seen.decode(errors="replace")
    assert "pty-42" in text
    assert "33 101" in text  # the window size reached the container's terminal
    assert proc.returncode == 0
    assert ctr("--vm", "node3", "rm", "tty").code == 0


def test_a_guest_killed_outside_labctl_is_named_never_hidden(labctl, ctr, lab) -> None:
    """`docker kill` behind labctl's back: the very next status shows it, and
    every fan-out command names it, answers from the others and exits 1."""
    docker("kill", f"labctl-{lab}-node3")
    try:
        rows = labctl("status", lab, "--json").json()
        assert {r["name"]: r["state"] for r in rows} == {
            "node1": "running",
            "node2": "running",
            "node3": "stopped",
        }
        said = "node3: not running (docker state: exited) — labctl up " + lab

        ps = ctr("ps", "--json")
        assert ps.code == 1 and said in ps.stderr
        assert [r for r in ps.json() if "error" in r] == [{"vm": "node3", "error": said}]
        assert ctr("ps").code == 1

        ran = labctl("exec", "--lab", lab, "--json", "--", "hostname")
        assert ran.code == 1 and said in ran.stderr
        by_vm = {r["vm"]: r for r in ran.json()}
        assert by_vm["node1"]["stdout"].strip() == "node1"
        assert by_vm["node2"]["stdout"].strip() == "node2"
        assert by_vm["node3"] == {"vm": "node3", "error": said}

        # named machines limit what is expected
        assert labctl("exec", "--lab", lab, "--vm", "node1", "--", "true").code == 0
    finally:
        up = labctl("up", lab, "-q")
    assert up.code == 0, up.stderr[-2000:]
    assert {r["state"] for r in labctl("status", lab, "--json").json()} == {"running"}
    assert ctr("ps").code == 0
    assert labctl("exec", "--lab", lab, "--", "true").code == 0

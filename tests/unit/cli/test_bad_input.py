"""Bad input, one table: each case is refused with its exit code and one line
saying what is wrong, before anything is written (LABCTL_HOME, the host-wide
LABCTL_HOST_DIR) and before any program starts: `vagrant`, `docker`, `virsh`
and `VBoxManage` on PATH are fakes that log their arguments and fail."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ...conftest import tree

FAKES = ("vagrant", "docker", "virsh", "VBoxManage")
NAME = object()  # where a case template takes the lab name
LONG = "a" * 32
D = ("--provider", "docker")
F = ("-f", "{lab}")  # the case's lab file, written to tmp_path/lab.yaml

LABS: dict[str, Any] = {
    "ok": "name: t\nmachines:\n  va: {}\n",
    "unknown-key": "name: t\nmachines:\n  sql1:\n    cpu: 2\n    roles: []\n",
    "machine-twice": "name: t\nmachines:\n  sql1: {roles: []}\n  sql1: {roles: [containerd]}\n",
    "count-clash": "name: t\nmachines:\n  node:\n    count: 2\n  node2: {}\n",
    "bad-role": "name: t\nmachines:\n  sql1:\n    roles: [postgres]\n",
    "key-twice": "name: t\nprovider: docker\nprovider: docker\nmachines:\n  va: {}\n",
    "bad-name": "name: Bad_Name\nmachines:\n  va: {}\n",
    "bad-machine-name": "name: t\nmachines:\n  Web: {}\n",
    "bad-subnet": "name: t\nsubnet: 192.168.300\nmachines:\n  va: {}\n",
    "cidr-subnet": "name: t\nsubnet: 192.168.56.0/24\nmachines:\n  va: {}\n",
    "bad-provider": "name: t\nprovider: nope\nmachines:\n  va: {}\n",
    "bad-cpus": "name: t\nmachines:\n  va:\n    cpus: 0\n",
    "bad-count": "name: t\nmachines:\n  va:\n    count: 10\n",
    "no-machines": "name: t\n",
    "yaml-syntax": "name: t\nmachines: [\n",
    "no-source": "name: t\nmachines:\n  sql1: {roles: [mysql-primary]}\n"
    "  sql2:\n    roles:\n      - mysql-replica: {source: db9}\n",
    # lab files anyone may have written (issue 27): bounded, strict, one line each
    "alias-bomb": "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9) if i else 'x'}]\n" for i in range(12)
    ),
    "deep": "a: " + "[" * 200 + "]" * 200 + "\n",
    "recursive-alias": "a: &x [*x]\n",
    "tag-int": "name: t\nmachines:\n  web: {count: !!int x}\n",
    "tag-bool": "name: t\nmachines:\n  web: {count: !!bool maybe}\n",
    "tag-timestamp": "name: t\nmachines:\n  web: {hostname: !!timestamp 2001-13-45}\n",
    "bad-date": "name: t\nmachines:\n  web: {hostname: 2001-13-45}\n",
    "long-int": "name: t\nmachines:\n  web: {count: " + "9" * 5000 + "}\n",
    "complex-key": "name: t\n? [a, b]\n: 1\nmachines:\n  web: {}\n",
    "control-char": "name: t\n\n\nmachines:\x07\n  web: {}\n",
    "union": "name: t\nmachines:\n  web: {ip: [1]}\n",
    "not-a-mapping": "name: t\nmachines:\n  web: 5\n",
    "true-ip": "name: t\nmachines:\n  web: {ip: true}\n",
    "true-count": "name: t\nmachines:\n  web: {count: true}\n",
    "string-count": "name: t\nmachines:\n  web: {count: '2'}\n",
    "arabic-subnet": 'name: t\nsubnet: "\u0661\u0669\u0662.\u0661\u0666\u0668.\u0665\u0666"\nmachines:\n  web: {}\n',
    "trailing-dash": "name: t\nmachines:\n  web-: {}\n",
    "localhost": "name: t\nmachines:\n  web: {hostname: localhost}\n",
    "hex-name": "name: t\nmachines:\n  web: {}\n  db1: {}\n",
    "hex-count": "name: t\nmachines:\n  db: {count: 2}\n",
    "outside-script": "name: t\nmachines:\n  web:\n    provision: [/etc/shadow]\n",
    "dotdot-script": "name: t\nmachines:\n  web:\n    provision: [../x.sh]\n",
    "nul-script": 'name: t\nmachines:\n  web:\n    provision: ["a\\0b"]\n',
    "outside-war": "name: t\njenkins: {war: /etc/hostname}\nmachines:\n  web: {roles: [jenkins-controller]}\n",
    "libvirt-ext": "name: t\nlibvirt_uri: 'qemu+ext:///system?command=/bin/sh'\nmachines:\n  web: {}\n",
    "symlink-script": lambda d: (
        (d / "link.sh").symlink_to("/etc/passwd"),
        "name: t\nmachines:\n  web:\n    provision: [link.sh]\n",
    )[1],
    "fifo-script": lambda d: (
        os.mkfifo(d / "s.sh"),
        "name: t\nmachines:\n  web:\n    provision: [s.sh]\n",
    )[1],
    "dev-zero": lambda d: (d / "lab.yaml").symlink_to("/dev/zero"),
    "fifo": lambda d: os.mkfifo(d / "lab.yaml"),
    "big": lambda d: (d / "lab.yaml").write_text("# " + "x" * (2 << 20) + "\n"),
    "latin-1": lambda d: (d / "lab.yaml").write_bytes(b"name: t\nmachines:\n  caf\xe9: {}\n"),
}


def case(
    argv: tuple[Any, ...],
    code: int,
    message: str,
    env: dict[str, str] | None = None,
    lab: str | None = None,
) -> Any:
    """One row of the table."""
    env = env or {}
    words = [*(f"{k}={v!r}" for k, v in env.items()), *(a or "''" for a in argv)]
    ident = " ".join(words) + (f" [{lab}]" if lab else "")
    return pytest.param(argv, code, message, env, lab, id=ident)


# How each command is given a lab name, and what it says of a bad one.
BY_NAME = [
    (("up", "nodes", "--name", NAME, *D), "invalid lab name {!r}"),
    (("render", "nodes", "--name", NAME, *D), "invalid lab name {!r}"),
    (("up", NAME, *D), "invalid lab name {!r}"),
    (("render", NAME), "invalid lab name {!r}"),
    (("status", NAME), "invalid lab name {!r}"),
    (("destroy", NAME, "--yes"), "invalid lab name {!r}"),
    (("destroy", "--lab", NAME, "--yes"), "invalid lab name {!r}"),
    (("halt", NAME), "invalid lab name {!r}"),
    (("exec", "--lab", NAME, "--", "true"), "invalid lab name {!r}"),
    (("ctr", "--lab", NAME, "ps"), "invalid lab name {!r}"),
    (("mysql", "role", "--lab", NAME), "invalid lab name {!r}"),
]
NAMED = [
    case(tuple(name if a is NAME else a for a in argv), 2, said.format(name))
    for name in ("../x", "Bad Name", LONG)
    for argv, said in BY_NAME
]

CASES = [
    *NAMED,
    # an empty name
    case(("up", "nodes", "--name", "", *D), 2, "invalid lab name ''"),
    case(("render", "nodes", "--name", "", *D), 2, "invalid lab name ''"),
    case(("destroy", "", "--yes"), 2, "invalid lab name ''"),
    case(("destroy", "--lab", "", "--yes"), 2, "invalid lab name ''"),
    case(("destroy", "--yes"), 2, "invalid lab name ''", {"LABCTL_LAB": ""}),
    *(case(argv, 2, "invalid lab name ''") for argv in [  # never "the only lab"
        ("up", ""), ("status", ""), ("halt", ""), ("exec", "--lab", "", "--", "true"),
        ("ctr", "--lab", "", "ps"), ("mysql", "role", "--lab", ""),
    ]),
    # a good name of a lab that is not there
    case(("destroy", "ghost", "--yes"), 0, "no lab ghost here: nothing to destroy"),
    case(("destroy", "--lab", "ghost", "--yes"), 0, "no lab ghost here: nothing to destroy"),
    case(("destroy", "--yes"), 0, "no lab ghost here: nothing to destroy", {"LABCTL_LAB": "ghost"}),
    case(("up", "ghost"), 2, "unknown lab or topology 'ghost' (topologies: nodes, jenkins"),
    *(case(argv, 2, "no lab named 'ghost' in") for argv in [
        ("status", "ghost"), ("halt", "ghost"), ("exec", "--lab", "ghost", "--", "true"),
        ("ctr", "--lab", "ghost", "ps"), ("mysql", "role", "--lab", "ghost"),
    ]),
    case(("status",), 2, "no lab named 'ghost' in", {"LABCTL_LAB": "ghost"}),
    case(("ctr", "ps"), 2, "no lab named 'ghost' in", {"LABCTL_LAB": "ghost"}),
    # LABCTL_LAB and a name on the command line
    case(("status", "y"), 2, "no lab named 'y' in", {"LABCTL_LAB": "x"}),
    case(("status", "y"), 2, "no lab named 'y' in", {"LABCTL_LAB": "../x"}),
    case(("status",), 2, "invalid lab name '../x'", {"LABCTL_LAB": "../x"}),
    case(("halt", "y"), 2, "no lab named 'x' in", {"LABCTL_LAB": "x"}),  # y: a machine of x
    case(("destroy", "y", "--yes"), 0, "no lab x here: nothing to destroy", {"LABCTL_LAB": "x"}),
    case(("destroy", "x", "--yes"), 2, "invalid lab name 'Bad Name'", {"LABCTL_LAB": "Bad Name"}),
    case(("destroy", "--yes"), 2, "invalid lab name '../x'", {"LABCTL_LAB": "../x"}),
    case(("up",), 2, "no lab named 'x' in", {"LABCTL_LAB": "x"}),
    case(("exec", "--lab", "y", "--", "true"), 2, "no lab named 'y' in", {"LABCTL_LAB": "x"}),
    case(("exec", "--", "true"), 2, "invalid lab name 'Bad Name'", {"LABCTL_LAB": "Bad Name"}),
    case(("destroy", "Bad Name", "--yes"), 2, "invalid machine name 'Bad Name'", {"LABCTL_LAB": "x"}),
    case(("mysql", "role", "--lab", "y"), 2, "no lab named 'y' in", {"LABCTL_LAB": "x"}),
    case(("ctr", "--lab", "y", "ps"), 2, "no lab named 'y' in", {"LABCTL_LAB": "x"}),
    case(("ctr", "--vm", "va", "--all", "ps"), 2, "--vm and --all exclude each other",
         {"LABCTL_LAB": "x"}),
    case(("up", "nodes", "--name", "y", "--provider", "nope"), 2, "unknown provider 'nope'",
         {"LABCTL_LAB": "x"}),
    # machine counts and a topology's other parameters
    *(case(("up", "nodes", "--count", n, *D), 2, f"--count must be between 1 and 9, got {n}")
      for n in ("0", "-1", "10")),
    case(("render", "nodes", "--count", "0", *D), 2, "--count must be between 1 and 9, got 0"),
    case(("up", "nodes", "--count", "x", *D), 2, "Invalid value for '--count': 'x' is not a"),
    *(case(("up", "jenkins", "--agents", n, *D), 2, f"--agents must be between 0 and 9, got {n}")
      for n in ("-1", "10")),
    case(("up", "jenkins", "--agents", "two", *D), 2, "Invalid value for '--agents': 'two'"),
    case(("up", "jenkins", "--jdk", "11", *D), 2, "--jdk must be 17 or 21, got 11"),
    *(case(("up", "mysql-pair", "--replicas", n, *D), 2,
           f"--replicas must be between 1 and 5, got {n}") for n in ("0", "6")),
    case(("mysql-pair", "--replicas", "-1", *D), 2, "--replicas must be between 1 and 5, got -1"),
    case(("init", "nodes", "--count", "0", "-o", "-"), 2, "--count must be between 1 and 9, got 0"),
    case(("up", "nodes", "--agents", "2", *D), 2, "--agents does not apply to nodes (its options"),
    case(("up", "jenkins", "--count", "2", *D), 2, "--count does not apply to jenkins"),
    case(("up", "jenkins", "--jenkins-war", "/nonexistent/j.war", *D), 2,
         "jenkins war /nonexistent/j.war: no such file"),
    case(("up", "nodes", "--timeout", "0", *D), 2, "Invalid value for '--timeout'"),
    # cpus and memory
    *(case(("up", "nodes", "--cpus", n, *D), 2, f"--cpus must be between 1 and 64, got {n}")
      for n in ("0", "65", "-2")),
    case(("up", "nodes", "--cpus", "many", *D), 2, "Invalid value for '--cpus': 'many'"),
    *(case(("up", "nodes", "--memory", n, *D), 2,
           f"--memory must be between 256 and 262144, got {n}") for n in ("255", "262145")),
    case(("render", "jenkins", "--memory", "100", *D), 2, "--memory must be between 256"),
    case(("up", "nodes", "--memory", "1g", *D), 2, "Invalid value for '--memory': '1g'"),
    case(("up", *F, "--cpus", "0", *D), 2, "--cpus must be between 1 and 64, got 0", lab="ok"),
    # subnets: three octets of a private /24, nothing else
    *(case(("up", "nodes", "--subnet", s, *D), 2,
           f"invalid subnet '{s}': give the first three octets, e.g. 192.168.56")
      for s in ("192.168.300", "192.168.56.0/24", "192.168.56.0", "10.0.0.0", "10.0", "abc")),
    case(("render", "nodes", "--subnet", "192.168.56.0/24", *D), 2, "invalid subnet"),
    case(("up", "nodes", "--subnet", "8.8.8", *D), 2,
         "subnet 8.8.8 is not private: use 10.x.y, 172.16-31.y or 192.168.y"),
    case(("up", *F, "--subnet", "8.8.8", *D), 2, "subnet 8.8.8 is not private", lab="ok"),
    case(("validate", *F, "--subnet", "192.168.56.0/24"), 2, "invalid subnet", lab="ok"),
    case(("up", "nodes", "--subnet", "", *D), 2, "invalid subnet ''"),
    # providers
    *(case((*argv, "--provider", "nope"), 2,
           "unknown provider 'nope' (providers: virtualbox, libvirt, docker)")
      for argv in [("up", "nodes"), ("render", "nodes")]),
    case(("validate", *F, "--provider", "nope"), 2, "unknown provider 'nope'", lab="ok"),
    case(("up", "nodes", "--provider", "Docker"), 2, "unknown provider 'Docker'"),
    *(case(argv, 2, "unknown provider 'nope'", {"LABCTL_PROVIDER": "nope"})
      for argv in [("up", "nodes"), ("render", "nodes")]),
    case(("validate", *F), 2, "unknown provider 'nope'", {"LABCTL_PROVIDER": "nope"}, lab="ok"),
    case(("up", "nodes", "--provider", ""), 2, "unknown provider ''"),
    case(("up", "nodes", *D, "--libvirt-uri", "qemu:///system"), 2,
         "--libvirt-uri applies only to the libvirt provider"),
    case(("up", "nodes", *D, "--box", "a b"), 2, "invalid box 'a b'"),
    # lab files: the line and the key of the first problem
    *(case(argv, 2, "lab.yaml:4: machines.sql1.cpu: unknown key", lab="unknown-key")
      for argv in [("validate", *F), ("up", *F, *D), ("render", *F)]),
    *(case(argv, 2, "lab.yaml:4: machines.sql1: given twice (first on line 3)", lab="machine-twice")
      for argv in [("validate", *F), ("up", *F, *D)]),
    case(("validate", *F), 2, "lab.yaml:5: machines.node2: machine name 'node2' is already "
         "taken (by node)", lab="count-clash"),
    *(case(argv, 2, "lab.yaml:4: machines.sql1.roles[0]: input should be 'containerd'",
           lab="bad-role") for argv in [("validate", *F), ("up", *F)]),
    case(("validate", *F), 2, "lab.yaml:3: provider: given twice (first on line 2)",
         lab="key-twice"),
    case(("validate", *F), 2, "lab.yaml:1: name: invalid lab name 'Bad_Name'", lab="bad-name"),
    case(("validate", *F), 2, "lab.yaml:3: machines.Web: invalid machine name 'Web'",
         lab="bad-machine-name"),
    case(("validate", *F), 2, "lab.yaml:2: subnet: invalid subnet '192.168.300'", lab="bad-subnet"),
    case(("up", *F, *D), 2, "lab.yaml:2: subnet: invalid subnet '192.168.56.0/24': give the "
         "first three octets", lab="cidr-subnet"),
    *(case(argv, 2, "lab.yaml:2: provider: input should be 'virtualbox', 'libvirt' or 'docker'",
           lab="bad-provider") for argv in [("validate", *F), ("up", *F)]),
    case(("validate", *F), 2, "lab.yaml:4: machines.va.cpus: input should be greater than or "
         "equal to 1", lab="bad-cpus"),
    case(("validate", *F), 2, "lab.yaml:4: machines.va.count: input should be less than or "
         "equal to 9", lab="bad-count"),
    case(("validate", *F), 2, "lab.yaml:1: machines: required", lab="no-machines"),
    case(("validate", *F), 2, "lab.yaml:3: YAML syntax error", lab="yaml-syntax"),
    case(("up", *F, *D), 2, "lab.yaml:6: machines.sql2.roles[0].mysql-replica.source: 'db9' is "
         "no machine of the lab", lab="no-source"),
    case(("validate", "-f", "/nonexistent/lab.yaml"), 2,
         "cannot read lab file /nonexistent/lab.yaml: No such file or directory"),
    case(("up", *F, "--count", "3", *D), 2,
         "--count: options of a built-in topology; a lab file says it itself", lab="ok"),
    case(("up", "nodes", *F, *D), 2,
         "give a lab file (-f) or a lab or topology (nodes), not both", lab="ok"),
    case(("up", *F, "--name", "../x", *D), 2, "invalid lab name '../x'", lab="ok"),
    case(("validate", *F, "--name", "Bad Name"), 2, "invalid lab name 'Bad Name'", lab="ok"),
    # lab files anyone may have written (issue 27)
    *(case(argv, 2, message, lab=lab) for argv in [("validate", *F), ("render", *F, *D)]
      for lab, message in [
        ("alias-bomb", "lab.yaml:6: more than 50000 values once aliases are expanded"),
        ("deep", "lab.yaml:1: nested deeper than 24 levels"),
        ("recursive-alias", "lab.yaml:1: alias *x is inside its own anchor"),
        ("tag-int", "lab.yaml:3: explicit YAML tag !!int: a lab file takes plain values"),
        ("tag-bool", "lab.yaml:3: explicit YAML tag !!bool"),
        ("tag-timestamp", "lab.yaml:3: explicit YAML tag !!timestamp"),
        ("bad-date", "lab.yaml:3: machines.web.hostname: invalid value '2001-13-45'"),
        ("long-int", "lab.yaml:3: a value longer than 4096 characters"),
        ("complex-key", "lab.yaml:2: (top): a key is a name, not a list"),
        ("control-char", "lab.yaml:4: control character U+0007 is not allowed here"),
        ("union", "lab.yaml:3: machines.web.ip: input should be a valid integer or a valid string"),
        ("not-a-mapping", "lab.yaml:3: machines.web: input should be a mapping (key: value)"),
        ("true-ip", "lab.yaml:3: machines.web.ip: input should be a valid integer or a valid"),
        ("true-count", "lab.yaml:3: machines.web.count: input should be a valid integer"),
        ("string-count", "lab.yaml:3: machines.web.count: input should be a valid integer"),
        ("arabic-subnet", "lab.yaml:2: subnet: invalid subnet"),
        ("trailing-dash", "lab.yaml:3: machines.web-: 'web-' is not a host name for a machine"),
        ("localhost", "lab.yaml:3: machines.web.hostname: 'localhost' is not a host name"),
        ("hex-name", "lab.yaml:4: machines.db1: machine name 'db1' is only hexadecimal digits"),
        ("hex-count", "lab.yaml:3: machines.db.count: machine name 'db1' is only hexadecimal"),
        ("outside-script", "lab.yaml:4: machines.web.provision[0]: /etc/shadow is outside the "
                           "lab file's folder"),
        ("dotdot-script", "lab.yaml:4: machines.web.provision[0]: ../x.sh is outside"),
        ("nul-script", "lab.yaml:4: machines.web.provision[0]: 'a\\x00b' holds a control"),
        ("outside-war", "lab.yaml:2: jenkins.war: /etc/hostname is outside the lab file's folder"),
        ("libvirt-ext", "lab.yaml:2: libvirt_uri: invalid value 'qemu+ext:///system?command"),
        ("symlink-script", "lab.yaml:4: machines.web.provision[0]: link.sh leads to /etc/passwd,"
                           " outside"),
        ("fifo-script", "lab.yaml:4: machines.web.provision[0]: s.sh: not a regular file"),
        ("dev-zero", "lab.yaml: not a regular file"),
        ("fifo", "lab.yaml: not a regular file"),
        ("big", "lab.yaml: larger than 1024 KiB"),
        ("latin-1", "lab.yaml:3: not UTF-8 text (byte 0xe9): a lab file is UTF-8"),
    ]),
    *(case((*argv, "-f", ""), 2, "-f: give a lab file's path (it was empty)")
      for argv in [("validate",), ("render",), ("up",)]),
    # render and up, one more of each
    case(("render", "k8s", *D), 2, "unknown lab or topology 'k8s'"),
    case(("render", "nodes", "--name", "Bad_Name", *D), 2, "invalid lab name 'Bad_Name'"),
    case(("render", "nodes", "--name", "x" * 32, *D), 2, "invalid lab name"),
    case(("render", "nodes", "--subnet", "8.8.8", *D), 2, "subnet 8.8.8 is not private"),
    case(("render", "nodes", "--subnet", "192.168.1.0", *D), 2, "invalid subnet '192.168.1.0'"),
    case(("render", "nodes", "--count", "0", *D), 2, "--count must be between 1 and 9, got 0"),
    case(("render", "nodes", "--count", "10", *D), 2, "--count must be between 1 and 9, got 10"),
    case(("render", "nodes", "--count", "abc", *D), 2, "Invalid value for '--count'"),
    case(("render", "jenkins", "--agents", "-1", *D), 2, "--agents must be between 0 and 9, got -1"),
    case(("render", "jenkins", "--agents", "10", *D), 2, "--agents must be between 0 and 9, got 10"),
    case(("render", "jenkins", "--agents", "abc", *D), 2, "Invalid value for '--agents'"),
    case(("render", "mysql-pair", "--replicas", "0", *D), 2, "--replicas must be between 1 and 5, got 0"),
    case(("render", "mysql-pair", "--replicas", "6", *D), 2, "--replicas must be between 1 and 5, got 6"),
    case(("render", "nodes", "--provider", "vmware"), 2, "unknown provider 'vmware'"),
    case(("render", "nodes", *D, "--libvirt-uri", "qemu:///system"), 2, "--libvirt-uri applies only"),
    case(("up", "nodes", "--count", "12", *D), 2, "--count must be between 1 and 9, got 12"),
    case(("up", "nodes", "--name", "9lives", *D), 2, "invalid lab name '9lives'"),
    case(("up", "jenkins", "--agents", "10", *D), 2, "--agents must be between 0 and 9, got 10"),
    case(("up", "jenkins", "--agents", "abc", *D), 2, "Invalid value for '--agents'"),
    case(("render", "jenkins", "--jenkins-war", "/nonexistent/none.war", *D), 2, "no such file"),
    case(("mysql-pair", "--replicas", "0", *D), 2, "--replicas must be between 1 and 5, got 0"),
    case(("mysql-pair", "--replicas", "6", *D), 2, "--replicas must be between 1 and 5, got 6"),
    # destroy: a bad name is bad usage, even where nothing is there to destroy
    *(case(argv, 2, "invalid lab name") for argv in [
        ("destroy", "../x", "--yes"), ("destroy", "Demo", "--yes"), ("destroy", "--yes", "--lab", "a/b"),
    ]),
    # usage errors: one line, like every other
    case(("up", "--bogus"), 2, "No such option: --bogus"),
    case(("validate",), 2, "Missing option '--file' / '-f'. (see: labctl validate --help)"),
    case(("status", "x", "y", "z"), 2, "Got unexpected extra argument"),
    case(("nosuch",), 2, "No such command 'nosuch'."),
]  # fmt: skip


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Fake programs alone on PATH, and every place labctl may write, in tmp_path."""
    bindir, ran = tmp_path / "bin", tmp_path / "ran.log"
    bindir.mkdir()
    for name in FAKES:
        fake = bindir / name
        fake.write_text(f"#!/bin/sh\nprintf '%s\\n' \"${{0##*/}} $*\" >> '{ran}'\nexit 1\n")
        fake.chmod(0o755)
    places = {"home": tmp_path / "home", "host": tmp_path / "host", "ran": ran}
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setenv("LABCTL_HOME", str(places["home"]))
    monkeypatch.setenv("LABCTL_HOST_DIR", str(places["host"]))
    monkeypatch.setenv("VAGRANT_HOME", str(tmp_path / "vagrant.d"))
    monkeypatch.setenv("VAGRANT_SERVER_URL", "http://127.0.0.1:1")  # never the network
    for var in ("LABCTL_LAB", "LABCTL_PROVIDER"):
        monkeypatch.delenv(var, raising=False)
    return places


@pytest.mark.parametrize(("argv", "code", "message", "env", "lab"), CASES)
def test_bad_input_is_refused_before_anything_happens(
    cli,
    sandbox: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: tuple[str, ...],
    code: int,
    message: str,
    env: dict[str, str],
    lab: str | None,
) -> None:
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    if lab:
        made = LABS[lab]
        text = made(tmp_path) if callable(made) else made
        if isinstance(text, str):
            (tmp_path / "lab.yaml").write_text(text)
    ran = cli(*(a.replace("{lab}", str(tmp_path / "lab.yaml")) for a in argv))
    lines = ran.stderr.splitlines()
    assert ran.code == code, ran.stderr
    assert "Traceback" not in ran.stderr
    assert any(message in line for line in lines), ran.stderr
    if code:  # an error is one line, then hints only
        assert lines and lines[0].startswith("labctl: error:"), ran.stderr
        assert message in lines[0]
        assert all(line.startswith("  hint: ") for line in lines[1:]), ran.stderr
    assert tree(sandbox["home"]) == []
    assert tree(sandbox["host"]) == []
    started = sandbox["ran"].read_text() if sandbox["ran"].exists() else ""
    assert started == "", f"programs started: {started}"

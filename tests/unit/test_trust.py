"""A lab file is data: nothing in it, nor in its path, becomes code on the
host; it reaches nothing outside its folder; and any file, however made, is
either a lab or one line and exit 2.

Ruby itself reads back what labctl writes (`ruby` comes with Vagrant), and
the property test generates its lab files (hypothesis, seeded; `make fuzz`
runs it longer)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.project import render

from ..conftest import require

# What breaks out of a quoted string, a comment or the file in Ruby.
HOSTILE = [
    "'",
    '"',
    "\\",
    "\\'",
    "#{File.write('CANARY', 'x')}",
    "`touch CANARY`",
    "%q(",
    ")",
    "__END__",
    "=begin",
    "<<EOS",
    "$(touch CANARY)",
    "; File.write('CANARY', 'x') #",
    "\u00e9\u4e2d\U0001f600",
    "\u2028",
]
CONTROL = [
    "\n",
    "\r",
    "\x00",
    "\x07",
    "\x1b[31m",
    "\x7f",
    "\n__END__\n",
    "\nFile.write('CANARY','x')\n",
]

# Vagrant.configure with a recorder: every call and its arguments, as JSON.
RECORDER = """
require 'json'
$seen = []
class Rec
  def initialize(path) @path = path end
  def method_missing(name, *args, **kw, &blk)
    $seen << [@path + '.' + name.to_s, args, kw.transform_keys(&:to_s)]
    rec = Rec.new(@path + '.' + name.to_s)
    blk.call(rec) if blk
    rec
  end
  def respond_to_missing?(*) true end
end
module Vagrant
  def self.configure(version) yield Rec.new('config') end
end
ARGV.each do |file|  # each Vagrantfile in its own folder; one JSON line each
  $seen = []
  Dir.chdir(File.dirname(file)) { load file }
  puts JSON.generate($seen, ascii_only: true)
end
"""


def _ruby() -> str:
    exe = shutil.which("ruby")
    require(exe, "ruby is not installed (it comes with Vagrant)")
    return str(exe)


def _strings(seed: int, n: int) -> list[str]:
    """Hostile pieces glued to random characters of every plane (no surrogates)."""
    rng = random.Random(seed)
    pool = HOSTILE + CONTROL
    out = []
    for _ in range(n):
        parts = [rng.choice(pool) for _ in range(rng.randint(1, 4))]
        parts += [
            chr(
                rng.choice(
                    [rng.randint(0, 0x7F), rng.randint(0x80, 0xD7FF), rng.randint(0xE000, 0x10FFFF)]
                )
            )
            for _ in range(rng.randint(0, 3))
        ]
        rng.shuffle(parts)
        out.append("".join(parts))
    return out


def test_every_string_is_one_ruby_line_that_ruby_reads_back(tmp_path: Path) -> None:
    ruby = _ruby()
    values = HOSTILE + CONTROL + _strings(7, 300)
    literals = [render.ruby(v) for v in values]
    assert all("\n" not in lit and "\r" not in lit for lit in literals)
    assert all(lit.isascii() and lit.isprintable() for lit in literals)
    script = tmp_path / "values.rb"
    # each literal also inside a comment: a comment must end where its line does
    body = "".join(f"# {lit}\nv << {lit}\n" for lit in literals)
    script.write_text(f"require 'json'\nv = []\n{body}puts JSON.generate(v)\n")
    done = subprocess.run([ruby, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == values
    assert not (tmp_path / "CANARY").exists()


def test_a_string_that_is_not_utf8_has_no_ruby_literal() -> None:
    with pytest.raises(ValueError, match="not UTF-8"):
        render.ruby("caf\udce9")


FOLDERS = [h for h in HOSTILE if "/" not in h and h not in ("'", '"')] + [
    'it\'s a "lab"',
    "#{`id`}",
]


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_hostile_path_reaches_the_vagrantfile_as_data(
    cli, home: Path, tmp_path: Path, folder: str
) -> None:
    """A lab file in a folder, and a script, named to break out of Ruby:
    Ruby (Vagrant.configure recorded) reads back the very names, and runs
    nothing."""
    ruby = _ruby()
    where = tmp_path / "clone" / folder
    where.mkdir(parents=True)
    script = f"s {folder}.sh"
    (where / script).write_text("echo hi\n")
    (where / "lab.yaml").write_text(
        yaml.safe_dump({"name": "t", "machines": {"web": {"provision": [script]}}})
    )
    ran = cli("render", "-f", str(where / "lab.yaml"), "--provider", "docker", "--stdout")
    assert ran.code == 0, ran.stderr
    vagrantfile = tmp_path / "Vagrantfile"
    vagrantfile.write_text(ran.stdout)
    done = subprocess.run(
        [ruby, "-e", RECORDER, str(vagrantfile)], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "CANARY").exists()
    calls = json.loads(done.stdout)
    provisions = [kw.get("path") for name, _, kw in calls if name.endswith(".vm.provision")]
    assert f"provision/user/{script}" in provisions
    # the comment that names the lab file ends on its own line
    header = [line for line in ran.stdout.splitlines() if line.startswith("# lab ")]
    assert header and render.ruby(f"lab file {where / 'lab.yaml'}") in header[0]


@pytest.mark.parametrize("bad", ["new\nline", "tab\tand\x1b", "cr\r"])
def test_a_path_with_a_control_character_is_refused_before_anything_is_written(
    cli, home: Path, tmp_path: Path, bad: str
) -> None:
    where = tmp_path / bad
    where.mkdir()
    (where / "lab.yaml").write_text("name: t\nmachines:\n  web: {}\n")
    for argv in (["render"], ["up"], ["validate"]):
        ran = cli(*argv, "-f", str(where / "lab.yaml"), "--provider", "docker")
        assert ran.code == 2, ran.stderr
        assert "control character" in ran.stderr
        assert len(ran.stderr.splitlines()) == 1
    assert not home.exists()


# ---------------------------------------------------------------- generated lab files

NAMES = st.from_regex(r"[g-z][a-z0-9-]{0,8}[a-z0-9]", fullmatch=True)
ROLES = st.sampled_from(["containerd", "mysql-primary", "mysql-replica", "jenkins-agent"])
MACHINE = st.fixed_dictionaries(
    {},
    optional={
        "roles": st.lists(ROLES, max_size=2, unique=True),
        "count": st.integers(1, 3),
        "cpus": st.integers(1, 4),
        "memory": st.sampled_from([512, 1024]),
        "ip": st.integers(2, 250),
        "hostname": NAMES,
    },
)
LAB = st.fixed_dictionaries(
    {"machines": st.dictionaries(NAMES, MACHINE, min_size=1, max_size=4)},
    optional={"name": NAMES, "subnet": st.sampled_from(["10.9.8", "192.168.77"])},
)
JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True)
    | st.lists(st.sampled_from(HOSTILE + CONTROL + list("ab:#&*!-[]{}|>")), max_size=5).map("".join)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)


def _mutate(data: dict[str, Any], junk: Any, rng: random.Random) -> dict[str, Any]:
    """Put `junk` at a random place of the lab (a key's value, or a new key)."""
    target: Any = data
    path = [k for k in ("machines",) if k in data]
    for key in path:
        target = target[key]
    if isinstance(target, dict) and target and rng.random() < 0.7:
        key = rng.choice(sorted(target))
        if isinstance(target[key], dict) and target[key] and rng.random() < 0.6:
            target = target[key]
            key = rng.choice([*sorted(target), "roles", "ip", "count", "provision", "ports"])
        target[key] = junk
    else:
        data[rng.choice(["name", "subnet", "provider", "box", "libvirt_uri", "mysql", "x"])] = junk
    return data


RAW = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.integers(1, 400).map(lambda n: ("a: " + "[" * n + "]" * n + "\n").encode()),
    st.integers(1, 12).map(
        lambda n: "".join(
            f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9) if i else 'x'}]\n" for i in range(n)
        ).encode()
    ),
    st.sampled_from(
        [
            b"a: !!int x\n",
            b"a: !!timestamp 2001-13-45\n",
            b"a: !!python/object:os.system\n",
            b"? [a, b]\n: 1\n",
            b"a: &x [*x]\n",
            b"machines: {a: 2001-13-45}\n",
            b"count: " + b"9" * 5000 + b"\n",
        ]
    ),
)
EXAMPLES = int(os.environ.get("LABCTL_FUZZ_EXAMPLES", "60"))


# seeded and with no example database: the same examples on every run
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=2000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def crash_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where a crash report would go (labctl writes one to the temporary folder)."""
    folder = tmp_path / "tmp"
    folder.mkdir(exist_ok=True)
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _check_one(cli, path: Path, data: bytes, crash_dir: Path) -> None:
    path.write_bytes(data)
    ran = cli("validate", "-f", str(path))
    assert ran.code in (0, 2), ran.stderr
    lines = ran.stderr.splitlines()
    if ran.code == 2:
        assert lines and lines[0].startswith("labctl: error: "), ran.stderr
        assert all(line.startswith("  hint: ") for line in lines[1:]), ran.stderr
        assert "internal error" not in ran.stderr
    assert not list(crash_dir.glob("labctl-crash-*"))


@FUZZ
@given(lab=LAB, junk=JUNK, seed=st.integers(0, 2**16), mutate=st.booleans())
def test_a_generated_lab_file_validates_or_is_one_line(
    cli, home: Path, tmp_path: Path, crash_dir: Path, lab, junk, seed, mutate
) -> None:
    data = _mutate(lab, junk, random.Random(seed)) if mutate else lab
    try:
        text = yaml.safe_dump(data, allow_unicode=True).encode("utf-8", "surrogatepass")
    except (yaml.YAMLError, UnicodeEncodeError):
        return
    _check_one(cli, tmp_path / "lab.yaml", text, crash_dir)


@FUZZ
@given(raw=RAW)
def test_any_bytes_are_a_lab_or_one_line(
    cli, home: Path, tmp_path: Path, crash_dir: Path, raw: bytes
) -> None:
    _check_one(cli, tmp_path / "lab.yaml", raw, crash_dir)


def _with(field: str, value: str, where: Path) -> dict[str, Any]:
    """A lab file whose `field` holds `value` (files named by it made in `where`)."""
    lab: dict[str, Any] = {"name": "t", "machines": {"web": {}}}
    web = lab["machines"]["web"]
    if field in ("name", "box", "timezone", "subnet", "provider"):
        lab[field] = value
    elif field == "libvirt_uri":
        lab.update(provider="libvirt", libvirt_uri=value)
    elif field in ("hostname", "box-of-machine"):
        web["hostname" if field == "hostname" else "box"] = value
    elif field == "provision":
        if "/" not in value and "\0" not in value:
            with contextlib.suppress(OSError):
                (where / value).write_text("echo hi\n")
        web["provision"] = [value]
    elif field == "role":
        web["roles"] = [value]
    elif field == "source":
        lab["machines"]["primary"] = {"roles": ["mysql-primary"]}
        web["roles"] = [{"mysql-replica": {"source": value}}]
    elif field == "war":
        if "/" not in value and "\0" not in value:
            with contextlib.suppress(OSError):
                (where / value).write_bytes(b"PK")
        lab["jenkins"] = {"war": value}
        web["roles"] = ["jenkins-controller"]
    elif field == "port-id":
        web["ports"] = [{"guest": 80, "host": 8080, "id": value}]
    elif field == "machine-name":
        lab["machines"] = {value: {}}
    return lab


FIELDS = [
    "name", "provider", "box", "timezone", "subnet", "libvirt_uri", "hostname",
    "box-of-machine", "provision", "role", "source", "war", "port-id", "machine-name",
]  # fmt: skip


def test_every_string_field_holds_hostile_text_as_data_or_refuses_it(
    cli, home: Path, tmp_path: Path
) -> None:
    """Each string a lab file has, filled with text made to break out of Ruby:
    refused in one line (exit 2), or rendered so that Ruby reads the very text
    back and runs nothing."""
    ruby = _ruby()
    values = [*HOSTILE, *CONTROL, *_strings(11, 6)]
    rendered: list[tuple[str, str, Path]] = []
    for n, (field, value) in enumerate((f, v) for f in FIELDS for v in values):
        where = tmp_path / f"lab{n}"
        where.mkdir()
        (where / "lab.yaml").write_text(yaml.safe_dump(_with(field, value, where)))
        ran = cli("render", "-f", str(where / "lab.yaml"), "--provider", "docker", "--stdout")
        if ran.code == 2:
            lines = ran.stderr.splitlines()
            assert lines[0].startswith("labctl: error: "), (field, value, ran.stderr)
            assert all(line.startswith("  hint: ") for line in lines[1:]), (field, ran.stderr)
            continue
        assert ran.code == 0, (field, value, ran.stderr)
        (where / "Vagrantfile").write_text(ran.stdout)
        rendered.append((field, value, where))
    assert len(rendered) >= 10  # the paths with printable text: scripts and the war file
    # one Ruby for them all: each Vagrantfile loaded in its folder, its calls recorded
    done = subprocess.run(
        [ruby, "-e", RECORDER, *(str(where / "Vagrantfile") for _, _, where in rendered)],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for (field, value, where), line in zip(rendered, done.stdout.splitlines(), strict=True):
        assert not (where / "CANARY").exists(), (field, value)
        if field == "provision":
            paths = [kw.get("path") for name, _, kw in json.loads(line) if kw.get("path")]
            assert f"provision/user/{value}" in paths
    assert not (tmp_path / "CANARY").exists()

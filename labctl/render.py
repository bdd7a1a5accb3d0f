"""Lab spec -> lab folder: the Vagrantfile (Jinja2), provision scripts,
lab.json (the record) and lab.yaml (the lab file it came from, normalised).

Pure rendering plus one atomic write; running `vagrant validate` is the
driver's job and ordering the two is ops' job.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from labctl import __version__
from labctl.spec import LabSpec, Machine, spec_to_record

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """templates/ or provision/: inside an installed wheel, else the source tree."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"labctl is installed without its {name}/ folder")


_PRINTABLE = re.compile(r"[ -~]*")


def ruby_string(text: str) -> str:
    """A Ruby string literal of `text`, always on one line of printable ASCII,
    so it is safe in a comment too. Printable text is single-quoted (no
    interpolation, only \\ and \' mean anything); anything else is
    double-quoted with every character outside printable ASCII, and `#`
    (which would start #{...}), written as an escape."""
    if _PRINTABLE.fullmatch(text):
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    out = []
    for char in text:
        if char in '"\\#':
            out.append("\\" + char)
        elif " " <= char <= "~":
            out.append(char)
        elif 0xD800 <= ord(char) <= 0xDFFF:  # a byte that was not UTF-8: no Ruby string holds it
            raise ValueError(f"{text!r} is not UTF-8 text")
        else:
            out.append(f"\\u{{{ord(char):x}}}")
    return '"' + "".join(out) + '"'


def ruby(value: Any) -> str:
    """A Python value as a Ruby literal (strings by ruby_string)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return ruby_string(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{ruby(str(k))} => {ruby(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(ruby(v) for v in value) + "]"
    raise TypeError(f"no Ruby literal for {type(value).__name__}")


# on every docker guest: the id of the lab it belongs to
LAB_ID_LABEL = "io.labctl.lab-id"


def container_prefix(spec: LabSpec) -> str:
    """Names of a lab's containers/domains: labctl-<lab>-<machine>."""
    return f"labctl-{spec.name}-"


def docker_args(spec: LabSpec, m: Machine) -> list[str]:
    """`docker create` flags that let systemd run as PID 1 without --privileged."""
    return [
        "--cap-add=SYS_ADMIN",
        "--cap-add=NET_ADMIN",
        "--security-opt=seccomp=unconfined",
        "--security-opt=apparmor=unconfined",
        "--cgroupns=host",
        "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw",
        "--tmpfs=/run",
        "--tmpfs=/run/lock",
        # containerd's overlay snapshotter cannot stack on the container's own
        # overlay root; an anonymous volume per machine is a plain directory
        # and `vagrant destroy` (docker rm -v) removes it with the container.
        "--volume=/var/lib/containerd",
        # systemd shuts down cleanly on SIGRTMIN+3, not on docker's SIGTERM.
        "--stop-signal=SIGRTMIN+3",
        f"--cpus={m.cpus}",
        f"--memory={m.memory}m",
        f"--label=io.labctl.lab={spec.name}",
        f"--label={LAB_ID_LABEL}={spec.id}",
    ]


@cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("templates"))),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # a Vagrantfile is Ruby, not HTML: `ruby` does the quoting
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["ruby"] = ruby
    return env


def render_vagrantfile(spec: LabSpec, accel: str = "kvm") -> str:
    """The lab's Vagrantfile. `accel` ("kvm" or "tcg", see providers.vm_accel)
    is how this host runs libvirt guests."""
    template = _environment().get_template("Vagrantfile.j2")
    return str(
        template.render(
            spec=spec,
            version=__version__,
            prefix=container_prefix(spec),
            docker_args=lambda m: docker_args(spec, m),
            emulated=accel != "kvm",
        )
    )


def lab_files(
    spec: LabSpec, lab_yaml: str, scripts: Mapping[str, bytes] | None = None, accel: str = "kvm"
) -> dict[str, str | bytes]:
    """Relative path -> content of every file labctl writes into a lab folder;
    `scripts` are the user's own (below provision/), copied as they are."""
    files: dict[str, str | bytes] = {
        "Vagrantfile": render_vagrantfile(spec, accel),
        "lab.json": record_text(spec),
        "lab.yaml": lab_yaml,
    }
    user = dict(scripts or {})
    used = sorted(
        {"lib.sh"} | {p.script for m in spec.machines for p in m.provisioners} - set(user)
    )
    source = data_dir("provision")
    for script in used:
        files[f"provision/{script}"] = (source / script).read_text()
    for script, content in sorted(user.items()):
        files[f"provision/{script}"] = content
    return files


def record_text(spec: LabSpec) -> str:
    """lab.json: the spec the lab folder was rendered from."""
    return json.dumps(spec_to_record(spec), indent=2) + "\n"


def write_tree(files: Mapping[str, str | bytes], root: Path) -> None:
    """Write `files` under a new folder `root` (0700: it will hold secrets)."""
    root.mkdir(mode=0o700)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        if rel.startswith("provision/"):
            path.chmod(0o755)


def staging_folder(name: str, home: Path) -> Path:
    """A fresh name beside the labs for a lab's rendered files, not created yet:
    the caller creates it inside its own clean-up, so a Ctrl-C at any point
    leaves no folder behind."""
    home.mkdir(parents=True, exist_ok=True)
    return home / f".render-{name}-{secrets.token_hex(6)}"


def install(staging: Path, target: Path, record: bool = True) -> None:
    """Move a staged lab into place.

    A new lab is one rename. An existing lab keeps its .vagrant/ machine state
    and labctl state; its Vagrantfile, provision/, lab.yaml and lab.json are replaced
    file by file (each replace is atomic), lab.json last so the record never
    describes a Vagrantfile that is not there. Without `record`, lab.json stays:
    the caller writes it once the change is applied.
    """
    if not target.exists():
        os.rename(staging, target)
        return
    old_provision = target / "provision"
    if old_provision.exists():
        shutil.rmtree(old_provision)
    if (staging / "provision").exists():
        os.replace(staging / "provision", old_provision)
    os.replace(staging / "Vagrantfile", target / "Vagrantfile")
    os.replace(staging / "lab.yaml", target / "lab.yaml")
    if record:
        os.replace(staging / "lab.json", target / "lab.json")
    shutil.rmtree(staging)

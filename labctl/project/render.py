"""Lab spec -> lab folder: the Vagrantfile (Jinja2), provision scripts,
lab.json (the record) and lab.yaml (the lab file it came from, normalised).

Pure rendering plus one atomic write; running `vagrant validate` is the
driver's job and ordering the two is ops' job.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from labctl import __version__, providers
from labctl.lab.spec import LabSpec, spec_to_record
from labctl.local.datafiles import data_dir
from labctl.local.ruby import ruby
from labctl.providers.base import machine_prefix


@cache
def environment(folder: str = "") -> Any:
    """Jinja2 over templates/ (or its `folder`), strict about undefined names."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("templates") / folder)),
        undefined=jinja2.StrictUndefined,
        # Ruby and YAML, not HTML: the `ruby` and `yaml` filters do the quoting
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["ruby"] = ruby
    env.filters["yaml"] = json.dumps  # a JSON string is a YAML string
    return env


def render_vagrantfile(spec: LabSpec, accel: str = "kvm") -> str:
    """The lab's Vagrantfile: templates/Vagrantfile.j2 and the lab's provider's
    partial (templates/providers/NAME.j2) with its variables. `accel` ("kvm"
    or "tcg", the provider's `accel`) is how this host runs the guests."""
    template = environment().get_template("Vagrantfile.j2")
    provider = providers.get(spec.provider)
    return str(
        template.render(
            spec=spec,
            version=__version__,
            prefix=machine_prefix(spec),
            **provider.vagrantfile(spec, accel),
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

"""python-vagrant, and the little it lacks, in one place: every command line
labctl gives Vagrant is made here.

python-vagrant 1.0.0 (its last release, pinned) knows Vagrant's commands and
their options: its `up`, `provision`, `reload`, `halt`, `suspend`, `resume`,
`destroy`, `ssh_config` and `status` (whose answer it parses) are what the
driver calls. What it lacks, and how this module fills it:

- A runner other than its own. Each method runs its command itself with
  subprocess: in labctl's process group (the terminal's Ctrl-C reaches Vagrant
  directly, not once through labctl), stderr to /dev/null (Vagrant's reason
  for a failure is lost), no time limit (a stuck provider hangs labctl), and
  the output only at the end (only `up` and `reload` stream, as a generator).
  It has no hook for this, but every method ends in one of two of its own:
  `_call_vagrant_command` (an action) or `_run_vagrant_command` (a question).
  `python_vagrant()`'s object replaces those two, and nothing else, with the
  `Run` it is given: the driver's, on labctl.local.process (its lines as they
  come, a time limit, one SIGINT passed on, stderr kept).
- --machine-readable on every command (it adds it only where it parses the
  answer, `status`): each line then names its machine, and a failure its
  Vagrant::Errors class.
- Several machines in one command: `vm_name` takes one; a tuple here is several.
- A clear error when Vagrant is missing: `executable()` says how to install it,
  where python-vagrant raises a RuntimeError (and warns as it is imported).
- The commands it has no method for: `vagrant port MACHINE` (its `port()` is
  the SSH port out of ssh-config) and `vagrant validate --ignore-provider` (its
  `validate(directory)` runs a bare `vagrant validate` itself): `port_argv()`
  and `validate_argv()`, for the same runner.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from labctl.errors import SpecError

# One vagrant command line run to its end -> its stdout; `stream`: an action,
# whose lines are shown as they come.
Run = Callable[[list[str], bool], str]
MACHINE_READABLE = "--machine-readable"
_NOT_INSTALLED_HINT = (
    "install Vagrant: apt-get install vagrant (or https://developer.hashicorp.com/vagrant/install)"
)


def executable() -> str:
    """The vagrant on PATH; SpecError naming the package when there is none."""
    exe = shutil.which("vagrant")
    if not exe:
        raise SpecError("vagrant is not installed", hint=_NOT_INSTALLED_HINT)
    return exe


def argv(words: Sequence[str | Sequence[str] | None]) -> list[str]:
    """A vagrant command line: `words` without the Nones (python-vagrant's
    unset options), a tuple of machine names as several, --machine-readable."""
    flat: list[str] = []
    for word in words:
        if isinstance(word, str):
            flat.append(word)
        elif word is not None:
            flat.extend(word)
    if MACHINE_READABLE not in flat:
        flat.append(MACHINE_READABLE)
    return [executable(), *flat]


def python_vagrant(root: Path, run: Run) -> Any:
    """python-vagrant's Vagrant for the lab folder `root`, its every command run by `run`."""
    import vagrant  # here, not at labctl's start: --help pays for no python-vagrant

    class Vagrant(vagrant.Vagrant):
        def _call_vagrant_command(self, args: list[Any]) -> None:
            run(argv(args), True)

        def _run_vagrant_command(self, args: list[Any]) -> str:
            return run(argv(args), False)

    return Vagrant(root=str(root))


def port_argv(machine: str) -> list[str]:
    """`vagrant port MACHINE`: a running machine's forwarded ports."""
    return argv(["port", machine])


def validate_argv(ignore_provider: bool) -> list[str]:
    """`vagrant validate`; with `ignore_provider`, for a provider this host lacks."""
    return argv(["validate", "--ignore-provider" if ignore_provider else None])

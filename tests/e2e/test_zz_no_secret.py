"""Last of the run (pytest takes the files in order): no secret labctl
generated in any lab of the run (replication and Jenkins passwords, SSH keys)
appears in anything labctl printed, in any traceback, or in any file of a lab
folder outside secrets/; and no command printed a traceback at all."""

from __future__ import annotations

import pytest

from .conftest import SEEN

# the commands whose very job is to show a secret to its user
SHOWS = ("jenkins password",)


def test_no_generated_secret_anywhere_the_run_looked() -> None:
    if not SEEN.secrets:
        pytest.skip("no lab of this run generated a secret (run the whole e2e suite)")
    assert any(p.endswith("/Vagrantfile") for p in SEEN.files)  # the folders were read
    leaks = [
        f"{source} in {where}"
        for secret, source in SEEN.secrets.items()
        for where, text in [
            *(
                (f"the output of labctl {cmd}", out)
                for cmd, out in SEEN.outputs
                if not cmd.startswith(SHOWS)
            ),
            *SEEN.files.items(),
        ]
        if secret in text
    ]
    assert not leaks, leaks[:10]


def test_no_command_printed_a_traceback() -> None:
    if not SEEN.outputs:
        pytest.skip("no labctl command ran in this session")
    printed = [(c, o) for c, o in SEEN.outputs if "Traceback (most recent call last)" in o]
    assert not printed, printed[0]

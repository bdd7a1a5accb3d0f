"""Command quoting: every word of an argv is one word on the guest."""

from __future__ import annotations

import pytest

from labctl.transport.interface import command_line


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["echo", "a b"], "echo 'a b'"),
        (["echo", "$(id)"], "echo '$(id)'"),
        (["echo", "x; touch /tmp/pwned"], "echo 'x; touch /tmp/pwned'"),
        (["echo", "it's"], "echo 'it'\"'\"'s'"),
    ],
)
def test_every_word_is_quoted(argv: list[str], line: str) -> None:
    assert command_line(argv) == line
    assert command_line(argv, sudo=True) == "sudo -n -H -- " + line

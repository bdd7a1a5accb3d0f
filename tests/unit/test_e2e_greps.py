"""The end-of-run greps of the e2e suite (tests/e2e/conftest.py) find what
they look for: a check that finds nothing must be shown able to."""

from __future__ import annotations

from ..e2e.conftest import Seen, secret_leaks, tracebacks


def test_a_secret_in_an_output_or_a_lab_file_is_found() -> None:
    seen = Seen(
        outputs=[("mysql info", "password s3cr3t-pass here"), ("jenkins password", "s3cr3t-pass")],
        files={"/l/lab.json": "{}", "/l/provision/x.sh": "echo s3cr3t-pass"},
        secrets={"s3cr3t-pass": "/l/secrets/repl"},
    )
    assert secret_leaks(seen) == [
        "/l/secrets/repl in the output of labctl mysql info",
        "/l/secrets/repl in /l/provision/x.sh",
    ]
    assert secret_leaks(Seen(outputs=[("ls", "nothing")], secrets={"s3cr3t-pass": "x"})) == []


def test_a_traceback_in_an_output_is_found() -> None:
    seen = Seen(outputs=[("up", "ok"), ("ctr ps", "Traceback (most recent call last):\n  ...")])
    assert tracebacks(seen) == [seen.outputs[1]]

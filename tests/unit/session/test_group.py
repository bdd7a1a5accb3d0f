"""One result per machine and one combined error, for every command that
acts on several machines (Fabric's GroupResult and GroupException)."""

from __future__ import annotations

import pytest

from labctl.errors import ExitCode, GuestError, SpecError, TimedOut
from labctl.session.group import GroupFailed, Outcome, Outcomes, fan_out


def test_each_machine_answers_or_fails_on_its_own() -> None:
    def answer(name: str) -> str:
        if name == "b":
            raise GuestError("b: no containerd here", hint="labctl provision LAB b")
        if name == "c":
            raise KeyError("surprise")
        return name.upper()

    got = fan_out(["a", "b", "c", "d"], answer)
    assert [o.vm for o in got] == ["a", "b", "c", "d"]  # the order asked
    assert got.values == {"a": "A", "d": "D"}
    assert [o.vm for o in got.failed] == ["b", "c"]
    with pytest.raises(GroupFailed) as failed:
        got.check()
    err = failed.value
    assert err.message == "b: no containerd here; c: KeyError: 'surprise'"
    assert err.hint == "labctl provision LAB b" and err.exit_code == ExitCode.FAILED


@pytest.mark.parametrize(
    ("errors", "code"),
    [
        ([TimedOut("a: 600 s"), TimedOut("b: 600 s")], ExitCode.TIMEOUT),  # theirs, shared
        ([SpecError("a: bad"), SpecError("b: bad")], ExitCode.USAGE),
        ([TimedOut("a: 600 s"), GuestError("b: failed")], ExitCode.FAILED),  # they differ
    ],
)
def test_the_combined_exit_code(errors: list, code: ExitCode) -> None:
    failed = Outcomes(Outcome(e.message[0], error=e) for e in errors)
    assert GroupFailed(failed.failed).exit_code == code


def test_nothing_failed_nothing_raised() -> None:
    ok = Outcomes([Outcome("a", value=1), Outcome("b", value=2)])
    assert ok.check() is ok and ok.failed == [] and ok.values == {"a": 1, "b": 2}

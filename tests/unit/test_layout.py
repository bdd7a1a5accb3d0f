"""Tests mirror the code: tests/unit/<package>/test_<module>.py tests
labctl/<package>/<module>.py (or the package <module>/ itself), so the test of a
module is where one looks for it. The few that span layers are named here,
each with why."""

from __future__ import annotations

from pathlib import Path

UNIT = Path(__file__).parent
LABCTL = UNIT.parents[1] / "labctl"

CROSS_CUTTING = {
    "test_captured.py": "one runner feeds every captured output to the parser it names",
    "test_dependencies.py": "every module of labctl against the declared dependencies",
    "test_layout.py": "this test: the layout of the tests themselves",
    "test_e2e_greps.py": "the e2e suite's own end-of-run greps, not a module of labctl",
    "test_trust.py": "a hostile lab file from reading through build to the rendered files",
    "cli/test_bad_input.py": "one table of bad input for every command",
    "cli/test_guests.py": "the commands that look inside guests, through the entry point",
    "providers/test_names.py": "no module of labctl but a provider's compares its name",
}


def module_of(test: Path) -> Path | None:
    """The module of labctl that tests/unit/<...>/test_<name>.py tests, if any."""
    relative = test.relative_to(UNIT)
    name = relative.name.removeprefix("test_").removesuffix(".py")
    folder = LABCTL.joinpath(*relative.parent.parts)
    for candidate in (folder / f"{name}.py", folder / name / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_every_test_file_is_named_after_the_module_it_tests() -> None:
    tests = sorted(UNIT.rglob("test_*.py"))
    unmapped = [
        str(t.relative_to(UNIT))
        for t in tests
        if module_of(t) is None and str(t.relative_to(UNIT)) not in CROSS_CUTTING
    ]
    assert unmapped == []
    assert len(tests) > 40  # the walk found the tests


def test_the_allow_list_names_only_test_files_that_exist_and_map_to_nothing() -> None:
    for name in CROSS_CUTTING:
        assert (UNIT / name).is_file(), name
        assert module_of(UNIT / name) is None, f"{name} maps to a module: drop it from the list"

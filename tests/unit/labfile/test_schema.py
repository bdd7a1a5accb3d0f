"""The lab file read: its YAML with the line of every node (libyaml and
PyYAML's own parser alike), keys given twice named where they are, the model's
first problem first, and the JSON Schema editors check files with."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from labctl.errors import SpecError
from labctl.labfile import schema as lab_schema
from labctl.labfile import topologies

from ...conftest import DATA
from ..labs import from_text

BAD = DATA / "labfiles" / "bad"
EXAMPLES = Path(__file__).parents[3] / "examples"


def _lines(node: yaml.Node) -> list[tuple[str, int, int]]:
    """Every node's kind and where it starts, depth first."""
    found = [(type(node).__name__, node.start_mark.line, node.start_mark.column)]
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            found += _lines(key) + _lines(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found += _lines(item)
    return found


def test_libyaml_and_the_python_parser_agree_on_data_and_lines() -> None:
    """Lab files are read by libyaml; its lines (for messages) and data must be
    what PyYAML's own parser gives, on every lab file labctl ships."""
    texts = [p.read_text() for p in EXAMPLES.glob("*/lab.yaml")]
    texts += [topologies.lab_text(t, topologies.params(t, {}, {})) for t in topologies.TOPOLOGIES]
    assert len(texts) > len(topologies.TOPOLOGIES)
    for text in texts:
        fast_node, fast_data = lab_schema.load_with(text, "lab.yaml", yaml.CSafeLoader)
        slow_node, slow_data = lab_schema.load_with(text, "lab.yaml", yaml.SafeLoader)
        assert fast_data == slow_data
        assert fast_node is not None and slow_node is not None
        assert _lines(fast_node) == _lines(slow_node)


def test_unknown_key_comes_first_and_the_rest_are_counted() -> None:
    """An unknown key explains more than what it left missing; the others are
    only counted in the hint."""
    text = "machines:\n  web:\n    cpus: 0\n    memroy: 512\n"
    with pytest.raises(SpecError) as exc:
        from_text(text)
    assert exc.value.message == "lab.yaml:4: machines.web.memroy: unknown key"
    assert exc.value.hint == "1 more problem in the file"


def test_read_names_the_file_itself(tmp_path: Path) -> None:
    """Errors of `-f FILE` carry that file's own name."""
    path = tmp_path / "mylab.yaml"
    shutil.copy(BAD / "count-zero.yaml", path)
    with pytest.raises(SpecError, match=r"^mylab\.yaml:5: machines\.node\.count: "):
        lab_schema.read(path)
    with pytest.raises(SpecError, match="cannot read lab file"):
        lab_schema.read(tmp_path / "absent.yaml")


def test_a_machine_declared_twice_is_refused() -> None:
    """Two `web:` keys are two machines the user meant, one of which would
    silently vanish."""
    with pytest.raises(SpecError, match=r"^lab\.yaml:3: machines\.web: "):
        from_text("machines:\n  web: {}\n  web:\n    cpus: 4\n")


def test_a_repeated_key_is_named_at_its_second_line() -> None:
    with pytest.raises(
        SpecError, match=r"^lab\.yaml:3: machines\.web: given twice \(first on line 2\)"
    ):
        from_text("machines:\n  web: {}\n  web:\n    cpus: 100\n")


def test_a_boolean_looking_machine_name_keeps_its_line() -> None:
    with pytest.raises(SpecError, match=r"^lab\.yaml:3: machines\.(on|True): "):
        from_text("machines:\n  web: {}\n  on: {}\n")


def test_json_schema_shape() -> None:
    schema = lab_schema.json_schema()
    assert isinstance(schema, dict)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"machines", "defaults", "mysql", "jenkins"} <= set(schema["properties"])
    assert "machines" in schema.get("required", [])


def test_json_schema_validates_the_example_and_refuses_a_typo() -> None:
    """Editors check files with this schema: it must agree with the reader."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = lab_schema.json_schema()
    kind = jsonschema.validators.validator_for(schema)
    kind.check_schema(schema)  # once: jsonschema.validate() would redo it for every file
    validator = kind(schema)
    example = yaml.safe_load((EXAMPLES / "mixed" / "lab.yaml").read_text())
    validator.validate(example)
    for topology in topologies.TOPOLOGIES:
        text = topologies.lab_text(topology, topologies.params(topology, {}, {}))
        validator.validate(yaml.safe_load(text))
    for case in ("unknown-machine-key", "count-ten", "role-option-unknown", "unknown-role"):
        bad = yaml.safe_load((BAD / f"{case}.yaml").read_text())
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(bad)

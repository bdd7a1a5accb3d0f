"""What ops/handoff.py decides before a LabView is drawn: the replication a
lab file declares (inventory --declared, graph --declared), and which graph
format an output name asks for."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.errors import SpecError
from labctl.ops.handoff import declared_mysql, graph_format

from ..labs import topology


def test_declared_roles_and_links_of_a_chain() -> None:
    roles, links = declared_mysql(topology("mysql-pair", replicas=2, chain=True))
    assert roles == {"primary": "primary", "replica1": "dual", "replica2": "replica"}
    assert [(x.source, x.target, x.label) for x in links] == [
        ("primary", "replica1", "declared"),
        ("replica1", "replica2", "declared"),
    ]
    assert declared_mysql(topology("nodes", count=2)) == ({}, [])


@pytest.mark.parametrize(
    ("fmt", "output", "chosen"),
    [
        (None, None, "mermaid"),
        (None, "lab.svg", "svg"),
        (None, "lab.HTML", "html"),
        (None, "lab.gv", "dot"),
        ("dot", "lab.svg", "dot"),  # --format wins
    ],
)
def test_graph_format_from_the_output_name(fmt, output, chosen) -> None:
    assert graph_format(fmt, Path(output) if output else None) == chosen


@pytest.mark.parametrize(("fmt", "output"), [("png", None), (None, "lab.png")])
def test_unknown_graph_format_is_bad_usage(fmt, output) -> None:
    with pytest.raises(SpecError):
        graph_format(fmt, Path(output) if output else None)

"""A picture of a lab: its machines on their private network, replication
(source -> replica, with lag) and Jenkins (controller -> agent, online or
not), containerd's task counts.

Mermaid and Graphviz's DOT are text; SVG comes from Graphviz's `dot` where
it is installed, else from a small layout of labctl's own (columns by depth
along the links); HTML is one self-contained page around that SVG. Both SVGs
mark each machine and each link the way Graphviz does (a <g class="node"> or
"edge" with a <title>), so a reader finds them the same way in either."""

from __future__ import annotations

import html
from collections.abc import Callable

from labctl.handoff.view import LabView, Link, MachineView

FORMATS = ("mermaid", "dot", "svg", "html")
OK_COLOUR, BAD_COLOUR, JENKINS_COLOUR = "#2e8b57", "#c0392b", "#2c6fbb"


def _facts(view: LabView, m: MachineView) -> list[str]:
    """The lines under a machine's name."""
    lines = [m.ip]
    roles = [r for r in m.roles if not r.startswith("mysql-") and r != "containerd"]
    if m.mysql_role:
        lines.append(f"mysql {m.mysql_role}")
    if "containerd" in m.roles:
        tasks = "" if m.tasks is None else f": {m.tasks} task{'' if m.tasks == 1 else 's'}"
        lines.append(f"containerd{tasks}")
    lines += roles
    if m.state != "running":
        lines.append(m.state.replace("_", " "))
    return lines


def _network(view: LabView) -> str:
    return f"private network {view.subnet}.0/24"


def _title(view: LabView) -> str:
    how = "live" if view.live else "declared"
    return f"lab {view.lab} ({view.provider}, {how})"


def _colour(link: Link) -> str:
    if not link.ok:
        return BAD_COLOUR
    return OK_COLOUR if link.kind == "replication" else JENKINS_COLOUR


# ---------------------------------------------------------------- mermaid


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def mermaid(view: LabView) -> str:
    ids = {m.name: f"m{i}" for i, m in enumerate(view.machines)}
    lines = [
        "---",
        f"title: {_title(view)}",
        "---",
        "flowchart LR",
        f'  subgraph net["{_mermaid_text(_network(view))}"]',
    ]
    for m in view.machines:
        label = "<br/>".join([f"<b>{m.name}</b>", *_facts(view, m)])
        lines.append(f'    {ids[m.name]}["{_mermaid_text(label)}"]')
    lines.append("  end")
    for link in view.links:
        arrow = "-->" if link.ok else "-.->"
        lines.append(
            f'  {ids[link.source]} {arrow}|"{_mermaid_text(link.label)}"| {ids[link.target]}'
        )
    down = [ids[m.name] for m in view.machines if m.state != "running"]
    if down:
        lines.append("  classDef down stroke-dasharray: 5 5,color:#888")
        lines.append(f"  class {','.join(down)} down")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- dot


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot(view: LabView) -> str:
    lines = [
        f"digraph {_dot_text(view.lab)} {{",
        f"  graph [rankdir=LR, fontname=Helvetica, labelloc=t, label={_dot_text(_title(view))}];",
        '  node [shape=box, style="rounded,filled", fillcolor="#eef4fb", fontname=Helvetica];',
        "  edge [fontname=Helvetica, fontsize=10];",
        "  subgraph cluster_net {",
        f'    label={_dot_text(_network(view))}; style="rounded,dashed"; color="#999999";',
    ]
    for m in view.machines:
        style = (
            ""
            if m.state == "running"
            else ', style="rounded,dashed", fillcolor="#f2f2f2", fontcolor="#777777"'
        )
        label = "\n".join([m.name, *_facts(view, m)])
        lines.append(f"    {_dot_text(m.name)} [label={_dot_text(label)}{style}];")
    lines.append("  }")
    for link in view.links:
        style = "" if link.ok else ", style=dashed"
        lines.append(
            f"  {_dot_text(link.source)} -> {_dot_text(link.target)} "
            f"[label={_dot_text(link.label)}, color={_dot_text(_colour(link))}{style}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- svg

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN, HEAD = 210, 92, 120, 36, 30, 70
Runner = Callable[[list[str], str], str | None]


def _depths(view: LabView) -> dict[str, int]:
    """Column of each machine: the longest chain of links leading to it."""
    depth = {m.name: 0 for m in view.machines}
    for _ in view.machines:  # relax at most once per machine: cycles cannot loop
        changed = False
        for link in view.links:
            if depth[link.target] < depth[link.source] + 1 <= len(view.machines):
                depth[link.target] = depth[link.source] + 1
                changed = True
        if not changed:
            break
    return depth


def own_svg(view: LabView) -> str:
    """labctl's own layout, for a host without Graphviz."""
    depth = _depths(view)
    columns: dict[int, list[MachineView]] = {}
    for m in view.machines:
        columns.setdefault(depth[m.name], []).append(m)
    where = {
        m.name: (MARGIN + 10 + col * (BOX_W + GAP_X), HEAD + 10 + row * (BOX_H + GAP_Y))
        for col, members in columns.items()
        for row, m in enumerate(members)
    }
    width = MARGIN * 2 + 20 + len(columns) * BOX_W + (len(columns) - 1) * GAP_X
    tallest = max((len(c) for c in columns.values()), default=1)
    height = HEAD + 20 + tallest * BOX_H + (tallest - 1) * GAP_Y + MARGIN
    e = html.escape
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif">',
        f"<title>{e(_title(view))}</title>",
        "<defs>",
        *(
            f'<marker id="arrow{i}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
            f'markerHeight="8" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{c}"/></marker>'
            for i, c in enumerate((OK_COLOUR, BAD_COLOUR, JENKINS_COLOUR))
        ),
        "</defs>",
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width // 2}" y="24" text-anchor="middle" font-size="16">{e(_title(view))}</text>',
        f'<g class="cluster"><title>{e(_network(view))}</title>'
        f'<rect x="{MARGIN}" y="{HEAD - 30}" width="{width - 2 * MARGIN}" '
        f'height="{height - HEAD + 30 - MARGIN + 10}" rx="10" fill="none" stroke="#999" '
        f'stroke-dasharray="6 4"/>'
        f'<text x="{MARGIN + 10}" y="{HEAD - 12}" font-size="12" fill="#666">'
        f"{e(_network(view))}</text></g>",
    ]
    for link in view.links:
        (x1, y1), (x2, y2) = where[link.source], where[link.target]
        sx, sy, tx, ty = x1 + BOX_W, y1 + BOX_H // 2, x2, y2 + BOX_H // 2
        if x2 <= x1:  # same column (a cycle): from the bottom to the top
            sx, sy, tx, ty = x1 + BOX_W // 2, y1 + BOX_H, x2 + BOX_W // 2, y2
        colour = _colour(link)
        marker = (OK_COLOUR, BAD_COLOUR, JENKINS_COLOUR).index(colour)
        dash = "" if link.ok else ' stroke-dasharray="5 4"'
        out.append(
            f'<g class="edge"><title>{e(link.source)}-&gt;{e(link.target)}</title>'
            f'<line x1="{sx}" y1="{sy}" x2="{tx}" y2="{ty}" stroke="{colour}" stroke-width="2"'
            f'{dash} marker-end="url(#arrow{marker})"/>'
            f'<text x="{(sx + tx) // 2}" y="{(sy + ty) // 2 - 6}" text-anchor="middle" '
            f'font-size="11" fill="{colour}" stroke="white" stroke-width="3" '
            f'paint-order="stroke">{e(link.label)}</text></g>'
        )
    for m in view.machines:
        x, y = where[m.name]
        running = m.state == "running"
        fill, ink = ("#eef4fb", "#222") if running else ("#f2f2f2", "#777")
        dash = "" if running else ' stroke-dasharray="5 4"'
        out.append(
            f'<g class="node"><title>{e(m.name)}</title>'
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{fill}" '
            f'stroke="#4a6fa5"{dash}/>'
            f'<text x="{x + BOX_W // 2}" y="{y + 20}" text-anchor="middle" font-size="14" '
            f'font-weight="bold" fill="{ink}">{e(m.name)}</text>'
        )
        for i, fact in enumerate(_facts(view, m)[:4]):
            out.append(
                f'<text x="{x + BOX_W // 2}" y="{y + 38 + i * 15}" text-anchor="middle" '
                f'font-size="11" fill="{ink}">{e(fact)}</text>'
            )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def svg(view: LabView, graphviz: Runner | None = None) -> str:
    """Graphviz's drawing when `graphviz(argv, dot_text)` gives one, else labctl's."""
    drawn = graphviz(["dot", "-Tsvg"], dot(view)) if graphviz else None
    return drawn if drawn else own_svg(view)


def _inline(svg_text: str) -> str:
    """An SVG document as an element of an HTML page (no XML prolog or doctype)."""
    start = svg_text.find("<svg")
    return svg_text[start:] if start >= 0 else svg_text


def page(view: LabView, svg_text: str) -> str:
    """One self-contained HTML file: the picture, and the machines as a table."""
    e = html.escape
    rows = "\n".join(
        "<tr>"
        + "".join(
            f"<td>{e(str(v))}</td>"
            for v in (
                m.name,
                m.hostname,
                m.ip,
                ", ".join(m.roles) or "-",
                m.mysql_role or "-",
                "-" if m.tasks is None else m.tasks,
                m.state,
            )
        )
        + "</tr>"
        for m in view.machines
    )
    links = "\n".join(
        f"<li>{e(x.source)} &rarr; {e(x.target)}: {e(x.kind)}, {e(x.label)}</li>"
        for x in view.links
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{e(_title(view))}</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 2em; color: #222; }}
figure {{ margin: 0 0 2em 0; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: left; }}
th {{ background: #f4f4f4; }}
</style>
</head>
<body>
<h1>{e(_title(view))}</h1>
<figure id="graph">
{_inline(svg_text)}
</figure>
<h2>Machines</h2>
<table>
<tr><th>machine</th><th>hostname</th><th>address</th><th>roles</th><th>mysql</th><th>tasks</th><th>state</th></tr>
{rows}
</table>
<h2>Links</h2>
<ul>
{links or "<li>none</li>"}
</ul>
</body>
</html>
"""

"""A provider's knowledge lives in its module of labctl/providers/: no other
module of labctl, and no template but the providers' own partials, compares
a provider's name (==, !=, in, not in, match against the name as a literal)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from labctl import providers

ROOT = Path(__file__).resolve().parents[3]
NAMES = set(providers.PROVIDERS)


def _named(node: ast.AST) -> bool:
    """A literal that is a provider's name, or a tuple/list/set/dict of them."""
    if isinstance(node, ast.Constant):
        return node.value in NAMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_named(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return any(k is not None and _named(k) for k in node.keys)
    return False


def comparisons(source: str) -> list[int]:
    """Lines of `source` comparing something with a provider's name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_named(o) for o in operands):
                found.append(node.lineno)
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Dict):
            if _named(node.value):  # {"docker": ...}[provider]
                found.append(node.lineno)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and _named(node.func.value)  # {"docker": ...}.get(provider)
        ):
            found.append(node.lineno)
        elif isinstance(node, ast.match_case) and any(
            _named(n) for n in ast.walk(node.pattern) if isinstance(n, ast.Constant)
        ):
            found.append(node.pattern.lineno)
    return found


_JINJA = re.compile(r"\{%-?\s*(?:if|elif)\b(?P<test>.*?)-?%\}", re.S)


def template_comparisons(text: str) -> list[int]:
    """Lines of a Jinja template whose `if` tests a provider's name."""
    names = "|".join(sorted(NAMES))
    named = re.compile(
        rf"""(==|!=|\bin\b)\s*["']({names})["']|["']({names})["']\s*(==|!=|\bin\b)"""
    )
    return [
        text.count("\n", 0, m.start()) + 1
        for m in _JINJA.finditer(text)
        if named.search(m.group("test"))
    ]


def outside_providers() -> dict[str, list[int]]:
    found = {}
    scans = (
        (ROOT / "labctl", "*.py", comparisons),
        (ROOT / "templates", "*.j2", template_comparisons),
    )
    for top, pattern, scan in scans:
        for path in sorted(top.rglob(pattern)):
            if path.relative_to(top).parts[0] == "providers":
                continue
            if lines := scan(path.read_text()):
                found[path.relative_to(ROOT).as_posix()] = lines
    return found


def test_no_module_outside_providers_compares_a_providers_name() -> None:
    assert outside_providers() == {}


def test_the_scan_finds_each_kind_of_comparison() -> None:
    """The scan is shown to find what it looks for (it would pass on nothing)."""
    code = """
if spec.provider == "docker": pass
if "libvirt" != p: pass
x = provider in ("virtualbox", "other")
y = provider not in ["docker"]
z = {"docker": 1, "libvirt": 2}.get(provider, 3)
w = {"docker": 1}[provider]
match provider:
    case "libvirt":
        pass
ok = provider == "dockerish" or name == PROVIDER
"""
    assert comparisons(code) == [2, 3, 4, 5, 6, 7, 9]
    template = (
        "{% if spec.provider != \"docker\" %}\nx\n{% elif spec.provider == 'libvirt' %}\n"
        '{% endif %}\n{{ spec.provider | ruby }}\n{% if p in "virtualboxes" %}{% endif %}\n'
    )
    assert template_comparisons(template) == [1, 3]

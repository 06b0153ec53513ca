"""Dict literals in the program's source name each key once: Python keeps the last of a repeated key without a
word, so the first (and the comment beside it) silently says something the program does not do."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("components", "config", "providers", "policy", "tools")


def repeated_keys(source: str, filename: str) -> list[tuple[int, object]]:
    """(line, key) of every constant key a dict literal names more than once."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
            found += [(node.lineno, key) for key in dict.fromkeys(keys) if keys.count(key) > 1]
    return found


def test_no_dict_literal_repeats_a_key():
    paths = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))] + [ROOT / "__main__.py"]
    assert len(paths) > 50, "the scan sees the program"
    repeated = {str(p.relative_to(ROOT)): found for p in paths if (found := repeated_keys(p.read_text(), str(p)))}
    assert repeated == {}


def test_the_scan_sees_a_repeated_key():
    assert repeated_keys('x = {"a": 1, "b": 2, "a": 3}', "x.py") == [(1, "a")]
    assert repeated_keys('x = {"a": 1, **y, "b": 2}', "x.py") == []

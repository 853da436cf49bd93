"""The codebase stays legible (docs/architecture.md): short functions, and
what differs between token levels asked of the tokenizer classes."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "textgen"


def _functions():
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield path.relative_to(PACKAGE.parent), node


def test_no_function_is_longer_than_100_lines():
    long = [
        f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})"
        for path, node in _functions()
        if node.end_lineno - node.lineno + 1 > 100
    ]
    assert not long, long


def test_no_level_name_is_compared_outside_tokens_py():
    compared = re.compile(r"""(==|!=|\bin)\s*\(?\s*["'](word|char)["']""")
    found = [
        f"{path}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "tokens.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if compared.search(line)
    ]
    assert not found, found

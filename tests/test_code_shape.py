"""The size of what a reader must hold at once (issue #14, STYLE.md part C).

Modules of about 400 lines, none far past it; functions that read top to bottom (none near
100 lines); no function with a cyclomatic complexity of 25 or more. Complexity is counted the way
radon/McCabe count it: one, plus one per branch point (``if``/``elif``, a conditional
expression, a loop and its ``else``, each ``except``, each extra operand of ``and``/``or``,
each ``for``/``if`` inside a comprehension, each ``case``, an ``assert``). A nested function
is measured on its own.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pipeline"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80
MAX_COMPLEXITY = 24  # under 25

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda


def complexity(function: FunctionNode) -> int:
    """Cyclomatic complexity of one function body, nested functions excluded."""
    score = 1
    stack: list[ast.AST] = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, (ast.If, ast.IfExp, ast.Assert)):
            score += 1
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            score += 1 + bool(node.orelse)
        elif isinstance(node, ast.Try):
            score += len(node.handlers) + bool(node.orelse)
        elif isinstance(node, ast.BoolOp):
            score += len(node.values) - 1
        elif isinstance(node, ast.comprehension):
            score += 1 + len(node.ifs)
        elif isinstance(node, ast.match_case):
            score += 1
        stack.extend(ast.iter_child_nodes(node))
    return score


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _sources() -> list[tuple[str, str]]:
    return [(str(p.relative_to(PACKAGE.parent)), p.read_text(encoding="utf-8"))
            for p in sorted(PACKAGE.rglob("*.py"))]


SOURCES = _sources()


def test_modules_are_of_a_size_a_reader_can_hold() -> None:
    too_long = {name: text.count("\n") for name, text in SOURCES
                if text.count("\n") > MAX_MODULE_LINES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"


def test_functions_read_top_to_bottom() -> None:
    too_long = {f"{name}:{fn.name}": (fn.end_lineno or fn.lineno) - fn.lineno + 1
                for name, text in SOURCES for fn in _functions(ast.parse(text))
                if (fn.end_lineno or fn.lineno) - fn.lineno + 1 > MAX_FUNCTION_LINES}
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"


def test_no_function_is_too_complex() -> None:
    tangled = {f"{name}:{fn.name}": complexity(fn)
               for name, text in SOURCES for fn in _functions(ast.parse(text))
               if complexity(fn) > MAX_COMPLEXITY}
    assert not tangled, f"functions with cyclomatic complexity over {MAX_COMPLEXITY}: {tangled}"


@pytest.mark.parametrize(("source", "expected"), [
    ("def f(x):\n    return x\n", 1),
    ("def f(x):\n    if x and x > 1 or x < -1:\n        return 1\n    elif x:\n        return 2\n"
     "    return 3\n", 5),
    ("def f(xs):\n    for x in xs:\n        pass\n    else:\n        pass\n"
     "    try:\n        pass\n    except ValueError:\n        pass\n    except OSError:\n"
     "        pass\n    return [y for y in xs if y] or (1 if xs else 2)\n", 9),
    ("def f(x):\n    def g(y):\n        if y:\n            return 1\n        return 2\n"
     "    return g(x)\n", 1),
])
def test_complexity_counts_branch_points(source: str, expected: int) -> None:
    function = next(_functions(ast.parse(source)))
    assert complexity(function) == expected

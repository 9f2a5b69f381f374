"""pyflakes over the project's code, for the mistakes that only show when a line runs: a name
used before it is bound in its function (an import shadowed by a later local, as a benchmark's
loop variable once hid ``bench.settings.number`` and the benchmark could not run), an undefined
name, a duplicate argument. Style findings (unused imports) are not checked."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pyflakes import checker, messages

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("engine", "scenes", "bench", "tests")
ERRORS = (messages.UndefinedName, messages.UndefinedLocal, messages.UndefinedExport,
          messages.DuplicateArgument, messages.ReturnOutsideFunction, messages.YieldOutsideFunction,
          messages.ContinueOutsideLoop, messages.BreakOutsideLoop, messages.TooManyExpressionsInStarredAssignment,
          messages.TwoStarredExpressions, messages.PercentFormatMissingArgument,
          messages.StringDotFormatMissingArgument, messages.ForwardAnnotationSyntaxError)


def _sources() -> list[Path]:
    return sorted(path for folder in FOLDERS for path in (ROOT / folder).rglob("*.py"))


def test_the_check_finds_a_shadowed_import() -> None:
    source = "from os import sep\n\ndef f():\n    print(sep)\n    for sep in 'ab':\n        pass\n"
    found = checker.Checker(ast.parse(source), "example.py").messages
    assert any(isinstance(message, messages.UndefinedLocal) for message in found)


@pytest.mark.parametrize("path", _sources(), ids=lambda path: str(path.relative_to(ROOT)))
def test_no_name_is_used_unbound(path: Path) -> None:
    found = checker.Checker(ast.parse(path.read_text(encoding="utf-8"), str(path)), str(path)).messages
    errors = [f"{path.relative_to(ROOT)}:{message.lineno}: {message.message % message.message_args}"
              for message in found if isinstance(message, ERRORS)]
    assert not errors, "\n".join(errors)

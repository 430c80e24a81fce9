"""The examples in the README and in module docstrings are executed, so docs and code agree."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

import seedmmo.core.stat7

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_markdown_examples_run(path: Path) -> None:
    result = doctest.testfile(str(path), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    if ">>> " in path.read_text():  # a page with examples must have had them run
        assert result.attempted > 0


@pytest.mark.parametrize("module", [seedmmo.core.stat7])
def test_docstring_examples_run(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.failed == 0
    assert result.attempted > 0

"""Every loader of a YAML file a person wrote tells a syntax error by line and column in the named file, with the
offending line and a caret, not PyYAML's `in "<unicode string>"`."""

from __future__ import annotations

from pathlib import Path

import pytest

BROKEN = "as_of: 2026-12-01\nbaseline:\n  instance: [c7i.large\n  hours: 730\n"  # an unclosed flow sequence


def _pricing(path: Path) -> None:
    from costing.pricing import load_pricing

    load_pricing(path)


def _training(path: Path) -> None:
    from models.student.config import load_train_config

    load_train_config(path)


def _template(path: Path) -> None:
    from cloud.stackops import load_template

    load_template(path)


@pytest.mark.parametrize("load", [_pricing, _training, _template], ids=["price file", "training config", "template"])
def test_a_syntax_error_names_the_file_the_line_and_the_column(load, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    with pytest.raises(Exception) as caught:
        load(path)
    message = str(caught.value)
    assert str(path) in message
    assert "line 4, column 8" in message and "from line 3, column 13" in message  # the ':' where ']' was due
    assert "<unicode string>" not in message
    assert "hours: 730" in message and "^" in message  # the offending line, and a caret under the column

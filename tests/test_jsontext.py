"""JSON parsed without letting its nesting crash the process."""

from __future__ import annotations

import pytest

from revoker.jsontext import MAX_DEPTH, NestedTooDeep, deep_line, loads


def test_json_nested_100000_deep_is_a_value_error_not_a_recursion_error() -> None:
    with pytest.raises(NestedTooDeep, match="nested too deep"):
        loads("[" * 100_000 + "]" * 100_000)
    assert issubclass(NestedTooDeep, ValueError)  # every malformed-input handler catches it


def test_the_line_named_is_where_the_nesting_passes_the_limit_brackets_in_strings_aside() -> None:
    text = '{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}\n[\n' + "[" * (MAX_DEPTH + 1)
    assert deep_line(text) == 3


def test_ordinary_json_parses_as_json_does() -> None:
    assert loads(b'{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}

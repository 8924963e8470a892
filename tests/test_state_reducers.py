"""The reducers that merge parallel step updates, tested alone."""

from __future__ import annotations

import pytest

from orchestrator.graph.state import merge_columns, merge_errors


def test_merge_columns_unions_disjoint_updates():
    assert merge_columns({"a.x": [1]}, {"b.y": [2]}) == {"a.x": [1], "b.y": [2]}
    assert merge_columns(None, {"a.x": [1]}) == {"a.x": [1]}


def test_merge_columns_rejects_a_column_written_twice():
    with pytest.raises(ValueError, match="written twice"):
        merge_columns({"a.x": [1]}, {"a.x": [2]})


def test_merge_columns_accepts_the_same_column_object_again():
    column = [1, 2]
    assert merge_columns({"a.x": column}, {"a.x": column}) == {"a.x": column}


def test_merge_errors_keeps_the_first_error_per_row():
    assert merge_errors({1: "first"}, {1: "second", 2: "other"}) == {1: "first", 2: "other"}
    assert merge_errors(None, None) == {}

"""The reference model itself."""

from __future__ import annotations

import math

import pytest
from vpa.models import Record
from vpa_conformance.oracle import Oracle, cosine, same_metadata, same_value


def test_cosine():
    assert cosine([1, 0], [2, 0]) == pytest.approx(1.0)
    assert cosine([1, 0], [0, 3]) == pytest.approx(0.0)
    assert cosine([1, 1], [-1, -1]) == pytest.approx(-1.0)
    assert cosine([1e-3, 0], [1e3, 1e3]) == pytest.approx(math.sqrt(0.5))


def test_same_value_is_type_strict():
    assert same_value(1, 1) and not same_value(1, 1.0) and not same_value(True, 1)
    assert (
        same_value(["a", "b"], ["a", "b"])
        and not same_value(["a"], ("a",))
        and not same_value(["b", "a"], ["a", "b"])
    )
    assert same_value(-0.0, 0.0) and not same_value("1", 1)
    assert same_metadata({"a": [], "b": 2.0}, {"b": 2.0, "a": []}) and not same_metadata({"a": 1}, {})


def test_oracle_semantics():
    oracle = Oracle(2)
    assert (
        oracle.upsert(
            [
                Record("a", [1, 0], "1", {"n": 1}),
                Record("b", [0, 1], "", {}),
                Record("a", [1, 1], "2", {"n": 2}),
            ]
        )
        == 2
    )
    assert oracle.records["a"].text == "2"
    assert [r.id for r in oracle.get(["b", "zz", "a", "b"])] == ["b", "a"]
    assert oracle.count({"n": {"$ne": 1}}) == 2
    assert [i for i, _ in oracle.top_k([1, 0], 5)] == ["a", "b"]
    assert oracle.top_k([1, 0], 1, {"n": {"$exists": True}} if False else {"n": 2})[0][0] == "a"
    assert oracle.delete(ids=["a", "b"], filter={"n": 2}) == 1
    assert list(oracle.records) == ["b"]
    assert oracle.delete(filter={"n": {"$nin": [5]}}) == 1 and oracle.count() == 0

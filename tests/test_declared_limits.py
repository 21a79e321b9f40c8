"""Every input has a declared bound, enforced before any I/O: filter terms and depth (one ceiling on
every surface, and each store's own), metadata keys and bytes per record (issue #13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vpa.errors import LimitExceeded, ValidationError
from vpa.filters import (
    MAX_FILTER_DEPTH,
    MAX_FILTER_TERMS,
    And,
    Comparison,
    FilterSize,
    Not,
    Or,
    check_filter_size,
    filter_size,
    parse_filter,
)
from vpa.models import FilterOp, Record, StoreCapabilities
from vpa.stores.memory import MemoryStore
from vpa.validation import check_records, metadata_bytes

VPA = str(Path(sys.executable).parent / "vpa")


def nested(depth: int, kind: str = "$not") -> dict:
    """A filter ``depth`` levels deep: ``$not``s (or one-child ``$or``s) around one comparison."""
    spec: dict = {"a": 1}
    for _ in range(depth - 1):
        spec = {"$not": spec} if kind == "$not" else {"$or": [spec]}
    return spec


class Untouchable(list):
    """A list whose items may not be looked at: a bound must be decided from its length alone."""

    def __iter__(self):
        raise AssertionError("the parser iterated a list it should have refused by its length")

    def __getitem__(self, index):
        raise AssertionError("the parser read an item of a list it should have refused by its length")


# --- the filter language's own ceilings --------------------------------------------------------


@pytest.mark.parametrize("depth", [33, 500, 10_000])
@pytest.mark.parametrize("kind", ["$not", "$or"])
def test_a_deep_filter_is_a_typed_error_not_a_recursion_error(depth, kind):
    with pytest.raises(LimitExceeded) as caught:
        parse_filter(nested(depth, kind))
    assert caught.value.limit == "max_filter_depth" and caught.value.maximum == MAX_FILTER_DEPTH
    assert isinstance(caught.value, ValidationError) and caught.value.code == "limit_exceeded"


def test_a_deep_tree_built_in_python_is_refused_without_recursion():
    node = Comparison("a", FilterOp.EQ, 1)
    for _ in range(100_000):
        node = Not(node)
    with pytest.raises(LimitExceeded, match="max_filter_depth"):
        parse_filter(node)
    assert filter_size(node) == FilterSize(terms=1, depth=100_001)  # measured without recursion


def test_the_ceilings_themselves_are_accepted():
    assert filter_size(parse_filter(nested(MAX_FILTER_DEPTH))).depth == MAX_FILTER_DEPTH
    wide = {"a": {"$in": list(range(MAX_FILTER_TERMS))}}
    assert filter_size(parse_filter(wide)).terms == MAX_FILTER_TERMS
    with pytest.raises(LimitExceeded, match="max_filter_terms: 4097 > 4096"):
        parse_filter({"a": {"$in": list(range(MAX_FILTER_TERMS + 1))}})


def test_a_wide_filter_is_refused_from_its_length_before_any_item_is_read():
    huge_in = {"a": {"$in": Untouchable(range(200_000))}}
    with pytest.raises(LimitExceeded) as caught:
        parse_filter(huge_in)
    assert (caught.value.limit, caught.value.value) == ("max_filter_terms", 200_000)
    with pytest.raises(LimitExceeded, match="max_filter_terms"):
        parse_filter({"$or": Untouchable([{"a": i} for i in range(50_000)])})


def test_a_bound_can_only_lower_the_ceiling():
    spec = {"$or": [{"a": i} for i in range(300)]}
    with pytest.raises(LimitExceeded, match="max_filter_terms: 300 > 200"):  # refused from the length
        parse_filter(spec, max_terms=200)
    assert filter_size(parse_filter(spec, max_terms=10**9)).terms == 300
    with pytest.raises(LimitExceeded, match="max_filter_depth"):
        parse_filter(nested(33), max_depth=10**9)
    with pytest.raises(LimitExceeded, match="max_filter_depth: 4 > 3"):
        parse_filter(nested(4), max_depth=3)


@pytest.mark.parametrize(
    ("spec", "terms", "depth"),
    [
        ({"a": 1}, 1, 1),
        ({"a": {"$in": [1, 2, 3]}}, 3, 1),
        ({"a": {"$nin": ["x", "y"]}, "b": 2}, 3, 2),  # several keys: an implicit $and
        ({"a": {"$gt": 1, "$lt": 5}}, 2, 2),  # several operators on one field: an implicit $and
        ({"$or": [{"a": 1}, {"$not": {"b": {"$in": [1, 2]}}}]}, 3, 3),
        ({"$and": [{"a": 1}]}, 1, 2),
    ],
)
def test_terms_and_depth_are_counted_as_documented(spec, terms, depth):
    assert filter_size(parse_filter(spec)) == FilterSize(terms=terms, depth=depth)
    node = parse_filter(spec)
    check_filter_size(node, max_terms=terms, max_depth=depth)  # exactly at both bounds: accepted
    if terms > 1:
        with pytest.raises(LimitExceeded, match="max_filter_terms"):
            check_filter_size(node, max_terms=terms - 1)
        with pytest.raises(LimitExceeded, match="max_filter_terms"):
            parse_filter(spec, max_terms=terms - 1)
    if depth > 1:
        with pytest.raises(LimitExceeded, match="max_filter_depth"):
            check_filter_size(node, max_depth=depth - 1)
        with pytest.raises(LimitExceeded, match="max_filter_depth"):
            parse_filter(spec, max_depth=depth - 1)


def test_a_tenant_scope_adds_one_level_and_one_term():
    # What the RAG layer sends for a tenant: And(tenant, user filter). A user filter at a store's
    # bounds is one term and one level over them once scoped.
    user = parse_filter(nested(31))
    scoped = And((Comparison("vpa_tenant", FilterOp.EQ, "t"), user))
    assert filter_size(scoped) == FilterSize(terms=filter_size(user).terms + 1, depth=32)
    assert filter_size(Or((scoped,))).depth == 33


# --- metadata per record -------------------------------------------------------------------------


_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
_VALUES = st.one_of(
    _TEXT,
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(_TEXT, max_size=6),
)
_KEYS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,63}", fullmatch=True)


@given(metadata=st.dictionaries(_KEYS, _VALUES, max_size=8))
def test_the_cheap_metadata_bound_is_never_below_the_exact_size(metadata):
    # check_records JSON-encodes metadata only when its cheap bound is over the limit: a bound
    # below the exact size would let oversized metadata through.
    from vpa.validation import _check_metadata

    assert metadata_bytes(metadata) <= _check_metadata(metadata, None, set())
    exact = metadata_bytes(metadata)
    assert check_records([Record("r", [1.0, 0.0], "", metadata)], 2, max_metadata_bytes=exact)
    with pytest.raises(LimitExceeded, match="max_metadata_bytes"):
        check_records([Record("r", [1.0, 0.0], "", metadata)], 2, max_metadata_bytes=exact - 1)


def test_metadata_keys_are_bounded_and_counted_first():
    record = Record("many", [1.0, 0.0], "", {f"k{i}": i for i in range(6000)})
    with pytest.raises(LimitExceeded) as caught:
        check_records([Record("ok", [0.0, 1.0]), record], 2, max_metadata_keys=256)
    assert (caught.value.limit, caught.value.value, caught.value.maximum) == ("max_metadata_keys", 6000, 256)
    assert "'many'" in str(caught.value)
    assert check_records([record], 2)  # no bound given: none applies


# --- stores: their declared bounds, before any I/O -------------------------------------------------


class CountingMemoryStore(MemoryStore):
    """The memory store, counting the calls that reach its backend methods."""

    capabilities = StoreCapabilities(
        exact=True, max_filter_terms=100, max_filter_depth=6, max_metadata_keys=20, max_metadata_bytes=2000
    )

    def __init__(self) -> None:
        super().__init__()
        self.backend_calls: list[str] = []

    async def _count(self, info, node):
        self.backend_calls.append("_count")
        return await super()._count(info, node)

    async def _query(self, info, vector, top_k, node):
        self.backend_calls.append("_query")
        return await super()._query(info, vector, top_k, node)

    async def _delete(self, info, ids, node):
        self.backend_calls.append("_delete")
        return await super()._delete(info, ids, node)

    async def _upsert(self, info, records):
        self.backend_calls.append("_upsert")
        await super()._upsert(info, records)


async def test_a_store_refuses_past_its_declared_bounds_before_any_io():
    store = CountingMemoryStore()
    await store.create_collection("c", 2)
    await store.upsert("c", [Record("a", [1.0, 0.0], "", {"k": 1})])
    store.backend_calls.clear()
    refused = {
        "max_filter_terms": {"k": {"$in": list(range(101))}},
        "max_filter_depth": nested(7),
    }
    for limit, spec in refused.items():
        for call in (
            lambda spec=spec: store.count("c", spec),
            lambda spec=spec: store.query("c", [1.0, 0.0], 3, spec),
            lambda spec=spec: store.delete("c", filter=spec),
            lambda spec=spec: store.delete("c", ids=["a"], filter=spec),
        ):
            with pytest.raises(LimitExceeded) as caught:
                await call()
            assert caught.value.limit == limit and "CountingMemoryStore" in str(caught.value)
    for limit, metadata in (
        ("max_metadata_keys", {f"k{i}": i for i in range(21)}),
        ("max_metadata_bytes", {"s": "x" * 2000}),
    ):
        with pytest.raises(LimitExceeded, match=limit):
            await store.upsert("c", [Record("b", [0.0, 1.0], "", {}), Record("c", [1.0, 1.0], "", metadata)])
    assert store.backend_calls == []
    assert await store.count("c") == 1
    # at the bounds, everything goes through
    assert await store.count("c", {"k": {"$in": list(range(100))}}) == 1
    assert await store.count("c", nested(6)) == 1  # five $not around {"a": 1}: false, negated
    assert await store.upsert("c", [Record("d", [1.0, 1.0], "", {f"k{i}": i for i in range(20)})]) == 1


async def test_the_memory_store_refuses_a_200k_value_in_at_once():
    store = MemoryStore()
    await store.create_collection("c", 2)
    await store.upsert("c", [Record(f"r{i}", [1.0, float(i)], "", {"n": i}) for i in range(50)])
    for call in (
        lambda spec: store.count("c", spec),
        lambda spec: store.query("c", [1.0, 0.0], 5, spec),
    ):
        with pytest.raises(LimitExceeded) as caught:
            await call({"n": {"$in": Untouchable(range(200_000))}})  # refused by its length alone
        assert caught.value.limit == "max_filter_terms" and caught.value.value == 200_000
    assert await store.count("c", {"n": {"$in": list(range(1024))}}) == 50  # the declared maximum


async def test_a_search_with_a_filter_past_the_bounds_is_a_typed_error(config):
    from vpa.rag import create_enhanced_rag_system

    system = create_enhanced_rag_system(config)
    await system.initialize()
    try:
        await system.add_document("d", "T", "Some text about cats.", {"n": 1}, tenant="t")
        wide_in, wide_or = {"n": {"$in": list(range(5000))}}, {"$or": [{"n": i} for i in range(2000)]}
        for spec in (wide_in, wide_or, nested(500)):
            with pytest.raises(LimitExceeded):
                await system.search_knowledge("u", "cats", filters=spec, tenant="t")
        with pytest.raises(LimitExceeded, match="max_metadata_keys"):
            await system.add_document("big", "T", "Text.", {f"k{i}": i for i in range(6000)}, tenant="t")
        found = await system.search_knowledge("u", "cats", filters={"n": 1}, tenant="t")
        assert [r.document_id for r in found] == ["d"]
    finally:
        await system.shutdown()


# --- the CLI -------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [500, 10_000])
def test_the_cli_refuses_a_deep_filter_with_a_typed_error(tmp_path, depth):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VPA_")},
        "VPA_DATA_DIR": str(tmp_path / "data"),
        "VPA_EMBEDDER": "hashing",
        "VPA_LOG_LEVEL": "WARNING",
    }
    text = '{"$not": ' * (depth - 1) + '{"a": 1}' + "}" * (depth - 1)
    json.loads(text) if depth < 900 else None  # (a JSON reader recurses: 10,000 levels defeat it)
    result = subprocess.run(
        [VPA, "search", "cats", "--filter", text], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 2, result.stderr
    assert "max_filter_depth" in result.stderr and "Traceback" not in result.stderr

"""Contract 1.1 in the core: typed JSON dates, ``$exists`` and null, wide keys, and the base
class's checks of ``scroll`` and ``update`` (the behaviour of stores is the conformance suite's)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from vpa.errors import (
    InvalidCursor,
    InvalidFilter,
    InvalidMetadata,
    LimitExceeded,
    UnsupportedOperation,
    ValidationError,
)
from vpa.filters import Comparison, evaluate, parse_filter, to_dict
from vpa.models import FilterOp, MetadataType, Record, StoreCapabilities
from vpa.stores.memory import MemoryStore
from vpa.typedjson import (
    decode_metadata,
    encode_metadata,
    format_datetime,
    from_micros,
    parse_datetime,
    to_micros,
)
from vpa.validation import check_metadata, check_records, key_problem

UTC = dt.UTC
PARIS = dt.timezone(dt.timedelta(hours=2))


# --- typed JSON --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        dt.datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=PARIS),
        dt.datetime(1700, 1, 1, tzinfo=UTC),
        dt.datetime(2250, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_datetimes_round_trip_exactly(value: dt.datetime) -> None:
    assert from_micros(to_micros(value)) == value
    assert parse_datetime(format_datetime(value)) == value
    assert decode_metadata(encode_metadata({"d": value})) == {"d": value}


def test_typed_json_spells_dates_in_utc() -> None:
    value = dt.datetime(2024, 5, 1, 14, 0, tzinfo=PARIS)
    assert encode_metadata({"d": value, "n": 1}) == {"d": {"$date": "2024-05-01T12:00:00Z"}, "n": 1}


def test_naive_and_out_of_range_datetimes_are_refused_saying_why() -> None:
    with pytest.raises(InvalidMetadata, match="naive"):
        check_metadata({"d": dt.datetime(2024, 5, 1)})
    with pytest.raises(InvalidMetadata, match="portable range"):
        check_metadata({"d": dt.datetime(1500, 1, 1, tzinfo=UTC)})
    with pytest.raises(InvalidFilter, match="naive"):
        parse_filter({"d": {"$gt": dt.datetime(2024, 5, 1)}})
    with pytest.raises(InvalidFilter, match="ISO 8601"):
        parse_filter({"d": {"$date": "yesterday"}})


# --- filters -----------------------------------------------------------------------------------


def test_null_means_absent_and_ne_null_present() -> None:
    assert parse_filter({"k": None}) == Comparison("k", FilterOp.EXISTS, False)
    assert parse_filter({"k": {"$eq": None}}) == Comparison("k", FilterOp.EXISTS, False)
    assert parse_filter({"k": {"$ne": None}}) == Comparison("k", FilterOp.EXISTS, True)
    assert parse_filter({"k": {"$exists": True}}) == Comparison("k", FilterOp.EXISTS, True)
    for metadata, present in (({}, False), ({"k": []}, True), ({"k": False}, True), ({"k": ""}, True)):
        assert evaluate(parse_filter({"k": {"$exists": True}}), metadata) is present
        assert evaluate(parse_filter({"k": None}), metadata) is not present


@pytest.mark.parametrize(
    "spec", [{"k": {"$gt": None}}, {"k": {"$in": [None]}}, {"k": {"$exists": 1}}, {"k": {"$exists": "yes"}}]
)
def test_null_with_other_operators_is_refused(spec: dict) -> None:
    with pytest.raises(InvalidFilter):
        parse_filter(spec)


def test_datetimes_order_and_never_equal_numbers_or_strings() -> None:
    when = dt.datetime(2024, 5, 1, tzinfo=UTC)
    later = {"d": when + dt.timedelta(microseconds=1)}
    assert evaluate(parse_filter({"d": {"$gt": {"$date": "2024-05-01T00:00:00Z"}}}), later)
    assert evaluate(parse_filter({"d": {"$in": [when, later["d"]]}}), later)
    assert not evaluate(parse_filter({"d": {"$gt": 0}}), later)
    assert not evaluate(parse_filter({"d": to_micros(later["d"])}), later)
    assert not evaluate(parse_filter({"d": format_datetime(later["d"])}), later)
    assert not evaluate(parse_filter({"n": {"$lt": when}}), {"n": 5})
    with pytest.raises(InvalidFilter, match="mixes"):
        parse_filter({"d": {"$in": [when, 1]}})


def test_filters_round_trip_through_typed_json() -> None:
    spec = {"$and": [{"d": {"$gte": {"$date": "2024-05-01T00:00:00.5Z"}}}, {"og:title": {"$exists": False}}]}
    tree = parse_filter(spec)
    assert parse_filter(to_dict(tree)) == tree


# --- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["source-url", "og:title", "page.number", "Größe", "a b", "a[0]", "日本", "k" * 128])
def test_wide_keys_are_metadata_keys_in_1_1(key: str) -> None:
    assert key_problem(key) is None
    assert key_problem(key, legacy=True) is not None or key.isidentifier()
    assert evaluate(parse_filter({key: 1}), {key: 1})


@pytest.mark.parametrize("key", ["", "$set", "a\x00b", "k" * 129, "\ud800"])
def test_keys_that_are_never_metadata_keys(key: str) -> None:
    assert key_problem(key) is not None
    with pytest.raises(InvalidFilter):
        parse_filter({key: 1})


def test_none_on_write_means_absent() -> None:
    record = Record("r", [1.0, 0.0], "", {"a": 1, "b": None})
    assert record.metadata == {"a": 1}
    assert check_metadata({"a": None, "b": 2}) == {"b": 2}


def test_a_1_0_store_keeps_1_0_keys_types_and_operators() -> None:
    caps = StoreCapabilities()
    assert caps.contract_version == "1.0" and not caps.contract_1_1
    assert FilterOp.EXISTS not in caps.filter_operators
    assert MetadataType.DATETIME not in caps.metadata_types
    with pytest.raises(InvalidMetadata, match="contract 1.0"):
        check_records([Record("r", [1.0], "", {"og:title": "x"})], 1, legacy_keys=True)


# --- the base class's scroll and update checks -------------------------------------------------


class LegacyStore(MemoryStore):
    capabilities = StoreCapabilities(exact=True, persistent=True)


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


async def _filled(store: MemoryStore, n: int = 30) -> MemoryStore:
    await store.create_collection("c", 2)
    await store.upsert("c", [Record(f"r{i:02d}", [1.0, i + 1.0], f"t{i}", {"n": i}) for i in range(n)])
    return store


def test_scroll_checks_its_arguments_before_any_io() -> None:
    async def scenario() -> None:
        store = await _filled(MemoryStore(None))
        for bad in (0, -1, True, "10"):
            with pytest.raises(ValidationError, match="batch_size"):
                await store.scroll_page("c", batch_size=bad)
        with pytest.raises(LimitExceeded) as raised:
            await store.scroll_page("c", batch_size=store.capabilities.max_page_size + 1)
        assert raised.value.limit == "max_page_size"
        page = await store.scroll_page("c", {"n": {"$gte": 10}}, batch_size=5)
        with pytest.raises(InvalidCursor, match="another"):
            await store.scroll_page("c", {"n": {"$gte": 11}}, cursor=page.cursor)
        for garbage in ("x", "!!!", "W10", ""):
            with pytest.raises(InvalidCursor):
                await store.scroll_page("c", cursor=garbage)
        with pytest.raises(LimitExceeded):
            await store.scroll_page("c", cursor="A" * 5000)

    run(scenario())


def test_scroll_pages_cover_every_match_once_and_resume_from_a_cursor() -> None:
    async def scenario() -> None:
        store = await _filled(MemoryStore(None))
        first = await store.scroll_page("c", {"n": {"$lt": 20}}, batch_size=7)
        assert len(first.records) == 7 and first.cursor
        rest = [r.id async for page in store.scroll("c", {"n": {"$lt": 20}}, batch_size=7, cursor=first.cursor)
                for r in page.records]
        ids = [r.id for r in first.records] + rest
        assert sorted(ids) == [f"r{i:02d}" for i in range(20)]
        bare = await store.scroll_page("c", batch_size=3, with_vectors=False)
        assert all(r.vector.shape == (0,) for r in bare.records)

    run(scenario())


def test_update_checks_its_arguments() -> None:
    async def scenario() -> None:
        store = await _filled(MemoryStore(None))
        with pytest.raises(ValidationError, match="ids or a filter"):
            await store.update("c", set={"a": 1})
        with pytest.raises(ValidationError, match="set or unset"):
            await store.update("c", ids=["r01"])
        with pytest.raises(ValidationError, match="both"):
            await store.update("c", ids=["r01"], set={"a": 1}, unset=["a"])
        with pytest.raises(ValidationError, match="not one string"):
            await store.update("c", ids=["r01"], unset="a")
        with pytest.raises(InvalidMetadata):
            await store.update("c", ids=["r01"], set={"$a": 1})
        with pytest.raises(LimitExceeded):
            await store.update("c", ids=["r01"], set={f"k{i}": i for i in range(300)})
        assert (await store.get("c", ["r01"]))[0].metadata == {"n": 1}
        assert await store.update("c", ids=["r01", "nope"], set={"a": None, "b": 2}) == 1
        assert (await store.get("c", ["r01"]))[0].metadata == {"n": 1, "b": 2}

    run(scenario())


def test_update_keeps_vectors_and_texts_and_survives_a_reopen(tmp_path) -> None:  # noqa: ANN001
    async def scenario() -> None:
        store = await _filled(MemoryStore(tmp_path))
        before = {r.id: r for r in await store.get("c", ["r03", "r04"])}
        when = dt.datetime(2024, 5, 1, 12, 30, 0, 250, tzinfo=UTC)
        assert await store.update("c", filter={"n": {"$in": [3, 4]}}, set={"when": when}, unset=["n"]) == 2
        await store.close()
        again = MemoryStore(tmp_path)
        after = {r.id: r for r in await again.get("c", ["r03", "r04"])}
        for id_, record in after.items():
            assert record.vector.tobytes() == before[id_].vector.tobytes()
            assert record.text == before[id_].text
            assert record.metadata == {"when": when}
        assert await again.count("c", {"when": {"$gte": when}}) == 2
        await again.close()

    run(scenario())


def test_a_1_0_store_refuses_scroll_and_update_by_name() -> None:
    async def scenario() -> None:
        store = await _filled(LegacyStore(None))
        with pytest.raises(UnsupportedOperation, match="contract 1.0"):
            await store.scroll_page("c")
        with pytest.raises(UnsupportedOperation, match="contract 1.0"):
            await store.update("c", ids=["r01"], set={"a": 1})
        with pytest.raises(InvalidFilter, match="contract 1.0"):
            await store.count("c", {"og:title": "x"})

    run(scenario())

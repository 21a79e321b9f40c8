"""The filter translation, checked against the real engine and `vpa.filters.evaluate`.

Every operator on every value type, fractional and integral floats on both sides of zero, lists,
empty lists, missing fields, and every filter negated: the records returned by count, query and
delete must be exactly those the reference evaluator selects.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vpa.filters import And, Comparison, Not, Or, evaluate, parse_filter
from vpa.models import FilterOp, Record
from vpa_chroma.codec import (
    EMPTY_LIST,
    FLOAT,
    FLOAT_PREFIX,
    INT,
    SEQ_KEY,
    TYPE_PREFIX,
    decode_metadata,
    encode_metadata,
    float_key,
    key_float,
)
from vpa_chroma.filters import to_native

VALUES: dict[str, object] = {
    "int1": 1,
    "int2": 2,
    "int0": 0,
    "intm3": -3,
    "intm2": -2,
    "float1": 1.0,
    "float15": 1.5,
    "floatm25": -2.5,
    "floatm3": -3.0,
    "float2": 2.0,
    "big": 2**53,
    "float_big": 2.0**53,
    "third": 1 / 3,
    "tenth": 0.1,
    "next2": 2.0000000000000004,
    "seventeen": 123456789.12345679,
    "subnormal": 5e-324,
    "negzero": -0.0,
    "huge": 1.7976931348623157e308,
    "neghuge": -1e308,
    "true": True,
    "false": False,
    "str1": "1",
    "strx": "x",
    "empty_str": "",
    "unicode": "é漢",
    "list_xy": ["x", "y"],
    "list_1": ["1"],
    "list_empty_str": [""],
    "list_empty": [],
    "date": dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC),
    "date_micro": dt.datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=dt.UTC),
    "date_before_epoch": dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    "date_early": dt.datetime(1700, 1, 1, tzinfo=dt.UTC),
    "date_epoch": dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
}
#: Keys a loader writes (and keys that look like this plugin's or Chroma's own names).
WIDE_KEYS = [
    "source-url", "og:title", "page.number", "Größe", "q\"[x]'", "#id", "chroma:x", "~t:v", "~~", "~f:v",
    "vpa:numeric", "vpa:float:v", "vpa_seq", "~seq", " ",
]
RECORDS = {f"r_{name}": {"v": value, "w": i} for i, (name, value) in enumerate(VALUES.items())}
RECORDS["r_missing"] = {"w": 100}
RECORDS["r_nothing"] = {}
RECORDS["r_other_types"] = {"v": 1, "u": "x"}
for i, key in enumerate(WIDE_KEYS):  # each wide key on two records, of different types
    RECORDS[f"r_wide{i}"] = {key: "x", "w": 200 + i}
    RECORDS[f"r_wide{i}b"] = {key: 1.5, "v": "x", "w": 300 + i}

OPERANDS = [
    1,
    2,
    0,
    -3,
    -2,
    1.0,
    1.5,
    -1.5,
    -2.5,
    2.5,
    -3.5,
    0.5,
    -0.5,
    2.0,
    2**53,
    2**53 - 1,
    True,
    False,
    "1",
    "x",
    "",
    "y",
    "é漢",
    1 / 3,
    0.1,
    0.30000000000000004,
    2.0000000000000004,
    1.9999999999999998,
    123456789.12345679,
    123456789.1234568,
    5e-324,
    0.0,
    -0.0,
    1.7976931348623157e308,
    -1e308,
    1e300,
    2.0**53,
    2.0**53 + 2,
]
LISTS = [
    [1],
    [1, 2],
    [1.5],
    [-2.5, 2.5],
    [1, 1.5],
    [0, -2.5, 2],
    [1.0, 2.0],
    [True],
    [True, False],
    ["x"],
    ["1", "x"],
    [""],
    ["z"],
    [0.1, 1 / 3],
    [2.0000000000000004, 5e-324],
    [-0.0],
    [1e300, 2**53],
    [dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC), dt.datetime(1700, 1, 1, tzinfo=dt.UTC)],
    [dt.datetime(2024, 5, 1, 14, tzinfo=dt.timezone(dt.timedelta(hours=2)))],
]
DATES = [
    dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC),
    dt.datetime(2024, 5, 1, 14, tzinfo=dt.timezone(dt.timedelta(hours=2))),  # the same instant
    dt.datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=dt.UTC),
    dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
    dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    dt.datetime(1800, 6, 1, tzinfo=dt.UTC),
]


def _comparisons() -> list[Comparison]:
    out = []
    for op in (FilterOp.EQ, FilterOp.NE):
        out += [Comparison("v", op, value) for value in OPERANDS]
    for op in (FilterOp.GT, FilterOp.GTE, FilterOp.LT, FilterOp.LTE):
        out += [
            Comparison("v", op, value)
            for value in OPERANDS
            if isinstance(value, int | float) and not isinstance(value, bool)
        ]
    for op in (FilterOp.IN, FilterOp.NIN):
        out += [Comparison("v", op, tuple(values)) for values in LISTS]
    for op in (FilterOp.EQ, FilterOp.NE, FilterOp.GT, FilterOp.GTE, FilterOp.LT, FilterOp.LTE):
        out += [Comparison("v", op, value) for value in DATES]
    for field in ("v", "u", "w", "absent", *WIDE_KEYS):
        out += [Comparison(field, FilterOp.EXISTS, True), Comparison(field, FilterOp.EXISTS, False)]
    for field in WIDE_KEYS:
        out += [
            Comparison(field, FilterOp.EQ, "x"),
            Comparison(field, FilterOp.EQ, 1.5),
            Comparison(field, FilterOp.GT, 1),
            Comparison(field, FilterOp.IN, ("x", "y")),
        ]
    return out


COMPARISONS = _comparisons()
COMPOUND = [
    And((Comparison("v", FilterOp.GT, 0), Comparison("v", FilterOp.LT, 2))),
    Or((Comparison("v", FilterOp.EQ, "x"), Comparison("w", FilterOp.GTE, 15))),
    Not(And((Comparison("v", FilterOp.GTE, -2.5), Comparison("w", FilterOp.LT, 10)))),
    Not(Or((Comparison("v", FilterOp.IN, ("x", "1")), Not(Comparison("v", FilterOp.LTE, 1.5))))),
    And((Not(Comparison("v", FilterOp.NIN, (1.5, 2))), Comparison("w", FilterOp.NE, 3))),
    Not(Not(Comparison("v", FilterOp.GT, -0.5))),
    And((Comparison("u", FilterOp.EQ, "x"),)),
    Or((Comparison("v", FilterOp.EQ, True),)),
    Not(Comparison("u", FilterOp.NE, "x")),
    Or((Comparison("v", FilterOp.EXISTS, False), Comparison("v", FilterOp.GT, DATES[3]))),
    Not(And((Comparison("v", FilterOp.EXISTS, True), Not(Comparison("u", FilterOp.EXISTS, False))))),
    And((Comparison("og:title", FilterOp.EXISTS, True), Comparison("v", FilterOp.EQ, "x"))),
]
ALL = COMPARISONS + [Not(c) for c in COMPARISONS] + COMPOUND


def _check_shape(where: object) -> None:
    """Chroma's structural rules: one key per object, $and/$or with two or more operands."""
    assert isinstance(where, dict) and len(where) == 1, where
    ((key, value),) = where.items()
    if key in ("$and", "$or"):
        assert isinstance(value, list) and len(value) >= 2, where
        for child in value:
            _check_shape(child)
    else:
        assert isinstance(value, dict) and len(value) == 1, where


@pytest.mark.parametrize("node", ALL, ids=str)
def test_translation_shape(node) -> None:  # type: ignore[no-untyped-def]
    _check_shape(to_native(node))


def test_null_is_exists() -> None:
    """The parser turns None into $exists; the translation of both is the same."""
    assert to_native(parse_filter({"v": None})) == to_native(Comparison("v", FilterOp.EXISTS, False))
    assert to_native(parse_filter({"v": {"$ne": None}})) == to_native(Comparison("v", FilterOp.EXISTS, True))


def test_no_filter_is_no_where() -> None:
    assert to_native(None) is None
    assert to_native(parse_filter({})) is None


def test_metadata_encoding_round_trip() -> None:
    metadata = {"a": 1, "b": 1.0, "c": True, "d": "", "e": [], "f": ["x"], "g": "é"}
    encoded = encode_metadata(metadata, 7, frozenset({"old", "a", "b"}))
    assert encoded["old"] is None and encoded["b"] is None and "e" not in encoded
    assert encoded[FLOAT_PREFIX + "b"] == float_key(1.0) and isinstance(encoded[FLOAT_PREFIX + "b"], int)
    assert encoded[TYPE_PREFIX + "a"] == INT and encoded[TYPE_PREFIX + "b"] == FLOAT
    assert encoded[TYPE_PREFIX + "e"] == EMPTY_LIST and encoded[SEQ_KEY] == 7
    stored = {k: v for k, v in encoded.items() if v is not None}
    assert decode_metadata(stored) == metadata
    assert encode_metadata({}, 1) == {SEQ_KEY: 1}
    assert decode_metadata(None) == {} and decode_metadata({SEQ_KEY: 1}) == {}


FINITE = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(FINITE, FINITE)
def test_float_key_is_an_order_preserving_bijection(a: float, b: float) -> None:
    ka, kb = float_key(a), float_key(b)
    assert -(2**63) < ka < 2**63
    assert (a < b) == (ka < kb) and (a == b) == (ka == kb)
    assert key_float(ka) == a and type(key_float(ka)) is float


def test_float_key_edges() -> None:
    assert float_key(0.0) == float_key(-0.0) == 0
    for x in [5e-324, -5e-324, 1.7976931348623157e308, -1.7976931348623157e308, 2.0**53, 0.1]:
        assert key_float(float_key(x)) == x
    assert float_key(-1.7976931348623157e308) < float_key(-5e-324) < 0 < float_key(5e-324)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One embedded collection holding RECORDS, shared by the engine checks below."""
    import asyncio

    from vpa_chroma.store import ChromaStore

    store = ChromaStore(path=tmp_path_factory.mktemp("filters") / "chroma")
    name = "filters"
    rng = np.random.default_rng(7)
    records = [
        Record(rid, rng.standard_normal(4).astype(np.float32) + 0.01, rid, md) for rid, md in RECORDS.items()
    ]
    loop = asyncio.new_event_loop()
    loop.run_until_complete(store.create_collection(name, 4))
    loop.run_until_complete(store.upsert(name, records))
    yield loop, store, name
    loop.run_until_complete(store.close())
    loop.close()


def _expected(node) -> set[str]:  # type: ignore[no-untyped-def]
    return {rid for rid, md in RECORDS.items() if evaluate(node, md)}


@pytest.mark.parametrize("node", ALL, ids=str)
def test_count_and_query_match_the_reference(loaded, node) -> None:  # type: ignore[no-untyped-def]
    loop, store, name = loaded
    expected = _expected(node)
    assert loop.run_until_complete(store.count(name, node)) == len(expected)
    hits = loop.run_until_complete(store.query(name, [1.0, 0.5, -0.5, 0.25], top_k=len(RECORDS), filter=node))
    assert {h.id for h in hits} == expected


@pytest.mark.parametrize("node", COMPARISONS, ids=str)
def test_negation_is_complement(loaded, node) -> None:  # type: ignore[no-untyped-def]
    loop, store, name = loaded
    total = loop.run_until_complete(store.count(name, node)) + loop.run_until_complete(
        store.count(name, Not(node))
    )
    assert total == len(RECORDS)


async def test_delete_by_filter_in_both_modes(make_store) -> None:  # type: ignore[no-untyped-def]
    store = make_store()
    name = f"f{uuid.uuid4().hex[:12]}"
    rng = np.random.default_rng(3)
    records = [Record(rid, rng.standard_normal(4) + 0.01, "", md) for rid, md in RECORDS.items()]
    await store.create_collection(name, 4)
    try:
        for node in [
            Comparison("v", FilterOp.EQ, "x"),
            Not(Comparison("v", FilterOp.GTE, 1.5)),
            Comparison("v", FilterOp.NIN, (1.5, -2.5)),
        ]:
            await store.upsert(name, records)
            expected = _expected(node)
            assert await store.delete(name, filter=node) == len(expected)
            left = {r.id for r in await store.get(name, list(RECORDS))}
            assert left == set(RECORDS) - expected
        # ids and a filter: both must hold
        await store.upsert(name, records)
        node = Comparison("v", FilterOp.GT, 0)
        ids = ["r_int1", "r_intm3", "r_float15", "r_strx", "absent"]
        assert await store.delete(name, ids=ids, filter=node) == 2
        left = {r.id for r in await store.get(name, ids)}
        assert left == {"r_intm3", "r_strx"}
    finally:
        await store.drop_collection(name)
        await store.close()


async def test_every_operator_in_server_mode(chroma_server) -> None:  # type: ignore[no-untyped-def]
    """The server runs the same executor; a sample of every operator, negated too, to be sure."""
    from vpa_chroma.store import ChromaStore

    store = ChromaStore(host=chroma_server.host, port=chroma_server.port)
    name = f"f{uuid.uuid4().hex[:12]}"
    rng = np.random.default_rng(5)
    await store.create_collection(name, 4)
    try:
        await store.upsert(
            name, [Record(rid, rng.standard_normal(4) + 0.01, "", md) for rid, md in RECORDS.items()]
        )
        sample = [c for c in COMPARISONS if not isinstance(c.value, bool)][::3] + COMPOUND
        for node in itertools.chain(sample, (Not(c) for c in sample)):
            assert await store.count(name, node) == len(_expected(node)), node
    finally:
        await store.drop_collection(name)
        await store.close()

"""The filter translation, checked against the real engines and VPA's reference evaluator.

Every operator, on every metadata type (datetimes included), on missing fields, lists and empty
lists, ``$exists``, loader-style keys, with negation: the ids Qdrant returns for a native filter
must be exactly those `vpa.filters.evaluate` accepts. Payloads are written by the codec, as the
store writes them.

There is one translation (`vpa_qdrant.filters.to_native`, to ``qdrant_client.models``) for every
engine; Qdrant Edge gets it converted node for node (`vpa_qdrant.edge.edge_filter`). Each check
runs on both embedded engines — Qdrant Edge (Qdrant's Rust engine, the server's filter code) and
qdrant-client's local mode — and the random trees are drawn once and asked of both, so the two
engines are shown to agree with the reference, and so with each other.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qdrant_client import models
from vpa.filters import evaluate, parse_filter
from vpa.models import Record
from vpa.typedjson import to_micros
from vpa.validation import key_problem
from vpa_qdrant.codec import decode_key, encode_key, encode_metadata, key_path
from vpa_qdrant.filters import to_native

UTC = dt.UTC
D0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
D1 = D0 + dt.timedelta(microseconds=1)
D2 = dt.datetime(2024, 5, 1, 14, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # D1 as an instant
EARLY = dt.datetime(1700, 1, 1, tzinfo=UTC)
LATE = dt.datetime(2250, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
SERVER_SEGMENT = re.compile(r'[A-Za-z0-9_-]+|"[^"\\]*"')
#: Keys Qdrant would read as JSON paths, quoted keys, or VPA's own encoded form.
WIDE_KEYS = [
    "page.number",
    "og:title",
    "source-url",
    "a[0]",
    "a[]",
    '"q"',
    'x"y',
    "back\\slash",
    "Größe",
    "sp ace",
    "b64-eA",
    "b64-",
    "🙂",
    "m.n",
    ".",
    "[",
    "]",
    "x.y[0]",
    '"',
    "n.m",
]

METADATA = [
    {},
    {"n": 1},
    {"n": 1.0},
    {"n": 2},
    {"n": 2.5},
    {"n": -3},
    {"n": 0},
    {"n": -0.0},
    {"n": 2**53},
    {"n": True},
    {"n": False},
    {"n": "1"},
    {"n": ""},
    {"n": ["1", "x"]},
    {"n": []},
    {"n": "x"},
    {"n": "X"},
    {"n": "ü√"},
    {"n": ["ü√"]},
    {"n": ["x", "y"]},
    {"other": 1},
    {"n": 1, "s": "a", "b": True, "tags": ["a", "b"]},
    {"n": 7.25, "s": "b", "b": False, "tags": []},
    {"s": "a", "tags": ["c"]},
    # datetimes: never equal to a number (their microseconds) or a string (their RFC 3339 form)
    {"n": D0},
    {"n": D1},
    {"n": EARLY},
    {"n": LATE},
    {"n": to_micros(D0)},
    {"n": float(to_micros(D1))},
    {"n": "2024-05-01T12:00:00Z"},
    {"n": D0, "tags": []},
    # loader-style keys, each its own field (no nesting, no aliasing between them)
    {"page.number": 1, "og:title": "x", "a[0]": "v", '"q"': True, "Größe": 2.5},
    {"a[]": ["x"], 'x"y': D0, "sp ace": "", "b64-eA": 1, "🙂": [], "m.n": "n", "back\\slash": "v"},
    {"page": 3, "a": "v", "q": True, "b64-": "x", "n.m": 1, "source-url": "x", ".": 1, '"': []},
    {"x": 1, "[": ["v"], "]": D1, "x.y[0]": "v", "source": "x", "og": True},
]

VALUES = [1, 1.0, 2, 2.5, -3, 0, -0.0, 2**53, 0.5, True, False, "1", "", "x", "X", "ü√", "y", "a"]
DATES = [D0, D1, D2, EARLY, LATE, D0 - dt.timedelta(days=1)]
SCALAR_OPS = ["$eq", "$ne"]
ORDER_OPS = ["$gt", "$gte", "$lt", "$lte"]


def _kind(v):
    if isinstance(v, dt.datetime):
        return "datetime"
    return "bool" if isinstance(v, bool) else "str" if isinstance(v, str) else "number"


def leaf_filters() -> list[dict]:
    filters: list[dict] = []
    for field in ("n", "missing", "tags", *WIDE_KEYS):
        filters.append({field: {"$exists": True}})
        filters.append({field: None})
        filters.append({field: {"$ne": None}})
    for field in WIDE_KEYS:
        filters.extend({field: v} for v in (1, 2.5, "v", "x", True, D0))
        filters.extend({field: {op: 1}} for op in ORDER_OPS)
    for field in ("n", "missing"):
        for value in VALUES + DATES:
            for op in SCALAR_OPS:
                filters.append({field: {op: value}})
            if _kind(value) in ("number", "datetime"):
                for op in ORDER_OPS:
                    filters.append({field: {op: value}})
        by_kind: dict[str, list] = {}
        for value in VALUES + DATES:
            by_kind.setdefault(_kind(value), []).append(value)
        for values in by_kind.values():
            for size in (1, 2, 3):
                for op in ("$in", "$nin"):
                    filters.append({field: {op: values[:size]}})
                    filters.append({field: {op: values[-size:]}})
    filters.append({"tags": "a"})
    filters.append({"tags": {"$in": ["c", "z"]}})
    filters.append({"tags": {"$nin": ["a"]}})
    filters.append({"tags": {"$gt": 0}})
    filters.append({"b": True})
    filters.append({"b": {"$ne": False}})
    filters.append({"b": 1})
    return filters


def compound_filters() -> list[dict]:
    leaves = [{"n": 1}, {"n": {"$gt": 0}}, {"s": "a"}, {"tags": {"$nin": ["a"]}}, {"b": {"$ne": True}}]
    out: list[dict] = []
    for a, b in itertools.combinations(leaves, 2):
        out.append({"$and": [a, b]})
        out.append({"$or": [a, b]})
        out.append({"$not": {"$or": [a, b]}})
        out.append({"$not": {"$and": [a, {"$not": b}]}})
    out.append({"n": {"$gte": 1, "$lt": 3}, "s": {"$ne": "b"}})
    out.append({"$or": [{"$not": {"n": 1}}, {"missing": {"$nin": [1]}}]})
    return out


def _points() -> list[models.PointStruct]:
    return [
        models.PointStruct(
            id=str(uuid.UUID(int=i + 1)), vector=[1.0, float(i)], payload={"i": i, "m": encode_metadata(md)}
        )
        for i, md in enumerate(METADATA)
    ]


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    """Both embedded engines, holding the same points: {"edge": ..., "client": ...}."""
    from qdrant_client import QdrantClient
    from vpa_qdrant.edge import EdgeEngine

    vectors = models.VectorParams(size=2, distance=models.Distance.COSINE)
    client = QdrantClient(path=str(tmp_path_factory.mktemp("filters-client")))
    client.create_collection("f", vectors_config=vectors)
    client.upsert("f", points=_points(), wait=True)
    edge = EdgeEngine(tmp_path_factory.mktemp("filters-edge"))
    edge.create_collection("f", vectors_config=vectors, metadata={})
    edge.upsert("f", points=_points())
    yield {"edge": edge, "client": client}
    client.close()
    edge.close()


@pytest.fixture(scope="module", params=["edge", "client"])
def engine(request, engines):
    return engines[request.param]


def native_ids(engine, spec) -> set[int]:
    """The ids the engine (Edge or qdrant-client's local mode) returns for the translated filter:
    both take the same ``models.Filter`` (Edge converts it, `vpa_qdrant.edge`)."""
    native = to_native(parse_filter(spec))
    points, _ = engine.scroll("f", scroll_filter=native, limit=1000, with_payload=True)
    return {p.payload["i"] for p in points}


def reference_ids(spec) -> set[int]:
    node = parse_filter(spec)
    return {i for i, md in enumerate(METADATA) if evaluate(node, md)}


@pytest.mark.parametrize("group", ["leaves", "compound"])
def test_native_filter_equals_reference(engine, group):
    filters = leaf_filters() if group == "leaves" else compound_filters()
    mismatches = []
    for spec in filters:
        for candidate in (spec, {"$not": spec}):
            got, want = native_ids(engine, candidate), reference_ids(candidate)
            if got != want:
                mismatches.append((candidate, sorted(got - want), sorted(want - got)))
    assert not mismatches, mismatches[:10]
    assert len(filters) > (300 if group == "leaves" else 20)


def test_every_record_matches_exactly_one_of_f_and_not_f(engine):
    for spec in leaf_filters()[:60]:
        yes, no = native_ids(engine, spec), native_ids(engine, {"$not": spec})
        assert yes.isdisjoint(no) and yes | no == set(range(len(METADATA))), spec


def test_numbers_use_ranges_not_match_value():
    native = to_native(parse_filter({"n": 1}))
    (cond,) = native.must
    assert cond.key == "m.n" and cond.match is None
    assert cond.range == models.Range(gte=1.0, lte=1.0)


def test_negations_are_must_not():
    for spec in ({"n": {"$ne": "a"}}, {"n": {"$nin": ["a", "b"]}}, {"$not": {"n": "a"}}):
        native = to_native(parse_filter(spec))
        assert native.must_not and not native.should


def test_strings_in_use_match_any_and_numbers_use_should():
    strings = to_native(parse_filter({"s": {"$in": ["a", "b"]}}))
    assert isinstance(strings.must[0].match, models.MatchAny)
    numbers = to_native(parse_filter({"n": {"$in": [1, 2.5]}}))
    assert len(numbers.should) == 2 and all(c.range is not None for c in numbers.should)


def test_no_filter_is_none():
    assert to_native(None) is None


def test_exists_is_is_empty_and_its_complement():
    absent = to_native(parse_filter({"k": None}))
    assert absent.must[0] == models.IsEmptyCondition(is_empty=models.PayloadField(key="m.k"))
    present = to_native(parse_filter({"k": {"$exists": True}}))
    assert present.must_not[0].is_empty.key == "m.k"


def test_datetimes_match_their_exact_microseconds_under_a_tag():
    (cond,) = to_native(parse_filter({"d": D1})).must
    assert cond.key == "m.d._vpa_datetime_us" and cond.match == models.MatchValue(value=to_micros(D1))
    (cond,) = to_native(parse_filter({"d": {"$in": [D1, D2, D0]}})).must
    assert cond.match == models.MatchAny(any=[to_micros(D1), to_micros(D0)])  # D2 is D1
    (cond,) = to_native(parse_filter({"d": {"$lt": LATE}})).must
    assert cond.range == models.Range(lt=float(to_micros(LATE))) and float(to_micros(LATE)) == to_micros(LATE)


def test_wide_keys_are_one_path_segment():
    for key in WIDE_KEYS:
        (cond,) = to_native(parse_filter({key: "v"})).must
        segment = cond.key.removeprefix("m.")
        stored = encode_key(key)
        assert decode_key(stored) == key
        assert segment == f'"{stored}"' and segment.count('"') == 2 and "\\" not in segment, key
    assert encode_key("og:title") == "og:title" and encode_key("Größe") == "Größe"  # stored as they are
    assert encode_key('x"y').startswith("b64-") and encode_key("b64-eA").startswith("b64-")
    assert to_native(parse_filter({"plain_key1": 1})).must[0].key == "m.plain_key1"
    assert to_native(parse_filter({"page.number": 1})).must[0].key == 'm."page.number"'


@given(st.text(min_size=1, max_size=40).filter(lambda k: key_problem(k) is None))
@settings(max_examples=300, deadline=None)
def test_every_key_round_trips_and_parses_as_one_segment(key):
    from qdrant_client.local.json_path_parser import parse_json_path

    stored = encode_key(key)
    assert decode_key(stored) == key
    items = parse_json_path(key_path(key))  # local mode's parser
    assert [i.key for i in items] == ["m", stored]
    # the server's grammar (lib/segment/src/json_path/parse.rs): a bare segment is letters,
    # digits, "_" and "-"; a quoted one anything but '"' and a backslash
    assert SERVER_SEGMENT.fullmatch(key_path(key).removeprefix("m.")), key


@pytest.mark.parametrize("engine_name", ["edge", "client"])
async def test_store_query_count_delete_use_the_filter(tmp_path, engine_name):
    from vpa_qdrant.settings import QdrantSettings
    from vpa_qdrant.store import QdrantStore

    local_store = QdrantStore(QdrantSettings(path=str(tmp_path / "q"), engine=engine_name))
    await local_store.create_collection("t_filters", 2)
    records = [Record(f"r{i}", np.array([1.0, i + 1.0]), f"t{i}", md) for i, md in enumerate(METADATA)]
    await local_store.upsert("t_filters", records)
    spec = {"$or": [{"n": {"$gte": 1}}, {"tags": "c"}]}
    want = {f"r{i}" for i in reference_ids(spec)}
    hits = await local_store.query("t_filters", [1.0, 1.0], top_k=100, filter=spec)
    assert {h.id for h in hits} == want
    assert await local_store.count("t_filters", spec) == len(want)
    assert await local_store.count("t_filters", {"$not": spec}) == len(METADATA) - len(want)
    assert await local_store.delete("t_filters", filter=spec) == len(want)
    assert await local_store.count("t_filters") == len(METADATA) - len(want)
    assert await local_store.count("t_filters", spec) == 0
    await local_store.close()


# --- random trees ----------------------------------------------------------------------------------

_FIELDS = st.sampled_from(["n", "s", "b", "tags", "missing", "other"])
_SAME_KIND = st.one_of(
    st.lists(st.sampled_from([v for v in VALUES if _kind(v) == "number"]), min_size=1, max_size=3),
    st.lists(
        st.sampled_from([v for v in VALUES if _kind(v) == "str"] + ["a", "b", "c"]), min_size=1, max_size=3
    ),
    st.lists(st.booleans(), min_size=1, max_size=2),
)


def _leaf() -> st.SearchStrategy[dict]:
    scalar = st.tuples(_FIELDS, st.sampled_from(["$eq", "$ne"]), st.sampled_from(VALUES))
    ordering = st.tuples(
        _FIELDS, st.sampled_from(ORDER_OPS), st.sampled_from([v for v in VALUES if _kind(v) == "number"])
    )
    listed = st.tuples(_FIELDS, st.sampled_from(["$in", "$nin"]), _SAME_KIND)
    return st.one_of(scalar, ordering, listed).map(lambda t: {t[0]: {t[1]: t[2]}})


_TREES = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda cs: {"$and": cs}),
        st.lists(inner, min_size=1, max_size=3).map(lambda cs: {"$or": cs}),
        inner.map(lambda c: {"$not": c}),
    ),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=_TREES)
def test_random_trees_equal_reference_on_both_engines(engines, spec):
    want = reference_ids(spec)
    assert native_ids(engines["edge"], spec) == want
    assert native_ids(engines["client"], spec) == want


def test_edge_conversion_keeps_every_node():
    """`edge_filter` maps each node of the shared translation to Edge's class of the same name,
    with the same keys and bounds (a bool as a boolean: see `vpa_qdrant.edge._match_value`)."""
    import qdrant_edge
    from vpa_qdrant.edge import _match_value, edge_filter

    spec = {"$or": [{"n": {"$gte": 1, "$lt": 3}}, {"s": {"$in": ["a", "b"]}}, {"$not": {"b": True}},
                    {"d": D0}, {"k": None}]}
    converted = edge_filter(to_native(parse_filter(spec)))
    assert isinstance(converted, qdrant_edge.Filter) and len(converted.should) == 5
    ranges, strings, negation, date, empty = converted.should
    assert [(c.key, c.range.gte, c.range.lt) for c in ranges.must] == [("m.n", 1.0, None), ("m.n", None, 3.0)]
    assert strings.key == "m.s" and strings.match.value == ["a", "b"]
    flag = negation.must_not[0].match.value
    assert type(flag).__name__ == "bool" and bool(flag) is True  # a boolean, not the integer 1
    assert date.key == "m.d._vpa_datetime_us" and date.match.value == to_micros(D0)
    assert isinstance(empty, qdrant_edge.IsEmptyCondition)
    assert type(_match_value(True)).__name__ == "bool" and _match_value(1) == 1
    assert edge_filter(None) is None

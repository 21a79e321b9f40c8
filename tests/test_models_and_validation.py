import datetime as _dt
import numpy as np
import pytest

from vpa.errors import DimensionMismatch, InvalidId, InvalidMetadata, InvalidVector, RecordTooLarge, UnsupportedMetadata
from vpa.models import CollectionInfo, EmbedderFingerprint, Hit, MetadataType, Record, StoreCapabilities, from_json_dict, to_json_dict
from hypothesis import given
from hypothesis import strategies as st

from vpa.validation import check_metadata, check_records, check_vector, record_bytes, record_bytes_bound

_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
_VALUES = st.one_of(
    _TEXT,
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(_TEXT, max_size=4),
)


def test_record_json_round_trip_keeps_vector_text_and_metadata():
    record = Record("r-1", [0.25, -1.5, 3.0], "héllo ✓", {"a": 1, "b": 2.5, "c": True, "d": ["x"], "e": ""})
    data = to_json_dict(record)
    assert data["vector"] == [0.25, -1.5, 3.0]
    assert from_json_dict(data, Record) == record


def test_collection_info_and_capabilities_round_trip():
    info = CollectionInfo("c", 3, fingerprint=EmbedderFingerprint("hashing", "m", 3))
    assert from_json_dict(to_json_dict(info), CollectionInfo) == info
    caps = StoreCapabilities(filter_operators=["$eq"], metadata_types=["str"], max_batch_size=10)
    assert from_json_dict(to_json_dict(caps), StoreCapabilities) == caps


def test_hit_metadata_is_a_copy():
    source = {"tags": ["a"]}
    hit = Hit("x", 0.5, "", source)
    source["tags"].append("b")
    assert hit.metadata == {"tags": ["a"]}


@pytest.mark.parametrize("vector", [[1.0, float("nan"), 0.0], [float("inf"), 0.0, 0.0], [0.0, 0.0, 0.0]])
def test_vectors_must_be_finite_and_non_zero(vector):
    with pytest.raises(InvalidVector):
        check_vector(vector, 3)


def test_dimension_is_named():
    with pytest.raises(DimensionMismatch, match="dimension 2, but the collection's dimension is 3"):
        check_vector([1, 2], 3)


@pytest.mark.parametrize(
    "metadata",
    [
        {"a": {"b": 1}},
        {"a": [1, 2]},
        {"a": float("nan")},
        {"a": 2**60},
        {"$a": 1},
        {"a\x00b": 1},
        {"k" * 129: 1},
        {"": 1},
        {"d": _dt.datetime(2024, 5, 1)},  # naive
    ],
)
def test_unportable_metadata_is_refused(metadata):
    with pytest.raises(InvalidMetadata):
        check_metadata(metadata)


@pytest.mark.parametrize("metadata", [{"bad-key": 1}, {"1a": 1}, {"k" * 65: 1}, {"page.number": 1}])
def test_contract_1_0_keys_stay_identifiers(metadata):
    check_metadata(metadata)  # a 1.1 key
    with pytest.raises(InvalidMetadata, match="contract 1.0"):
        check_metadata(metadata, legacy_keys=True)


def test_none_means_absent():
    assert check_metadata({"a": None, "b": 1}) == {"b": 1}


def test_undeclared_metadata_type_is_unsupported():
    with pytest.raises(UnsupportedMetadata):
        check_metadata({"tags": ["a"]}, allowed={MetadataType.STR})


def test_batch_keeps_newest_of_duplicate_ids_and_validates_everything_first():
    records = [Record("a", [1, 0], "old"), Record("b", [0, 1]), Record("a", [1, 1], "new")]
    assert [(r.id, r.text) for r in check_records(records, 2)] == [("b", ""), ("a", "new")]
    with pytest.raises(InvalidId):
        check_records([Record("ok", [1, 0]), Record("", [1, 0])], 2)
    with pytest.raises(RecordTooLarge):
        check_records([Record("big", [1, 0], "x" * 100)], 2, max_record_bytes=50)
    assert np.allclose(check_records(records, 2)[1].vector, [1, 1])


@given(
    text=_TEXT,
    metadata=st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True), _VALUES, max_size=6),
)
def test_the_cheap_size_bound_is_never_below_the_exact_size(text, metadata):
    # check_records skips JSON-encoding a record whose bound is under the limit: a bound below
    # the exact size would let an oversized record through.
    record = Record("r", [1.0, 0.0], text, metadata)
    assert record_bytes(record) <= record_bytes_bound(record)


_ANY_VALUE = st.one_of(
    st.text(),  # surrogates included
    st.integers(-(2**60), 2**60),
    st.floats(),  # NaN and infinities included
    st.booleans(),
    st.lists(st.text(), max_size=3),
    st.lists(st.integers(), min_size=1, max_size=2),
    st.none(),
    st.builds(lambda s: type("Sub", (str,), {})(s), st.text(max_size=5)),
)


@given(value=_ANY_VALUE)
def test_the_metadata_check_accepts_exactly_the_portable_values(value):
    # check_metadata skips re-encoding ASCII strings and metadata_type settles exact types by
    # identity; together they must accept exactly the portable values (subclasses, surrogates,
    # NaN, out-of-range ints included) and name the type a store must declare.
    from vpa.validation import is_encodable, metadata_type

    kind = metadata_type(value)
    strings = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    valid = kind is not None and all(isinstance(v, str) and is_encodable(v) for v in strings if isinstance(v, str))
    if value is None:  # contract 1.1: a None value means the key is absent
        assert check_metadata({"k": value}) == {}
    elif valid:
        assert check_metadata({"k": value}) == {"k": list(value) if isinstance(value, list) else value}
        with pytest.raises(UnsupportedMetadata):
            check_metadata({"k": value}, allowed=set(MetadataType) - {kind})
    else:
        with pytest.raises(InvalidMetadata):
            check_metadata({"k": value})


def test_a_record_just_over_the_limit_is_refused_and_one_at_the_limit_accepted():
    record = Record("edge", [1, 0], "é\x01" * 10, {"k": "v"})
    exact = record_bytes(record)
    assert check_records([record], 2, max_record_bytes=exact)
    with pytest.raises(RecordTooLarge, match=str(exact)):
        check_records([record], 2, max_record_bytes=exact - 1)


def test_strings_that_are_not_valid_unicode_are_refused_everywhere():
    from vpa.errors import InvalidFilter
    from vpa.filters import parse_filter

    lone = "a\ud800b"
    with pytest.raises(InvalidId):
        check_records([Record(lone, [1, 0])], 2)
    with pytest.raises(InvalidMetadata):
        check_records([Record("ok", [1, 0], lone)], 2)
    with pytest.raises(InvalidMetadata):
        check_metadata({"k": [lone]})
    with pytest.raises(InvalidFilter):
        parse_filter({"k": lone})

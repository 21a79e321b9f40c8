"""Names and values mapped onto Weaviate's schema, reversibly (no server needed)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vpa.stores.base import COLLECTION_NAME_RE
from vpa.validation import MAX_KEY_LENGTH, METADATA_KEY_RE, key_problem
from vpa_conformance.profiles import clause_settings
from vpa_weaviate.naming import (
    EMPTY_LIST,
    HASH_PREFIX,
    MAX_PROPERTY_NAME,
    META_PREFIX,
    RESERVED_SUFFIXES,
    decode_collection,
    encode_collection,
    frame,
    frame_list,
    key_of,
    object_uuid,
    prop_name,
    property_description,
    unframe,
    unframe_list,
)

WEAVIATE_CLASS = re.compile(r"[A-Z][_0-9A-Za-z]*")
WEAVIATE_PROPERTY = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,230}")
collection_names = st.from_regex(COLLECTION_NAME_RE, fullmatch=True)
metadata_keys = st.from_regex(METADATA_KEY_RE, fullmatch=True).filter(lambda k: len(k) <= 64)
#: Contract 1.1's keys: any non-empty string of at most 128 characters, no NUL, not starting '$'.
wide_keys = st.text(min_size=1, max_size=MAX_KEY_LENGTH).filter(lambda k: key_problem(k) is None)


@clause_settings(50)
@given(collection_names)
def test_collection_names_round_trip_into_valid_case_free_class_names(name: str) -> None:
    encoded = encode_collection(name)
    assert WEAVIATE_CLASS.fullmatch(encoded)
    assert encoded[3:] == encoded[3:].lower()  # no two VPA names collide case-insensitively
    assert decode_collection(encoded) == name


@clause_settings(50)
@given(collection_names, collection_names)
def test_distinct_collection_names_stay_distinct_ignoring_case(a: str, b: str) -> None:
    if a != b:
        assert encode_collection(a).lower() != encode_collection(b).lower()


def test_collection_name_examples() -> None:
    assert encode_collection("docs") == "Vpadocs"
    assert encode_collection("My-Docs_2") == "Vpa_my_0_docs__2"
    assert decode_collection("Vpa_my_0_docs__2") == "My-Docs_2"
    assert encode_collection("docs", "Acme") == "Acmedocs"


@pytest.mark.parametrize("foreign", ["Vpa", "Other", "Vpa_", "Vpa_9x", "VpaX", "Vpa1abc", "Vpa_0abc"])
def test_classes_that_are_not_vpa_collections_decode_to_none(foreign: str) -> None:
    assert decode_collection(foreign) is None


@clause_settings(50)
@given(metadata_keys)
def test_metadata_keys_round_trip_into_valid_property_names(key: str) -> None:
    prop = prop_name(key)
    assert WEAVIATE_PROPERTY.fullmatch(prop)
    assert prop == prop.lower()  # Weaviate lower-cases the first letter and may ignore case
    assert key_of(prop) == key
    assert not prop.startswith("vpa_")  # never a reserved property


def test_property_name_examples() -> None:
    assert prop_name("year") == "m_year"
    assert prop_name("Case") == "m__case"
    assert prop_name("case") == "m_case"
    assert prop_name("_id") == "m___id"
    assert key_of("vpa_text") is None


@clause_settings(100)
@given(wide_keys)
def test_wide_keys_round_trip_into_valid_property_names(key: str) -> None:
    """Any 1.1 key: a valid, all-lowercase Weaviate name, read back from the name alone (``m_``) or
    with the property's description (``h_``, for codes too long or ending in a reserved suffix)."""
    prop = prop_name(key)
    assert WEAVIATE_PROPERTY.fullmatch(prop) and len(prop) <= MAX_PROPERTY_NAME
    assert prop == prop.lower()
    assert not prop.endswith(RESERVED_SUFFIXES)
    assert key_of(prop, property_description(key)) == key
    if prop.startswith(META_PREFIX):
        assert key_of(prop) == key
    else:
        assert prop.startswith(HASH_PREFIX) and key_of(prop) is None  # the description is needed


@clause_settings(100)
@given(wide_keys, wide_keys)
def test_distinct_wide_keys_get_distinct_properties(a: str, b: str) -> None:
    if a != b:
        assert prop_name(a) != prop_name(b)


@pytest.mark.parametrize(
    ("key", "prop"),
    [
        ("source-url", "m_source_0url"),
        ("og:title", "m_og_23atitle"),
        ("page.number", "m_page_22enumber"),
        ("Größe", "m__gr_2f6_2dfe"),
        ('a "quoted" [0]', "m_a_220_222quoted_222_220_25b0_25d"),
        ("emoji 😀", "m_emoji_220_51f600"),
        ("tab\there", "m_tab_19here"),
    ],
)
def test_wide_key_examples(key: str, prop: str) -> None:
    assert prop_name(key) == prop
    assert key_of(prop) == key


def test_long_keys_and_reserved_suffixes_are_hashed() -> None:
    long_key = "é" * MAX_KEY_LENGTH  # 128 * 5 characters of code: over Weaviate's 231
    suffixed = "xSearchable"  # m_x_searchable would share a bucket name with m_x's search index
    for key in (long_key, suffixed):
        prop = prop_name(key)
        assert prop.startswith(HASH_PREFIX) and len(prop) == 28
        assert key_of(prop, property_description(key)) == key
        assert key_of(prop, property_description("other")) is None  # a description must match
        assert key_of(prop, "not json") is None


@pytest.mark.parametrize(
    "foreign", ["m_", "m_A", "m__", "m_a_", "m_a_7", "m_a_1", "m_a_1g", "m_a_261", "m_a_20a", "m_a_711ffff"]
)
def test_properties_that_are_not_canonical_codes_hold_no_key(foreign: str) -> None:
    """Only the one canonical code of a key decodes (``_261`` would be ``a`` escaped, ``_20a`` a
    newline with a leading zero)."""
    assert key_of(foreign) is None


def test_text_lists_frame_items_and_mark_the_empty_list() -> None:
    assert frame_list(["a", ""]) == [frame("a"), frame("")]
    assert frame_list([]) == [EMPTY_LIST]
    assert frame_list([], mark_empty=False) == []
    assert unframe_list([EMPTY_LIST]) == [] and unframe_list([]) == [] and unframe_list(None) == []
    assert unframe_list(frame_list(["a", " b "])) == ["a", " b "]
    assert EMPTY_LIST not in {frame(s) for s in ("", "\x03", "a")}


@clause_settings(50)
@given(st.text())
def test_text_framing_round_trips_and_survives_trimming(text: str) -> None:
    framed = frame(text)
    assert unframe(framed) == text
    assert framed.strip() == framed  # nothing for Weaviate's field tokenizer to trim
    assert framed != frame(text + " ")


def test_object_uuid_is_deterministic_per_id() -> None:
    assert object_uuid("a") == object_uuid("a")
    assert object_uuid("a") != object_uuid("A")
    assert object_uuid("1") != object_uuid("01")

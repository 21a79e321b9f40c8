"""Names and values mapped onto Weaviate's schema, reversibly (no server needed)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vpa.stores.base import COLLECTION_NAME_RE
from vpa.validation import METADATA_KEY_RE
from vpa_conformance.profiles import clause_settings
from vpa_weaviate.naming import (
    decode_collection,
    encode_collection,
    frame,
    key_of,
    object_uuid,
    prop_name,
    unframe,
)

WEAVIATE_CLASS = re.compile(r"[A-Z][_0-9A-Za-z]*")
WEAVIATE_PROPERTY = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,230}")
collection_names = st.from_regex(COLLECTION_NAME_RE, fullmatch=True)
metadata_keys = st.from_regex(METADATA_KEY_RE, fullmatch=True).filter(lambda k: len(k) <= 64)


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

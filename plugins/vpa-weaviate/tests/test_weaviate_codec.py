"""The class description: VPA's definition in the core's format, the 0.1 format still read."""

from __future__ import annotations

import json

import pytest
from vpa.errors import InvalidCollection
from vpa.models import CollectionInfo, EmbedderFingerprint
from vpa_weaviate import codec

INFO = CollectionInfo("docs", 3, fingerprint=EmbedderFingerprint("st", "all-MiniLM", 3))


@pytest.mark.parametrize("multi_tenant", [False, True])
def test_description_round_trips(multi_tenant: bool) -> None:
    definition = codec.load_description("docs", codec.dump_description(INFO, multi_tenant))
    assert definition == codec.Definition(INFO, multi_tenant)


def test_a_0_1_description_is_read() -> None:
    old = {"format": 1, "name": "docs", "dimension": 3, "metric": "cosine", "multi_tenant": True,
           "fingerprint": {"name": "st", "model": "all-MiniLM", "dimension": 3}}  # fmt: skip
    assert codec.load_description("docs", json.dumps({"vpa": old})) == codec.Definition(INFO, True)
    assert codec.load_description("other", json.dumps({"vpa": old})) is None
    with pytest.raises(InvalidCollection, match="unreadable"):
        codec.load_description("docs", json.dumps({"vpa": {**old, "dimension": None}}))


@pytest.mark.parametrize("description", [None, "", "someone else's", "[1]", '{"name": "docs"}'])
def test_a_class_vpa_did_not_create_has_no_definition(description: str | None) -> None:
    assert codec.load_description("docs", description) is None


def test_a_class_is_vpa_s_only_under_the_name_it_was_created_for() -> None:
    """With class_prefix "Vpad", the class "Vpadocs" of collection "docs" decodes as "ocs"."""
    assert codec.load_description("ocs", codec.dump_description(INFO, False)) is None


def test_a_newer_definition_is_refused_not_guessed() -> None:
    newer = json.dumps(
        {"name": "docs", "multi_tenant": False, "vpa_definition": '{"vpa": 99, "dimension": 3}'}
    )
    with pytest.raises(InvalidCollection, match="newer"):
        codec.load_description("docs", newer)

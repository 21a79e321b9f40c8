"""The one versioned codec of collection definitions every store keeps."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpa.errors import InvalidCollection
from vpa.models import CollectionInfo, EmbedderFingerprint
from vpa.stores.definition import dump_definition, load_definition

fingerprints = st.none() | st.builds(
    EmbedderFingerprint, st.text(min_size=1, max_size=20), st.text(max_size=40), st.integers(1, 4096)
)


@given(st.integers(1, 65536), fingerprints)
def test_definitions_round_trip(dimension, fingerprint):
    info = CollectionInfo("c", dimension, fingerprint=fingerprint)
    assert load_definition("c", dump_definition(info)) == info


@pytest.mark.parametrize("text", ["", "{", "[]", '{"vpa": 1}', '{"vpa": 1, "dimension": 0}',
                                  '{"vpa": 1, "dimension": true}', '{"vpa": 1, "dimension": 3, "metric": "l2"}'])
def test_an_unreadable_definition_is_a_typed_error_naming_the_collection(text):
    with pytest.raises(InvalidCollection, match="collection 'docs'"):
        load_definition("docs", text)


def test_a_newer_format_asks_for_an_upgrade():
    with pytest.raises(InvalidCollection, match="newer VPA"):
        load_definition("docs", '{"vpa": 99, "dimension": 3}')

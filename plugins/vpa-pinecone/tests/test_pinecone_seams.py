"""The plugin on VPA's store seams: typed settings, capabilities defined once by the class,
registration by string target (no vendor import), the request-size bound the base class splits
by, and collection definitions in the core's format (0.1's catalog records still open)."""

from __future__ import annotations

import json
import subprocess
import sys

import attrs
import numpy as np
import orjson
import pytest
from conftest import API_KEY, INDEX_DIMENSION, unique
from hypothesis import given, settings
from hypothesis import strategies as st
from vpa.config import VPAConfig
from vpa.errors import ConfigError
from vpa.models import CollectionInfo, EmbedderFingerprint, Record
from vpa.plugins import get_registry
from vpa.stores.definition import DEFINITION_KEY, load_definition
from vpa_pinecone import codec
from vpa_pinecone.settings import PineconeSettings
from vpa_pinecone.store import MAX_REQUEST_BYTES, PineconeStore


def config(**options) -> VPAConfig:
    return VPAConfig(provider="pinecone", api_key="k", providers={"pinecone": options})


# --- settings ------------------------------------------------------------------------------------


def test_every_option_keeps_its_name_and_default() -> None:
    assert PineconeStore.settings_from(config()) == PineconeSettings(
        index="vpa",
        dimension=1536,
        cloud="aws",
        region="us-east-1",
        host=None,
        namespace_prefix="",
        timeout=30.0,
        max_retries=3,
        settle_timeout=60.0,
        create_index=True,
        deletion_protection=False,
    )
    chosen = {
        "index": "my-app",
        "dimension": 384,
        "cloud": "gcp",
        "region": "europe-west4",
        "host": "http://127.0.0.1:9",
        "namespace_prefix": "t-",
        "timeout": 5,
        "max_retries": 0,
        "settle_timeout": 2.5,
        "create_index": False,
        "deletion_protection": True,
    }
    assert attrs.asdict(PineconeStore.settings_from(config(**chosen))) == chosen


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"dimension": "many"}, "[providers.pinecone].dimension"),
        ({"dimension": 0}, "[providers.pinecone].dimension"),
        ({"dimension": 20_001}, "[providers.pinecone].dimension"),
        ({"timeout": True}, "[providers.pinecone].timeout"),
        ({"settle_timeout": -1}, "[providers.pinecone].settle_timeout"),
        ({"max_retries": -1}, "[providers.pinecone].max_retries"),
        ({"max_retries": 1.5}, "[providers.pinecone].max_retries"),
        ({"index": "Not_Valid"}, "[providers.pinecone].index"),
        ({"namespace_prefix": "ü-"}, "[providers.pinecone].namespace_prefix"),
        ({"create_index": "perhaps"}, "[providers.pinecone].create_index"),
        ({"indx": "a"}, "[providers.pinecone].indx"),
    ],
)
def test_bad_options_are_config_errors_naming_the_option(options: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        PineconeStore.from_config(config(**options))


def test_host_option_wins_over_vpa_vector_db_host_and_pool_size_reaches_the_client() -> None:
    base = VPAConfig(provider="pinecone", api_key="k", host="elsewhere", port=7, connection_pool_size=7)
    assert PineconeStore.from_config(base).settings.host == "https://elsewhere:7"
    chosen = base.replace(providers={"pinecone": {"host": "http://127.0.0.1:9"}})
    store = PineconeStore.from_config(chosen)
    assert store.settings.host == "http://127.0.0.1:9"
    client = store._client()  # builds the SDK client: no I/O
    assert client._config.connection_pool_maxsize == 7  # the index clients inherit it
    default = PineconeStore.from_config(VPAConfig(provider="pinecone", api_key="k"))
    assert default._client()._config.connection_pool_maxsize == 0  # 0: the SDK's own default
    client.close()
    default._client().close()


# --- capabilities: one definition --------------------------------------------------------------


def test_capabilities_are_defined_once_by_the_class() -> None:
    registration = get_registry().get("store", "pinecone")
    assert registration.legacy_capabilities is None and registration.legacy_capabilities_for is None
    assert registration.load() is PineconeStore
    assert registration.capabilities is PineconeStore.capabilities
    assert registration.declared(config(dimension=8)) is PineconeStore.capabilities
    store = PineconeStore(PineconeSettings(), api_key="k")
    assert store.capabilities is PineconeStore.capabilities
    caps = PineconeStore.capabilities
    assert (caps.max_batch_size, caps.max_request_bytes, caps.max_top_k) == (1000, MAX_REQUEST_BYTES, 10_000)
    assert (caps.max_record_bytes, caps.max_metadata_bytes) == (38_000, 32 * 1024)
    assert (caps.exact, caps.min_recall, caps.eventually_consistent, caps.persistent) == (
        False,
        0.9,
        True,
        True,
    )


def test_registering_the_plugin_imports_no_vendor_client() -> None:
    code = (
        "import sys, vpa_pinecone, vpa_pinecone.plugin, vpa_pinecone.settings; "
        "from vpa.plugins import get_registry; get_registry().get('store', 'pinecone'); "
        "print('pinecone' in sys.modules, vpa_pinecone.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "0.3.0"]


# --- the size bounds the base class splits by --------------------------------------------------

ids = st.one_of(
    st.text(alphabet=st.characters(codec="ascii"), min_size=1, max_size=40),
    st.text(min_size=1, max_size=40),
).filter(lambda s: s.strip() == s and s)
texts = st.text(max_size=200)
keys = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
values = st.one_of(
    st.text(max_size=30),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.booleans(),
    st.lists(st.text(max_size=10), max_size=4),
)
vectors = st.lists(
    st.floats(allow_nan=False, allow_infinity=False, width=32).filter(lambda x: x != 0),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    record_id=ids,
    text=texts,
    metadata=st.dictionaries(keys, values, max_size=8),
    vector=vectors,
    padding=st.integers(0, 50),
)
def test_request_bytes_bound_what_the_sdk_sends(record_id, text, metadata, vector, padding) -> None:
    try:
        record = Record(record_id, vector, text, metadata)
    except Exception:
        return  # not a record VPA accepts
    encoded = codec.encode_vector(record, len(vector) + padding)
    assert codec.metadata_bytes(encoded["metadata"]) <= codec.metadata_bytes_bound(record)
    assert len(orjson.dumps(encoded)) + 1 <= codec.vector_bytes_bound(record, len(vector) + padding)


def test_longest_floats_are_within_the_bound() -> None:
    worst = np.array(
        [-0.0012345678912345678, -1.1754943508222875e-38, -3.4028235e38, 1e-45], dtype=np.float32
    )
    record = Record("a", worst)
    assert len(orjson.dumps(codec.encode_vector(record, 4))) <= codec.vector_bytes_bound(record, 4)


# --- collection definitions --------------------------------------------------------------------


def test_definition_round_trip_in_the_core_format() -> None:
    info = CollectionInfo("docs", 6, fingerprint=EmbedderFingerprint("hashing", "v1", 6))
    metadata = codec.encode_definition(info)
    assert load_definition("docs", metadata[DEFINITION_KEY]) == info
    assert codec.decode_definition("docs", json.loads(json.dumps(metadata))) == info


async def test_collections_created_by_0_1_still_open(fresh_standin, make_store) -> None:
    """A catalog record as 0.1 wrote it (fields one by one, numbers back as float64)."""
    from pinecone import Pinecone

    server = fresh_standin(lag=0.01)
    store = make_store(server, namespace_prefix="old-")
    await store.create_collection("newer", 4)  # creates the index
    name = unique("old")
    legacy = {
        "vpa-id": name,
        "vpa-kind": "collection",
        "format": 1,
        "dimension": 6,
        "metric": "cosine",
        "fingerprint_name": "hashing",
        "fingerprint_model": "v1",
        "fingerprint_dimension": 6,
    }
    with Pinecone(api_key=API_KEY, host=server.url) as pc:
        index = pc.index(name="vpa-tests")
        index.upsert(
            vectors=[{"id": name, "values": [1.0] + [0.0] * (INDEX_DIMENSION - 1), "metadata": legacy}],
            namespace="old-__vpa_catalog__",
        )
        index.close()
    server.settle_all()
    reader = make_store(server, namespace_prefix="old-")
    info = await reader.open_collection(name)
    assert (info.dimension, info.fingerprint) == (6, EmbedderFingerprint("hashing", "v1", 6))
    assert sorted(await reader.list_collections()) == sorted(["newer", name])
    await reader.upsert(name, [Record("a", np.ones(6, dtype=np.float32), "t")])
    await reader.settle(name)
    assert [r.id for r in await reader.get(name, ["a"])] == ["a"]
    # the new collection's record holds the core's definition string
    newer = await make_store(server, namespace_prefix="old-").open_collection("newer")
    assert newer == CollectionInfo("newer", 4)

"""The stand-in itself, driven by the official client with no VPA code in between: it must
reproduce the Weaviate behaviours the plugin is built around, or the plugin's tests prove
nothing. (What Weaviate does here is taken from its documentation and source; the stand-in is not
Weaviate, see README.)"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import httpx
import pytest
import weaviate
from weaviate.classes.config import Configure, DataType, Property, Tokenization
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter
from weaviate.classes.tenants import Tenant
from weaviate.exceptions import UnexpectedStatusCodeError, WeaviateBaseError, WeaviateQueryError
from weaviate_support import StandIn, start_standin, stop_standin


def connect(standin: StandIn, *, skip_init_checks: bool = True) -> weaviate.WeaviateClient:
    return standin.client(skip_init_checks=skip_init_checks)


@pytest.fixture
def client(standin: StandIn) -> Iterator[weaviate.WeaviateClient]:
    c = connect(standin)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def class_name() -> str:
    return "Standin" + uuid.uuid4().hex[:10]


def test_startup_probes_and_full_config(
    standin: StandIn, client: weaviate.WeaviateClient, class_name: str
) -> None:
    """meta, readiness, the OIDC probe and the gRPC health check all answer; a created class comes
    back with every default Weaviate fills in, so the client's full config parser accepts it."""
    assert client.is_ready() and client.is_live()
    assert client.get_meta()["version"] == "1.33.0"
    assert httpx.get(f"{standin.url}/v1/.well-known/openid-configuration").status_code == 404
    client._connection._ping_grpc("sync")
    client.collections.create(
        class_name,
        vector_config=Configure.Vectors.self_provided(name="default"),
        properties=[Property(name="title", data_type=DataType.TEXT)],
    )
    config = client.collections.use(class_name).config.get()
    assert config.vector_config["default"].vector_index_config.distance_metric.value == "cosine"
    assert config.properties[0].tokenization == Tokenization.WORD
    assert config.inverted_index_config.index_null_state is False
    assert class_name in client.collections.list_all()
    with pytest.raises(UnexpectedStatusCodeError) as caught:
        client.collections.create(class_name.lower())  # same name ignoring case
    assert caught.value.status_code == 422
    client.collections.delete(class_name)
    assert not client.collections.exists(class_name)


def test_autoschema_types_numbers_as_number_and_text_with_word_tokenization(
    client: weaviate.WeaviateClient, class_name: str
) -> None:
    """The trap the plugin avoids by declaring its properties: auto-schema reads an int back as a
    float, and word tokenization makes Equal a token match."""
    handle = client.collections.create(class_name, vector_config=Configure.Vectors.self_provided())
    handle.data.insert_many([DataObject(properties={"n": 3, "s": "Hello, World"}, vector=[1.0, 0.0])])
    props = handle.query.fetch_objects().objects[0].properties
    assert props == {"n": 3.0, "s": "Hello, World"} and isinstance(props["n"], float)
    types = {p.name: (p.data_type, p.tokenization) for p in handle.config.get().properties}
    assert types["n"][0] == DataType.NUMBER and types["s"] == (DataType.TEXT, Tokenization.WORD)
    assert len(handle.query.fetch_objects(filters=Filter.by_property("s").equal("hello")).objects) == 1
    client.collections.delete(class_name)


def test_filter_semantics(client: weaviate.WeaviateClient, class_name: str) -> None:
    handle = client.collections.create(
        class_name,
        vector_config=Configure.Vectors.self_provided(),
        properties=[
            Property(name="s", data_type=DataType.TEXT, tokenization=Tokenization.FIELD),
            Property(name="l", data_type=DataType.TEXT_ARRAY, tokenization=Tokenization.FIELD),
            Property(name="x", data_type=DataType.NUMBER),
            Property(name="hidden", data_type=DataType.TEXT, index_filterable=False, index_searchable=False),
        ],
    )
    handle.data.insert_many(
        [
            DataObject(properties={"s": "a", "l": ["a", "b"], "x": 0.0}, vector=[1.0, 0.0]),
            DataObject(properties={"s": " a ", "l": [], "x": -0.0}, vector=[0.0, 1.0]),
            DataObject(properties={}, vector=[1.0, 1.0]),
        ]
    )

    def count(where: object) -> int:
        return int(handle.aggregate.over_all(total_count=True, filters=where).total_count)

    assert count(Filter.by_property("s").equal("a")) == 2  # field tokenization trims
    assert count(Filter.by_property("s").not_equal("a")) == 1  # complement: the object without s
    assert count(Filter.not_(Filter.by_property("l").contains_any(["b"]))) == 2
    assert count(Filter.by_property("l").equal("b")) == 1  # Equal on an array: any element
    assert count(Filter.by_property("l").contains_all(["a", "b"])) == 1
    assert count(Filter.by_property("l").contains_none(["a"])) == 2
    assert count(Filter.by_property("x").greater_or_equal(0.0)) == 1  # -0.0 sorts below 0.0
    assert count(Filter.by_property("x").less_than(0.0)) == 1
    failures = [
        (Filter.by_property("s").is_none(True), "Nullstate must be indexed"),
        (Filter.by_property("nope").equal("a"), "no such prop with name 'nope'"),
        (Filter.by_property("x").equal("a"), 'cannot use "valueText" on type "number"'),
        (Filter.by_property("hidden").equal("a"), "requires inverted index"),
    ]
    for where, message in failures:
        with pytest.raises(WeaviateQueryError, match=message):
            count(where)
    client.collections.delete(class_name)


def test_null_state_counts_missing_empty_arrays_and_empty_strings_as_null(
    client: weaviate.WeaviateClient, class_name: str
) -> None:
    handle = client.collections.create(
        class_name,
        vector_config=Configure.Vectors.self_provided(),
        inverted_index_config=Configure.inverted_index(index_null_state=True),
        properties=[
            Property(name="s", data_type=DataType.TEXT, tokenization=Tokenization.FIELD),
            Property(name="l", data_type=DataType.TEXT_ARRAY, tokenization=Tokenization.FIELD),
        ],
    )
    handle.data.insert_many(
        [
            DataObject(properties={"s": "a", "l": ["x"]}, vector=[1.0, 0.0]),
            DataObject(properties={"s": "", "l": []}, vector=[1.0, 0.0]),
            DataObject(properties={}, vector=[1.0, 0.0]),
        ]
    )

    def count(where: object) -> int:
        return int(handle.aggregate.over_all(total_count=True, filters=where).total_count)

    assert count(Filter.by_property("s").is_none(True)) == 2
    assert count(Filter.by_property("l").is_none(True)) == 2
    assert count(Filter.by_property("l").is_none(False)) == 1
    client.collections.delete(class_name)


def test_dates_are_instants_kept_to_the_nanosecond(client: weaviate.WeaviateClient, class_name: str) -> None:
    """A date is parsed as Go parses RFC 3339, filtered as an instant (whatever offset the operand
    has), returned as RFC3339Nano (the client keeps microseconds); an unparsable one is refused."""
    handle = client.collections.create(
        class_name,
        vector_config=Configure.Vectors.self_provided(),
        properties=[Property(name="d", data_type=DataType.DATE)],
    )
    result = handle.data.insert_many(
        [
            DataObject(properties={"d": "2024-05-01T14:00:00.123456789+02:00"}, vector=[1.0, 0.0]),
            DataObject(properties={"d": dt.datetime(1700, 1, 1, tzinfo=dt.UTC)}, vector=[1.0, 0.0]),
            DataObject(properties={"d": "2024-05-01"}, vector=[1.0, 0.0]),
        ]
    )
    assert list(result.errors) == [2] and "RFC3339 formatted date" in result.errors[2].message
    noon = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
    got = sorted(o.properties["d"] for o in handle.query.fetch_objects().objects)
    assert got == [dt.datetime(1700, 1, 1, tzinfo=dt.UTC), noon]
    assert got[1].utcoffset() == dt.timedelta(hours=2)  # the offset written

    def count(where: object) -> int:
        return int(handle.aggregate.over_all(total_count=True, filters=where).total_count)

    assert count(Filter.by_property("d").greater_than(noon)) == 1  # ...123456789 > ...123456
    assert count(Filter.by_property("d").equal(noon)) == 0
    assert count(Filter.by_property("d").less_than(dt.datetime(1800, 1, 1, tzinfo=dt.UTC))) == 1
    assert (
        count(Filter.by_property("d").greater_or_equal(noon.astimezone(dt.timezone(-dt.timedelta(hours=5)))))
        == 1
    )
    with pytest.raises(WeaviateQueryError, match="RFC3339"):
        count(Filter.by_property("d").equal("yesterday"))
    client.collections.delete(class_name)


def test_cursor_api_lists_in_uuid_order_and_takes_no_filter(
    client: weaviate.WeaviateClient, class_name: str
) -> None:
    handle = client.collections.create(class_name, vector_config=Configure.Vectors.self_provided())
    ids = [uuid.uuid4() for _ in range(25)]
    handle.data.insert_many(
        [DataObject(properties={"n": i}, uuid=u, vector=[1.0, 0.0]) for i, u in enumerate(ids)]
    )
    seen: list[uuid.UUID] = []
    after = None
    while True:
        page = handle.query.fetch_objects(limit=7, after=after).objects
        if not page:
            break
        seen.extend(o.uuid for o in page)
        after = page[-1].uuid
    assert seen == sorted(ids, key=str)
    assert [o.uuid for o in handle.query.fetch_objects(limit=25).objects] == seen  # a listing, too
    with pytest.raises(WeaviateQueryError, match="where cannot be set with after and limit"):
        handle.query.fetch_objects(limit=5, after=ids[0], filters=Filter.by_property("n").equal(1))
    with pytest.raises(WeaviateQueryError, match="offset cannot be set with after and limit"):
        handle.query.fetch_objects(limit=5, after=ids[0], offset=2)
    client.collections.delete(class_name)


def test_patch_merges_properties_and_put_replaces_the_object(
    client: weaviate.WeaviateClient, class_name: str
) -> None:
    handle = client.collections.create(
        class_name,
        vector_config=Configure.Vectors.self_provided(name="default"),
        properties=[Property(name="a", data_type=DataType.INT), Property(name="b", data_type=DataType.TEXT)],
    )
    key = uuid.uuid4()
    handle.data.insert_many(
        [DataObject(properties={"a": 1, "b": "x"}, uuid=key, vector={"default": [0.5, 2.0]})]
    )
    handle.data.update(key, properties={"a": 2, "c": True})  # c: auto-schema
    obj = handle.query.fetch_object_by_id(key, include_vector=True)
    assert obj is not None and obj.properties == {"a": 2, "b": "x", "c": True}
    assert obj.vector["default"] == [0.5, 2.0]
    handle.data.update(key, properties={"b": None})  # a merge-patch null deletes the property
    obj = handle.query.fetch_object_by_id(key)
    assert obj is not None and obj.properties.get("b") is None
    with pytest.raises(UnexpectedStatusCodeError) as caught:
        handle.data.update(key, properties={"a": "two"})
    assert caught.value.status_code == 422
    with pytest.raises(UnexpectedStatusCodeError) as caught:
        handle.data.update(uuid.uuid4(), properties={"a": 3})
    assert caught.value.status_code == 404
    handle.data.replace(key, properties={"b": "y"}, vector={"default": [1.0, 0.0]})  # PUT: whole
    obj = handle.query.fetch_object_by_id(key, include_vector=True)
    assert obj is not None and obj.properties == {"b": "y"} and obj.vector["default"] == [1.0, 0.0]
    with pytest.raises(UnexpectedStatusCodeError) as caught:
        handle.data.replace(uuid.uuid4(), properties={"b": "z"})
    assert caught.value.status_code == 404  # never creates
    client.collections.delete(class_name)


def test_writes_are_refused_per_object(client: weaviate.WeaviateClient, class_name: str) -> None:
    handle = client.collections.create(
        class_name,
        vector_config=Configure.Vectors.self_provided(name="default"),
        properties=[Property(name="n", data_type=DataType.INT)],
    )
    result = handle.data.insert_many(
        [
            DataObject(properties={"n": 1}, vector={"default": [1.0, 0.0, 0.0]}),
            DataObject(properties={"n": 1.5}, vector={"default": [1.0, 0.0, 0.0]}),
            DataObject(properties={"n": "1"}, vector={"default": [1.0, 0.0, 0.0]}),
            DataObject(properties={"n": 2}, vector={"default": [1.0, 0.0]}),
            DataObject(properties={"n": 3}, vector={"other": [1.0, 0.0, 0.0]}),
        ]
    )
    messages = {i: e.message for i, e in result.errors.items()}
    assert sorted(messages) == [1, 2, 3, 4]
    assert "requires an integer" in messages[1]
    assert "not a number" in messages[2]
    assert "new node has a vector with length 2. Existing nodes have vectors with length 3" in messages[3]
    assert 'does not have named vector "other"' in messages[4]
    client.collections.delete(class_name)


def test_multi_tenancy_rules(client: weaviate.WeaviateClient, class_name: str) -> None:
    handle = client.collections.create(
        class_name,
        vector_config=Configure.Vectors.self_provided(),
        multi_tenancy_config=Configure.multi_tenancy(enabled=True),
    )
    with pytest.raises(WeaviateBaseError, match="without tenant"):
        handle.query.fetch_objects()
    with pytest.raises(WeaviateBaseError, match="tenant not found"):
        handle.with_tenant("t1").query.fetch_objects()
    handle.tenants.create([Tenant(name="t1")])
    assert handle.tenants.exists("t1") and not handle.tenants.exists("t2")
    assert list(handle.tenants.get()) == ["t1"]
    handle.with_tenant("t1").data.insert_many([DataObject(properties={"a": "x"}, vector=[1.0, 0.0])])
    assert len(handle.with_tenant("t1").query.fetch_objects().objects) == 1
    handle.tenants.remove(["t1"])
    assert list(handle.tenants.get()) == []
    client.collections.delete(class_name)


def test_autoschema_off_refuses_unknown_properties() -> None:
    standin = start_standin("--autoschema", "off")
    c = connect(standin)
    try:
        handle = c.collections.create("Strict", vector_config=Configure.Vectors.self_provided())
        with pytest.raises(WeaviateBaseError, match="no such prop with name 'n'"):
            handle.data.insert_many([DataObject(properties={"n": 1}, vector=[1.0, 0.0])])
        assert len(handle.query.fetch_objects().objects) == 0
    finally:
        c.close()
        stop_standin(standin)


def test_unimplemented_endpoints_say_so(standin: StandIn) -> None:
    response = httpx.get(f"{standin.url}/v1/objects")
    assert response.status_code == 501
    assert "stand-in does not implement" in response.json()["error"][0]["message"]

"""Vendor failures become VPA's typed errors, with the vendor's exception kept as the cause."""

from __future__ import annotations

import socket

import grpc
import httpx
import pytest
import weaviate
from vpa.errors import (
    CollectionNotFound,
    StoreAuthError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from vpa.models import Record
from vpa_weaviate.errors import translate_error
from vpa_weaviate.naming import encode_collection
from weaviate.exceptions import (
    UnexpectedStatusCodeError,
    WeaviateConnectionError,
    WeaviateQueryError,
)
from weaviate.proto.v1 import search_get_pb2, weaviate_pb2_grpc
from weaviate_support import StandIn, start_standin, stop_standin

API_KEY = "stand-in-key"


@pytest.fixture(scope="module")
def keyed_standin():
    server = start_standin(api_key=API_KEY)
    try:
        yield server
    finally:
        stop_standin(server)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "wrong-key"])
async def test_missing_or_wrong_api_key_is_store_auth_error(keyed_standin: StandIn, key: str | None) -> None:
    store = keyed_standin.store(api_key=key)
    try:
        with pytest.raises(StoreAuthError) as caught:
            await store.list_collections()
        assert isinstance(caught.value.__cause__, UnexpectedStatusCodeError)
        assert caught.value.__cause__.status_code == 401
        assert API_KEY not in str(caught.value)
        health = await store.health()
        assert not health.ok and "StoreAuthError" in health.detail
    finally:
        await store.close()


async def test_the_right_api_key_works_over_rest_and_grpc(keyed_standin: StandIn) -> None:
    store = keyed_standin.store(api_key=API_KEY)
    try:
        await store.create_collection("keyed", 2)
        await store.upsert("keyed", [Record("a", [1, 0], "", {"k": 1})])
        assert await store.count("keyed", {"k": 1}) == 1
        assert [h.id for h in await store.query("keyed", [1, 0], 1)] == ["a"]
        assert await store.drop_collection("keyed")
    finally:
        await store.close()


def test_grpc_without_credentials_is_unauthenticated_and_maps_to_store_auth_error(
    keyed_standin: StandIn,
) -> None:
    """The stand-in refuses a gRPC call without the key (UNAUTHENTICATED); the client wraps that
    in WeaviateQueryError inside its ``except RpcError`` block, and translate_error finds the status."""
    with grpc.insecure_channel(f"127.0.0.1:{keyed_standin.grpc_port}") as channel:
        stub = weaviate_pb2_grpc.WeaviateStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Search(search_get_pb2.SearchRequest(collection="X", limit=1), timeout=5)
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        try:
            try:
                raise caught.value
            except grpc.RpcError as rpc_error:
                raise WeaviateQueryError(str(rpc_error.details()), "GRPC search")  # noqa: B904
        except WeaviateQueryError as wrapped:
            assert isinstance(translate_error(wrapped, where="search"), StoreAuthError)


# --- availability ----------------------------------------------------------------------------------


async def test_nothing_listening_is_store_unavailable() -> None:
    from vpa_weaviate.settings import WeaviateSettings
    from vpa_weaviate.store import WeaviateStore

    port = _free_port()
    store = WeaviateStore(
        WeaviateSettings(host="127.0.0.1", port=port, grpc_port=_free_port(), init_timeout=2)
    )
    try:
        with pytest.raises(StoreUnavailable):
            await store.create_collection("x", 2)
        assert not (await store.health()).ok
    finally:
        await store.close()


async def test_wrong_grpc_port_is_found_at_connect(standin: StandIn) -> None:
    """REST answers but gRPC does not: the store's own gRPC health check fails fast at connect
    instead of letting a search retry for a minute."""
    store = standin.store(grpc_port=_free_port(), init_timeout=2)
    try:
        with pytest.raises(StoreUnavailable, match=r"(?i)grpc"):
            await store.list_collections()
    finally:
        await store.close()


async def test_server_gone_mid_session_is_store_unavailable() -> None:
    server = start_standin()
    store = server.store(init_timeout=2)
    try:
        await store.create_collection("gone", 2)
        stop_standin(server)
        with pytest.raises(StoreUnavailable):
            await store.list_collections()
    finally:
        await store.close()
        stop_standin(server)


# --- what the server refuses ---------------------------------------------------------------------


async def test_server_side_dimension_mismatch_is_a_store_error(standin: StandIn, unique_name: str) -> None:
    """Weaviate fixes a vector index's dimension with the first vector; if another client wrote
    a 3-d vector into a 4-d VPA collection, VPA's 4-d write is refused by the server."""
    store = standin.store()
    try:
        await store.create_collection(unique_name, 4)
        client = standin.client()
        try:
            client.collections.use(encode_collection(unique_name)).data.insert_many(
                [
                    weaviate.classes.data.DataObject(
                        properties={"vpa_id": "foreign"}, vector={"default": [1, 2, 3]}
                    )
                ]
            )
        finally:
            client.close()
        with pytest.raises(StoreError, match="length 4"):
            await store.upsert(unique_name, [Record("a", [1, 2, 3, 4], "", {})])
    finally:
        await store.drop_collection(unique_name)
        await store.close()


async def test_unknown_collection_is_collection_not_found(standin: StandIn) -> None:
    store = standin.store()
    try:
        for call in (
            store.count("never"),
            store.get("never", ["a"]),
            store.query("never", [1, 0], 1),
            store.upsert("never", [Record("a", [1, 0], "", {})]),
        ):
            with pytest.raises(CollectionNotFound):
                await call
    finally:
        await store.close()


async def test_collection_dropped_by_another_instance_is_collection_not_found(standin: StandIn) -> None:
    first, second = standin.store(), standin.store()
    try:
        await first.create_collection("dropped", 2)
        await first.upsert("dropped", [Record("a", [1, 0], "", {"k": 1})])
        await second.drop_collection("dropped")
        with pytest.raises(CollectionNotFound):
            await first.count("dropped", {"k": 1})  # first still has the definition cached
        assert encode_collection("dropped") not in first._schemas  # and its schema
        with pytest.raises(CollectionNotFound):
            await first.count("dropped")  # and forgot it after the first miss
    finally:
        await first.close()
        await second.close()


# --- the mapping itself --------------------------------------------------------------------------


def _status_error(code: int) -> UnexpectedStatusCodeError:
    return UnexpectedStatusCodeError("call", httpx.Response(code, json={"error": [{"message": "x"}]}))


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_status_error(401), StoreAuthError),
        (_status_error(403), StoreAuthError),
        (_status_error(503), StoreUnavailable),
        (_status_error(500), StoreError),
        (WeaviateConnectionError("refused"), StoreUnavailable),
        (httpx.ConnectError("refused"), StoreUnavailable),
        (httpx.ReadTimeout("slow"), StoreTimeout),
        (TimeoutError(), StoreTimeout),
        (WeaviateQueryError("could not find class Vpax in schema", "GRPC search"), CollectionNotFound),
        (RuntimeError("something else"), StoreError),
    ],
)
def test_translate_error(exc: Exception, expected: type[Exception]) -> None:
    error = translate_error(exc, where="search", collection="x")
    assert type(error) is expected
    if expected is CollectionNotFound:
        assert error.name == "x"  # type: ignore[attr-defined]


def test_translate_not_found_needs_a_collection_context() -> None:
    assert type(translate_error(_status_error(404), where="fetch")) is StoreError
    assert type(translate_error(_status_error(404), where="fetch", collection="c")) is CollectionNotFound

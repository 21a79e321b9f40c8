"""Vendor exceptions map to VPA's typed errors (built from the vendor's own exception classes)."""

from __future__ import annotations

import grpc
import httpx
import pytest
from grpc.aio import AioRpcError, Metadata
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
from vpa.errors import (
    CollectionNotFound,
    StoreAuthError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from vpa_qdrant.errors import translate_error
from vpa_qdrant.settings import QdrantSettings
from vpa_qdrant.store import QdrantStore


def response(status: int, body: bytes = b'{"status": {"error": "boom"}}') -> UnexpectedResponse:
    return UnexpectedResponse(status, "reason", body, httpx.Headers())


def rpc(code: grpc.StatusCode) -> AioRpcError:
    return AioRpcError(code, Metadata(), Metadata(), details="details")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (response(401), StoreAuthError),
        (response(403), StoreAuthError),
        (response(404), CollectionNotFound),
        (response(408), StoreTimeout),
        (response(429), StoreUnavailable),
        (response(503), StoreUnavailable),
        (response(400), StoreError),
        (response(500, b"not json"), StoreUnavailable),
        (ResourceExhaustedResponse("slow down", 3), StoreUnavailable),
        (ResponseHandlingException(httpx.ConnectError("refused")), StoreUnavailable),
        (ResponseHandlingException(httpx.ReadTimeout("slow")), StoreTimeout),
        (httpx.ConnectTimeout("slow"), StoreTimeout),
        (rpc(grpc.StatusCode.UNAVAILABLE), StoreUnavailable),
        (rpc(grpc.StatusCode.DEADLINE_EXCEEDED), StoreTimeout),
        (rpc(grpc.StatusCode.UNAUTHENTICATED), StoreAuthError),
        (rpc(grpc.StatusCode.PERMISSION_DENIED), StoreAuthError),
        (rpc(grpc.StatusCode.NOT_FOUND), CollectionNotFound),
        (rpc(grpc.StatusCode.INVALID_ARGUMENT), StoreError),
        (ValueError("Collection c not found"), CollectionNotFound),
        (
            RuntimeError("Storage folder /x is already accessed by another instance of Qdrant client."),
            StoreUnavailable,
        ),
        (KeyError("anything else"), StoreError),
    ],
)
def test_translate_error(exc, expected):
    mapped = translate_error(exc, where="count", collection="c")
    assert type(mapped) is expected
    store = QdrantStore(QdrantSettings(in_memory=True))  # its vendor_errors use translate_error
    with pytest.raises(expected) as info, store.vendor_errors("count", "c"):
        raise exc
    assert info.value.__cause__ is exc


def test_not_found_without_a_collection_is_a_store_error():
    assert type(translate_error(response(404), where="get_collections")) is StoreError


def test_messages_do_not_leak_the_api_key():
    message = str(translate_error(response(401), where="count", collection="c"))
    assert "key" not in message.lower().replace("vpa_vector_db_api_key", "")

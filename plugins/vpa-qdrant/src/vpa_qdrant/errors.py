"""qdrant-client's exceptions → VPA's typed errors (the store's `translate_error`).

What the client raises: `UnexpectedResponse` (a REST status), `ResponseHandlingException` (httpx
failures, wrapped), `ResourceExhaustedResponse` (rate limits), gRPC's `AioRpcError` (a status
code), and in local mode plain ``ValueError``/``RuntimeError`` with a message. A message never
carries the API key.
"""

from __future__ import annotations

import httpx
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
from vpa.errors import (
    CollectionNotFound,
    StoreAuthError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    VPAError,
)

CREDENTIALS = "check VPA_VECTOR_DB_API_KEY"


def translate_error(exc: BaseException, *, where: str, collection: str | None = None) -> BaseException:
    """The VPA error for ``exc``, raised by qdrant-client while doing ``where`` on ``collection``.

    A not-found answer is `CollectionNotFound` only when the call was on a collection."""
    if isinstance(exc, VPAError):
        return exc
    if isinstance(exc, UnexpectedResponse):
        status = exc.status_code or 0
        message = _server_message(exc)
        if status in (401, 403):
            return StoreAuthError(f"Qdrant rejected the credentials ({status}): {CREDENTIALS}")
        if status == 404 and collection is not None:
            return CollectionNotFound(collection)
        if status in (408, 504):
            return StoreTimeout(message)
        if status == 429 or status >= 500:
            return StoreUnavailable(message)
        return StoreError(message)
    if isinstance(exc, ResourceExhaustedResponse):
        return StoreUnavailable(f"Qdrant is rate limiting requests (retry after {exc.retry_after_s}s)")
    if isinstance(exc, ResponseHandlingException):
        source = exc.source
        if isinstance(source, Exception):
            return translate_error(source, where=where, collection=collection)
        return StoreError(f"Qdrant {where}: {exc}")
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return StoreTimeout(f"Qdrant did not answer in time: {type(exc).__name__}")
    if isinstance(exc, httpx.TransportError | ConnectionError):
        return StoreUnavailable(f"cannot reach Qdrant: {type(exc).__name__}: {exc}")
    grpc_error = _grpc_error(exc, collection)
    if grpc_error is not None:
        return grpc_error
    text = str(exc)
    if isinstance(exc, ValueError) and collection is not None and _is_not_found(text):
        return CollectionNotFound(collection)  # local mode: "Collection x not found"
    if isinstance(exc, RuntimeError) and "already accessed by another instance" in text:
        return StoreUnavailable(
            f"{text} (the embedded engine allows one process per folder; use a Qdrant server to share it)"
        )
    return StoreError(f"Qdrant {where} failed: {type(exc).__name__}: {text[:300]}")


def _server_message(exc: UnexpectedResponse) -> str:
    try:
        error = exc.structured().get("status", {}).get("error")
    except Exception:
        error = None
    detail = f": {str(error)[:200]}" if error else ""
    return f"Qdrant answered {exc.status_code} {exc.reason_phrase}{detail}"


def _is_not_found(text: str) -> bool:
    text = text.lower()
    return "not found" in text or "doesn't exist" in text or "does not exist" in text


def _grpc_error(exc: BaseException, collection: str | None) -> VPAError | None:
    code_of = getattr(exc, "code", None)
    if not callable(code_of) or type(exc).__module__.split(".")[0] != "grpc":
        return None
    try:
        code = code_of()
        details = exc.details() if callable(getattr(exc, "details", None)) else ""  # type: ignore[attr-defined]
    except Exception:
        return None
    name = getattr(code, "name", str(code))
    message = f"Qdrant gRPC {name}: {str(details or '')[:200]}"
    if name in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return StoreAuthError(f"Qdrant rejected the credentials ({name}): {CREDENTIALS}")
    if name == "NOT_FOUND" and collection is not None:
        return CollectionNotFound(collection)
    if name == "DEADLINE_EXCEEDED":
        return StoreTimeout(message)
    if name in ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "ABORTED"):
        return StoreUnavailable(message)
    return StoreError(message)

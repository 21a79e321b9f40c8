"""Map the Weaviate client's exceptions onto VPA's typed errors (the vendor's stays as the cause).

The v4 client wraps gRPC failures in its own exceptions (``WeaviateQueryError`` and friends)
inside the ``except RpcError`` block, so the gRPC status is found on the exception's context
chain; REST failures carry the HTTP status code.
"""

from __future__ import annotations

import re

import grpc
import httpx
from vpa.errors import (
    CollectionNotFound,
    StoreAuthError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    VPAError,
)
from weaviate import exceptions as wx

_NOT_FOUND = re.compile(
    r"(could not find class|class \S+ (?:was )?not found|no such class|collection \S+ not found|"
    r"class not found|does not exist)",
    re.IGNORECASE,
)
_AUTH = re.compile(
    r"(unauthenticated|unauthorized|invalid api key|anonymous access not enabled|forbidden)", re.I
)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 16:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _grpc_code(exc: BaseException) -> grpc.StatusCode | None:
    for item in _chain(exc):
        if isinstance(item, grpc.RpcError):
            code = getattr(item, "code", None)
            if callable(code):
                try:
                    return code()  # type: ignore[no-any-return]
                except Exception:  # a half-built error object
                    return None
    return None


def _status(exc: BaseException) -> int | None:
    for item in _chain(exc):
        if isinstance(item, wx.UnexpectedStatusCodeError):
            return item.status_code
        if isinstance(item, httpx.HTTPStatusError):
            return item.response.status_code
    return None


def describe(exc: BaseException) -> str:
    """One line for the message: the vendor's own, shortened (it never contains our API key)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 400 else text[:397] + "..."


def translate_error(exc: BaseException, *, where: str, collection: str | None = None) -> BaseException:
    """The VPA error for a vendor exception raised while doing ``where`` (raise it ``from exc``);
    a missing class is `CollectionNotFound` only when ``collection`` says which one."""
    if isinstance(exc, VPAError):
        return exc
    message = f"weaviate {where} failed: {describe(exc)}"
    code = _grpc_code(exc)
    status = _status(exc)
    if (
        isinstance(exc, wx.InsufficientPermissionsError)
        or status in (401, 403)
        or code
        in (
            grpc.StatusCode.UNAUTHENTICATED,
            grpc.StatusCode.PERMISSION_DENIED,
        )
    ):
        return StoreAuthError(f"weaviate rejected the credentials during {where}: {describe(exc)}")
    if code is grpc.StatusCode.DEADLINE_EXCEEDED or isinstance(
        exc, wx.WeaviateTimeoutError | httpx.TimeoutException | TimeoutError
    ):
        return StoreTimeout(message)
    if (
        code is grpc.StatusCode.UNAVAILABLE
        or isinstance(
            exc,
            wx.WeaviateConnectionError
            | wx.WeaviateStartUpError
            | wx.WeaviateGRPCUnavailableError
            | wx.WeaviateRetryError
            | wx.WeaviateClosedClientError
            | httpx.TransportError
            | ConnectionError,
        )
        or (status is not None and status in (502, 503, 504))
    ):
        return StoreUnavailable(message)
    text = str(exc)
    if collection is not None and (status == 404 or _NOT_FOUND.search(text)):
        return CollectionNotFound(collection)
    if _AUTH.search(text):
        return StoreAuthError(f"weaviate rejected the credentials during {where}: {describe(exc)}")
    return StoreError(message)

"""Map the Pinecone SDK's exceptions to VPA's typed errors (the vendor error stays as the cause)."""

from __future__ import annotations

from pinecone.errors.exceptions import (
    ApiError,
    ForbiddenError,
    NotFoundError,
    PayloadTooLargeError,
    PineconeConnectionError,
    PineconeError,
    PineconeTimeoutError,
    RateLimitError,
    ServiceError,
    UnauthorizedError,
)
from vpa.errors import (
    BatchTooLarge,
    CollectionNotFound,
    StoreAuthError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    VPAError,
)


def translate_error(exc: BaseException, *, where: str, collection: str | None = None) -> BaseException:
    """The VPA error for a Pinecone SDK (or transport) exception raised while doing ``where``;
    a 404 during a call on ``collection`` is `CollectionNotFound` (the index is gone: a namespace
    that merely holds nothing is handled by the store). Messages never carry the key."""
    if isinstance(exc, VPAError):
        return exc
    if isinstance(exc, UnauthorizedError | ForbiddenError):
        return StoreAuthError(f"{where}: Pinecone rejected the API key ({_status(exc)}): {_message(exc)}")
    if isinstance(exc, NotFoundError):
        if collection is not None:
            return CollectionNotFound(collection)
        return StoreError(f"{where}: Pinecone: not found: {_message(exc)}")
    if isinstance(exc, PineconeTimeoutError):
        return StoreTimeout(f"{where}: Pinecone did not answer in time: {exc}")
    if isinstance(exc, PineconeConnectionError | ConnectionError | OSError):
        return StoreUnavailable(f"{where}: cannot reach Pinecone: {exc}")
    if isinstance(exc, RateLimitError | ServiceError):
        return StoreUnavailable(
            f"{where}: Pinecone is unavailable or throttling ({_status(exc)}): {_message(exc)}"
        )
    if isinstance(exc, PayloadTooLargeError):
        return BatchTooLarge(f"{where}: Pinecone refused the request size: {_message(exc)}")
    if isinstance(exc, ApiError):
        return StoreError(f"{where}: Pinecone refused the request ({_status(exc)}): {_message(exc)}")
    if isinstance(exc, PineconeError):
        return StoreError(f"{where}: Pinecone client error: {exc}")
    return StoreError(f"{where}: unexpected error from the Pinecone client: {type(exc).__name__}: {exc}")


def _status(exc: BaseException) -> str:
    return str(getattr(exc, "status_code", None) or "?")


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or exc)

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


def map_error(exc: BaseException, *, collection: str | None = None) -> VPAError:
    """The VPA error for a Pinecone SDK (or transport) exception. Messages never carry the key."""
    if isinstance(exc, VPAError):
        return exc
    if isinstance(exc, UnauthorizedError | ForbiddenError):
        return StoreAuthError(f"Pinecone rejected the API key ({_status(exc)}): {_message(exc)}")
    if isinstance(exc, NotFoundError):
        if collection is not None:
            return CollectionNotFound(collection)
        return StoreError(f"Pinecone: not found: {_message(exc)}")
    if isinstance(exc, PineconeTimeoutError):
        return StoreTimeout(f"Pinecone did not answer in time: {exc}")
    if isinstance(exc, PineconeConnectionError | ConnectionError | OSError):
        return StoreUnavailable(f"cannot reach Pinecone: {exc}")
    if isinstance(exc, RateLimitError | ServiceError):
        return StoreUnavailable(f"Pinecone is unavailable or throttling ({_status(exc)}): {_message(exc)}")
    if isinstance(exc, PayloadTooLargeError):
        return BatchTooLarge(f"Pinecone refused the request size: {_message(exc)}")
    if isinstance(exc, ApiError):
        return StoreError(f"Pinecone refused the request ({_status(exc)}): {_message(exc)}")
    if isinstance(exc, PineconeError):
        return StoreError(f"Pinecone client error: {exc}")
    return StoreError(f"unexpected error from the Pinecone client: {type(exc).__name__}: {exc}")


def _status(exc: BaseException) -> str:
    return str(getattr(exc, "status_code", None) or "?")


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or exc)

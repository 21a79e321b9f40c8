"""pymilvus and gRPC exceptions → VPA's typed errors, by `translate_error` (the original is ``__cause__``)."""

from __future__ import annotations

from typing import Any

from vpa.errors import (
    CollectionNotFound,
    DependencyMissing,
    StoreAuthError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    VPAError,
)

try:  # grpc comes with pymilvus; keep the mapping importable without it anyway
    import grpc
except ImportError:  # pragma: no cover
    grpc = None  # type: ignore[assignment]

#: Milvus server error codes (merr) and legacy status codes we recognise.
COLLECTION_NOT_FOUND = 100
CONNECT_FAILED = 2
RATE_LIMITED = (8, 9)
_AUTH_WORDS = (
    "unauthenticated",
    "authenticat",
    "credential",
    "permission denied",
    "privilege",
    "not permitted",
    "access denied",
    "invalid token",
    "wrong password",
)
_NOT_FOUND_WORDS = ("not found", "not exist", "can't find")


def _grpc_code(exc: BaseException) -> Any:
    code = getattr(exc, "code", None)
    if callable(code):
        try:
            return code()
        except Exception:  # pragma: no cover - a broken RpcError
            return None
    return code


def _cause_code(exc: BaseException) -> Any:
    """The gRPC status of the first `grpc.RpcError` among ``exc``'s causes. pymilvus wraps the
    server's UNAUTHENTICATED answer to its connect handshake in a ``MilvusException`` with code 2
    ("Fail connecting to server ..., illegal connection params or server unavailable"), the
    RpcError kept as ``__cause__``: without looking there a wrong token reads as an outage."""
    seen = 0
    cause = exc.__cause__ or exc.__context__
    while cause is not None and seen < 8:
        if grpc is not None and isinstance(cause, grpc.RpcError):
            code = _grpc_code(cause)
            if isinstance(code, grpc.StatusCode):
                return code
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return None


def _auth_like(text: str) -> bool:
    return any(word in text for word in _AUTH_WORDS)


def translate_error(exc: BaseException, *, where: str, collection: str | None = None) -> VPAError:
    """The VPA error for a vendor exception raised while doing ``where`` (`VectorStore.translate_error`)."""
    if isinstance(exc, VPAError):
        return exc
    name = type(exc).__name__
    message = str(getattr(exc, "message", "") or exc)
    lowered = message.lower()
    code = _grpc_code(exc)
    denied = _cause_code(exc)
    if grpc is not None and denied in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return StoreAuthError(f"Milvus rejected the credentials during {where}")
    if grpc is not None and isinstance(code, grpc.StatusCode):
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return StoreAuthError(f"Milvus rejected the credentials during {where}")
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return StoreTimeout(f"Milvus did not answer in time during {where}")
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN):
            return StoreUnavailable(f"Milvus is unreachable during {where}: {message}")
    if name == "ConnectionConfigException":
        if "milvus-lite is required" in lowered:
            return DependencyMissing("Milvus Lite is not installed: pip install 'vpa-milvus[lite]'")
        return StoreUnavailable(
            f"cannot open Milvus during {where}: {message} "
            "(a Milvus Lite file is used by one process at a time)"
        )
    compatible = getattr(exc, "compatible_code", None)
    not_found = code == COLLECTION_NOT_FOUND or (
        "collection" in lowered and any(w in lowered for w in _NOT_FOUND_WORDS)
    )
    if not_found and collection is not None:
        return CollectionNotFound(collection)
    if _auth_like(lowered) or compatible == 3:  # common_pb2.PermissionDenied
        return StoreAuthError(f"Milvus rejected the credentials during {where}")
    if "retry timeout" in lowered or "timed out" in lowered or "timeout" in lowered:
        return StoreTimeout(f"Milvus did not answer in time during {where}: {message}")
    if code == CONNECT_FAILED or "fail connecting" in lowered or "server unavailable" in lowered:
        return StoreUnavailable(f"Milvus is unreachable during {where}: {message}")
    if code in RATE_LIMITED:
        return StoreUnavailable(f"Milvus refused the request (rate limit or quota) during {where}: {message}")
    if isinstance(exc, OSError):
        return StoreUnavailable(f"Milvus I/O failed during {where}: {name}: {message}")
    return StoreError(f"Milvus failed during {where}: {name}: {message}")

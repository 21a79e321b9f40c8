"""Who is calling and how much they may do: keys, roles, tenants, rate limits and request caps.

- Keys go through the auth hook (`VPAConfig.authenticator`, ``api-keys`` by default), sent as
  ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. A missing, unknown or revoked key is
  401; a role that does not allow the action is 403. With ``VPA_AUTH_ENABLED=false`` every caller is
  an unscoped admin (development only; production refuses it).
- The key file is re-read when it changes on disk, so ``vpa keys create`` and ``vpa keys revoke``
  take effect on a running server at the next request.
- A token bucket per key (per client address when auth is off): ``VPA_RATE_LIMIT_PER_MINUTE``
  tokens a minute, up to a burst; an empty bucket is 429 with ``Retry-After``.
- At most ``VPA_MAX_CONCURRENT_REQUESTS`` requests are handled at once; the next one is 503 with
  ``Retry-After`` rather than queued without bound. A request body larger than the limit is 413,
  before it is read (``Content-Length``) or as soon as it grows past it (chunked).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import attrs
from cachetools import LRUCache

from vpa.auth.base import Action, Authenticator, Principal, Role
from vpa.errors import AuthenticationError, PermissionDenied, ValidationError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ANONYMOUS = "anonymous"
MAX_TENANT_LENGTH = 128
TENANT_RE = re.compile(r"[^/\x00-\x1f\x7f]{1,128}")


def check_tenant_name(tenant: Any) -> str:
    """A tenant a key may carry: 1-128 characters, no '/' (ids are prefixed by it), no control characters."""
    if not isinstance(tenant, str) or not TENANT_RE.fullmatch(tenant) or not tenant.strip():
        raise ValidationError(
            f"tenant must be 1 to {MAX_TENANT_LENGTH} characters without '/' or control characters, "
            f"got {tenant!r}"
        )
    return tenant


class HTTPError(Exception):
    """An error of the HTTP layer: answered with the error envelope and this status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}


@attrs.frozen
class Caller:
    """The authenticated caller. ``tenant`` None means unscoped (only when auth is off)."""

    key_id: str
    role: Role
    tenant: str | None
    name: str = ""

    @classmethod
    def from_principal(cls, principal: Principal) -> Caller:
        return cls(principal.key_id, Role(principal.role), principal.tenant, principal.name)


class KeyRing:
    """The configured authenticator, rebuilt when its key file changes on disk.

    `ApiKeyAuthenticator` reads its file once; the CLI and the admin API write it atomically. So the
    file's (mtime, size, inode) is compared at most every ``check_interval`` seconds, and a change
    loads a fresh authenticator: a revoked key stops working on the next request.
    """

    def __init__(self, factory: Callable[[], Authenticator], check_interval: float = 0.0) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self.authenticator = factory()
        self._check_interval = check_interval
        self._checked = 0.0
        self._stamp = self._file_stamp()

    @property
    def path(self) -> Path | None:
        path = getattr(self.authenticator, "path", None)
        return Path(path) if path is not None else None

    def _file_stamp(self) -> tuple[int, int, int] | None:
        path = self.path
        if path is None:
            return None
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return (0, 0, 0)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def current(self) -> Authenticator:
        now = time.monotonic()
        if self.path is not None and now - self._checked >= self._check_interval:
            self._checked = now
            stamp = self._file_stamp()
            if stamp != self._stamp:
                with self._lock:
                    if stamp != self._stamp:
                        self.authenticator = self._factory()
                        self._stamp = stamp
        return self.authenticator

    def modify(self, change: Callable[[Authenticator], Any]) -> Any:
        """Apply ``change`` (create or revoke a key) to the file's latest state, under the file lock,
        so a concurrent ``vpa keys`` command and this server never lose each other's updates."""
        with self._lock, key_file_lock(self.path):
            self.authenticator = self._factory()
            result = change(self.authenticator)
            self._stamp = self._file_stamp()
            return result


@contextlib.contextmanager
def key_file_lock(path: Path | None) -> Iterator[None]:
    """An exclusive advisory lock beside the key file, held while it is read, changed and written."""
    if path is None:
        yield
        return
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def key_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key from ``Authorization: Bearer`` or ``X-API-Key``; an unusable Authorization is 401."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationError("the Authorization header must read 'Bearer <key>'")
        if x_api_key and x_api_key.strip() != value.strip():
            raise AuthenticationError("Authorization and X-API-Key carry different keys")
        return value.strip()
    return x_api_key.strip() if x_api_key else None


def authorize(caller: Caller, action: Action) -> None:
    from vpa.auth.base import ALLOWED

    if action not in ALLOWED[caller.role]:
        raise PermissionDenied(f"a {caller.role} key may not {action}")


def registry_for(
    config: Any, kinds: tuple[str, ...] = ("store", "embedder", "chunker", "cache", "auth")
) -> Any:
    """The plugin registry for ``config``. When every component it names is built into the core,
    the entry-point plugins are not imported (they cannot replace a built-in name, so the result is
    the same) — importing every installed vendor client costs seconds at each start."""
    from vpa.plugins import Registry, get_registry

    names = {
        "store": config.provider,
        "embedder": config.embedder,
        "chunker": config.chunker,
        "cache": config.cache,
        "auth": config.authenticator,
    }
    builtins = Registry(load_entry_points=False)
    if all(names[kind] in builtins.names(kind) for kind in kinds):
        return builtins
    return get_registry()


# --- rate limit ------------------------------------------------------------------------------


class TokenBucketLimiter:
    """One token bucket per key: ``rate_per_minute`` tokens a minute, at most ``burst`` saved up."""

    def __init__(self, rate_per_minute: float, burst: int, max_buckets: int = 100_000) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst)
        self._buckets: LRUCache[str, tuple[float, float]] = LRUCache(max_buckets)
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """Take a token; 0.0 when allowed, else the seconds until a token is available."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def check(self, key: str) -> None:
        wait = self.take(key)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise HTTPError(
                429,
                "rate_limited",
                f"rate limit exceeded; retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )


# --- ASGI middleware -------------------------------------------------------------------------


async def send_error(
    send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> None:
    """Answer with the error envelope directly at the ASGI level (before the app is reached)."""
    import json

    body = json.dumps({"status": "error", "error": {"code": code, "message": message}}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class ConcurrencyLimit:
    """At most ``limit`` requests in the app at once; the next gets 503 and Retry-After: 1.

    Paths in ``exempt`` (health, metrics) are never refused, so probes see an overloaded server."""

    def __init__(self, app: ASGIApp, limit: int, exempt: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:  # single-threaded event loop: check-and-increment is atomic
            scope.setdefault("vpa", {})["rejected"] = "overloaded"
            await send_error(
                send,
                503,
                "overloaded",
                f"the server is handling {self.limit} requests (VPA_MAX_CONCURRENT_REQUESTS); retry shortly",
                {"Retry-After": "1"},
            )
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


class BodyLimit:
    """Refuse bodies larger than ``limit`` bytes with 413, reading at most ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"the request body is larger than {self.limit} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_error(send, 400, "bad_request", "Content-Length is not a number")
                    return
                if declared > self.limit:
                    await send_error(send, 413, "payload_too_large", message, {"Connection": "close"})
                    return
        # Read the whole body here (bounded by the limit), then hand it to the app in one piece.
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                return
            chunk = event.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await send_error(send, 413, "payload_too_large", message, {"Connection": "close"})
                return
            chunks.append(chunk)
            if not event.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def run_sync(func: Callable[..., Any], *args: Any) -> Awaitable[Any]:
    """Run blocking work (key file writes) off the event loop."""
    return asyncio.to_thread(func, *args)

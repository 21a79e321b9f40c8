"""Who is calling and how much they may do: keys, roles, tenants, rate limits and request caps.

- Keys go through the auth hook (`VPAConfig.authenticator`, ``api-keys`` by default), sent as
  ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` — once: two of either header is 400
  ``duplicate_credentials``. A missing, unknown or revoked key is 401; a role that does not allow
  the action is 403. With ``VPA_AUTH_ENABLED=false`` every caller is an unscoped admin
  (development only; production refuses it).
- `Gate` decides all of that from the request line and headers alone, before a byte of the body
  is read: a caller without a valid key, over its rate or with the wrong role costs one header
  parse, never a concurrency slot or a body read.
- The key file is re-read when it changes on disk, so ``vpa keys create`` and ``vpa keys revoke``
  take effect on a running server at the next request.
- A token bucket per key (per client address when auth is off): ``VPA_RATE_LIMIT_PER_MINUTE``
  tokens a minute, up to a burst; an empty bucket is 429 with ``Retry-After``. The buckets are in
  this process's memory, or in Redis with ``VPA_REDIS_URL`` (so is the key store,
  `vpa.auth.redis_store`): then the rate holds across every replica, and a revocation on one is
  seen by all. Redis unreachable is 503 ``auth_unavailable``, never a request let through unchecked.
- At most ``VPA_MAX_CONCURRENT_REQUESTS`` authenticated requests are handled at once; the next
  one is 503 with ``Retry-After`` rather than queued without bound. A request body larger than the
  limit is 413, before it is read (``Content-Length``) or as soon as it grows past it (chunked); a
  body that stops arriving is 408 (the deadline is kept by `vpa.server.connections`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import attrs
from cachetools import LRUCache

from vpa.auth.base import MAX_TENANT_LENGTH as MAX_TENANT_LENGTH  # re-exported for the CLI
from vpa.auth.base import Action, Authenticator, AuthUnavailable, Principal, Role
from vpa.auth.base import check_tenant_name as check_tenant_name
from vpa.errors import AuthenticationError, PermissionDenied, VPAError
from vpa.log import get_logger

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ANONYMOUS = "anonymous"
CREDENTIAL_HEADERS = (b"authorization", b"x-api-key")

log = get_logger("vpa.server")


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
    """The authenticated caller. ``tenant`` None means every tenant's figures: an operator key, or
    anyone when auth is off (then the caller is an unscoped admin)."""

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
            if self.path is not None:  # a store without a file (Redis) is always current
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

    from vpa.auth.api_keys import ensure_private_folder
    from vpa.files import open_private

    ensure_private_folder(path.parent)
    fd = open_private(path.with_name(path.name + ".lock"))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


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


def key_from_scope(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key of a request from its raw headers. Two ``Authorization`` or two ``X-API-Key``
    headers are refused (400 ``duplicate_credentials``): which one counts would be a guess, and a
    proxy and this server may guess differently."""
    found: dict[bytes, str] = {}
    for name, value in headers:
        if name in CREDENTIAL_HEADERS:
            if name in found:
                header = "Authorization" if name == b"authorization" else "X-API-Key"
                raise HTTPError(
                    400,
                    "duplicate_credentials",
                    f"the request carries more than one {header} header; send the key once",
                    field=header,
                )
            found[name] = value.decode("latin-1")
    return key_from_headers(found.get(b"authorization"), found.get(b"x-api-key"))


def authorize(caller: Caller, *actions: Action) -> None:
    """Pass when the caller's role allows any of ``actions``; else `PermissionDenied`."""
    from vpa.auth.base import ALLOWED

    if not any(action in ALLOWED[caller.role] for action in actions):
        wanted = " or ".join(str(a) for a in actions)
        raise PermissionDenied(f"a {caller.role} key may not {wanted}")


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
        _refuse_after(self.take(key))

    async def check_async(self, key: str) -> None:
        self.check(key)

    async def aclose(self) -> None:
        pass


def _refuse_after(wait: float) -> None:
    """429 ``rate_limited`` with ``Retry-After`` when a bucket says to wait ``wait`` seconds."""
    if wait > 0:
        retry = max(1, math.ceil(wait))
        raise HTTPError(
            429,
            "rate_limited",
            f"rate limit exceeded; retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )


#: The token bucket of `TokenBucketLimiter`, as one atomic Redis script: the clock is Redis's
#: (``TIME``), so replicas whose clocks disagree still share one bucket fairly. A bucket expires
#: once it would be full again (then absent and full are the same). Returns the wait as a string
#: (a Lua number would come back truncated to an integer).
_TOKEN_BUCKET = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(saved[1])
local last = tonumber(saved[2])
if tokens == nil or last == nil then
  tokens = burst
  last = now
end
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisTokenBucketLimiter:
    """`TokenBucketLimiter` with its buckets in Redis (``VPA_REDIS_URL``): one bucket per key for
    all replicas, so a caller spread over them gets the configured rate in total. Each check is one
    script call (atomic in Redis; no read-modify-write race between replicas)."""

    def __init__(self, url: str, rate_per_minute: float, burst: int) -> None:
        from vpa.auth.redis_store import async_client

        self.rate = rate_per_minute / 60.0
        self.burst = float(burst)
        self._client = async_client(url)
        self._script = self._client.register_script(_TOKEN_BUCKET)

    def __repr__(self) -> str:  # never the URL: it may hold a password
        return f"{type(self).__name__}(rate={self.rate * 60:g}/min, burst={self.burst:g})"

    async def take_async(self, key: str) -> float:
        """Take a token; 0.0 when allowed, else the seconds until one is available."""
        from vpa.auth.redis_store import bucket_key, redis_errors, unavailable

        try:
            wait = await self._script(keys=[bucket_key(key)], args=[repr(self.rate), repr(self.burst)])
        except redis_errors() as exc:
            raise unavailable("rate limiter", exc) from None
        return float(wait)

    async def check_async(self, key: str) -> None:
        _refuse_after(await self.take_async(key))

    async def aclose(self) -> None:
        await self._client.aclose()


def make_limiter(config: Any, burst: int | None) -> TokenBucketLimiter | RedisTokenBucketLimiter:
    """The rate limiter ``config`` asks for: in Redis when VPA_REDIS_URL is set, else in memory."""
    from vpa.auth.redis_store import configured_url

    burst = burst or config.rate_limit_per_minute
    url = configured_url(config)
    if url is not None:
        return RedisTokenBucketLimiter(url, config.rate_limit_per_minute, burst)
    return TokenBucketLimiter(config.rate_limit_per_minute, burst)


# --- ASGI middleware -------------------------------------------------------------------------


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    field: str | None = None,
) -> None:
    """Answer with the error envelope directly at the ASGI level (before the app is reached)."""
    import json

    error: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    body = json.dumps({"status": "error", "error": error}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


CLOSE = {"Connection": "close"}


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((v for k, v in scope.get("headers", []) if k == name), None)


def closes_when_refused(scope: Scope, body_limit: int) -> bool:
    """Whether a request answered without reading its body must end its connection. A small body
    of known length is discarded by the HTTP layer as it arrives (its deadline still runs), so the
    connection is kept; a chunked or oversized body, or one the client holds back until
    ``100 Continue``, leaves no safe place for the next request to start."""
    if _header(scope, b"transfer-encoding") is not None:
        return True
    expect = _header(scope, b"expect")
    if expect is not None and expect.lower() == b"100-continue":
        return True
    length = _header(scope, b"content-length")
    if length is None:
        return False
    try:
        return int(length) > body_limit
    except ValueError:
        return True


@attrs.frozen
class Access:
    """What a request needs to come in: ``actions`` None means it is answered without a key
    (``routed`` False: no route matched, so it is a 404 or 405)."""

    actions: frozenset[Action] | None
    routed: bool = True


PUBLIC = Access(None)
UNROUTED = Access(None, routed=False)


class Gate:
    """Authentication, rate limit and role, from the request line and headers alone.

    - a public or unrouted request goes on without a key, with a body that reads as empty (its
      bytes are discarded by the HTTP layer, under its deadline); a key it carries anyway is
      checked softly (``scope["vpa"]["viewer"]``: /health shows details to an operator);
    - any other request needs a key that is valid, within its rate and whose role allows one of
      the route's actions — else 400/401/429/403 at once, nothing of the body read;
    - a request let through is marked ``scope["vpa"]["gated"]``: only those count against the
      concurrency cap and have their body read.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        access: Callable[[Scope], Access],
        authenticate: Callable[[str | None], Awaitable[Caller]],
        limit: Callable[[Caller, Scope], Awaitable[None]],
        body_limit: int,
    ) -> None:
        self.app = app
        self.access = access
        self.authenticate = authenticate
        self.limit = limit
        self.body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = scope.setdefault("vpa", {})
        closes = context["close_on_refusal"] = closes_when_refused(scope, self.body_limit)
        access = self.access(scope)
        if access.actions is None:
            if access.routed and any(k in CREDENTIAL_HEADERS for k, _ in scope.get("headers", [])):
                with contextlib.suppress(HTTPError, VPAError):
                    context["viewer"] = await self.authenticate(key_from_scope(scope["headers"]))
            await self.app(scope, _no_body(receive), _closing(send) if closes else send)
            return
        headers: dict[str, str] = {}
        field = None
        try:
            caller = await self.authenticate(key_from_scope(scope.get("headers", [])))
            context["caller"] = caller
            await self.limit(caller, scope)
            authorize(caller, *access.actions)
        except HTTPError as exc:
            status, code, message, field, headers = (
                exc.status,
                exc.code,
                exc.message,
                exc.field,
                dict(exc.headers),
            )
        except AuthenticationError as exc:
            status, code, message, headers = 401, exc.code, str(exc), {"WWW-Authenticate": "Bearer"}
        except PermissionDenied as exc:
            status, code, message = 403, exc.code, str(exc)
        except AuthUnavailable as exc:  # Redis away: refuse now, the client retries
            status, code, message, headers = 503, exc.code, str(exc), {"Retry-After": "1"}
        except Exception as exc:  # a broken key file, an authenticator plugin's bug
            log.error("server.auth_failed", error=type(exc).__name__, exc_info=exc)
            status, code, message = 500, "internal_error", "internal error; see the server log"
        else:
            context["gated"] = True
            await self.app(scope, receive, send)
            return
        context["rejected"] = code
        if closes:
            headers.update(CLOSE)
        await send_error(send, status, code, message, headers, field=field)


def _no_body(receive: Receive) -> Receive:
    """A receive for a request answered without its body: empty at once, then only disconnects."""
    delivered = False

    async def no_body() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": b"", "more_body": False}
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message

    return no_body


def _closing(send: Send) -> Send:
    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
        await send(message)

    return closing


class ConcurrencyLimit:
    """At most ``limit`` authenticated requests in the app at once; the next gets 503 and
    Retry-After: 1. Requests `Gate` let through without a key are not counted (they are answered
    without a body or store work), and paths in ``exempt`` (health, metrics) are never refused,
    so probes see an overloaded server."""

    def __init__(self, app: ASGIApp, limit: int, exempt: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt or not scope.get("vpa", {}).get("gated"):
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:  # single-threaded event loop: check-and-increment is atomic
            context = scope.setdefault("vpa", {})
            context["rejected"] = "overloaded"
            headers = {"Retry-After": "1", **(CLOSE if context.get("close_on_refusal") else {})}
            await send_error(
                send,
                503,
                "overloaded",
                f"the server is handling {self.limit} requests (VPA_MAX_CONCURRENT_REQUESTS); retry shortly",
                headers,
            )
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


class BodyLimit:
    """Refuse bodies larger than ``limit`` bytes with 413, reading at most ``limit`` bytes; a body
    the connection guard says is overdue (``scope["vpa"]["body_timeout"]``) is 408."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = scope.setdefault("vpa", {})
        message = f"the request body is larger than {self.limit} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_error(send, 400, "bad_request", "Content-Length is not a number", CLOSE)
                    return
                if declared > self.limit:
                    await send_error(send, 413, "payload_too_large", message, CLOSE)
                    return
        # Read the whole body here (bounded by the limit), then hand it to the app in one piece.
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                context.setdefault("disconnected", True)
                return
            overdue = context.get("body_timeout")
            if overdue:
                context["error_code"] = "request_timeout"
                await send_error(send, 408, "request_timeout", overdue, CLOSE)
                return
            chunk = event.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await send_error(send, 413, "payload_too_large", message, CLOSE)
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

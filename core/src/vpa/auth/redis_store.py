"""Shared state in Redis (``VPA_REDIS_URL``): API keys and rate-limit buckets seen by every replica.

One `vpa serve` keeps its keys in ``VPA_DATA_DIR/keys.json`` and its rate-limit buckets in its own
memory; behind a load balancer each replica would then have its own view: a key revoked on one
still works on the others, and a caller spread over N replicas gets N times its rate. With
``VPA_REDIS_URL`` set, the ``api-keys`` authenticator keeps its keys in Redis instead
(`RedisApiKeyAuthenticator`: the same ``vpa_<id>_<secret>`` keys, stored as the same SHA-256
hashes, looked up on every request, so a revocation is seen by every replica at its next request)
and the server's token buckets live there too (`vpa.server.security.RedisTokenBucketLimiter`).

Bounded: every call has a connect and a read timeout (`CONNECT_TIMEOUT`, `SOCKET_TIMEOUT`; the URL's
own ``?socket_timeout=`` and ``?socket_connect_timeout=`` win) and one immediate retry (a pooled
connection that Redis closed on a restart), then `AuthUnavailable` — a 503 ``auth_unavailable``,
never a hang and never a request let through unchecked. The URL may hold a password: it is never
logged or put in an error; errors name only the exception type.

Layout (all under ``vpa:``): ``vpa:key:<key id>`` a hash (``sha256``, ``role``, ``tenant``,
``name``, ``created_at``, ``revoked``); ``vpa:keys`` the set of key ids; ``vpa:rl:<bucket>`` a
token bucket (``tokens``, ``ts``), expiring once it would be full again. Separate deployments
sharing one Redis use separate databases (``redis://host:6379/1``).
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
import urllib.parse
from typing import Any

from vpa.auth.base import (
    ApiKeyInfo,
    Authenticator,
    AuthUnavailable,
    Principal,
    Role,
    check_key_name,
    check_key_scope,
    key_problem,
)
from vpa.errors import AuthenticationError, DependencyMissing
from vpa.log import get_logger

NAMESPACE = "vpa:"
KEY_SET = f"{NAMESPACE}keys"
#: Seconds to open a connection to Redis, and to wait for one answer.
CONNECT_TIMEOUT = 1.0
SOCKET_TIMEOUT = 2.0
#: A presented key longer than this is malformed before anything is asked of Redis.
MAX_PRESENTED_KEY_LENGTH = 256
#: Key ids as `ApiKeyAuthenticator` makes them (``secrets.token_hex(6)``), a little wider.
KEY_ID_RE = re.compile(r"[0-9a-f]{1,32}")
SCHEMES = ("redis", "rediss", "unix")
#: At most one "Redis unreachable" log line per this many seconds (it is one outage, not N errors).
LOG_EVERY_SECONDS = 10.0

NEEDS_CLIENT = "VPA_REDIS_URL needs the Redis client: pip install 'vpa-core[redis]'"

log = get_logger("vpa.auth")
_last_logged = 0.0

_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""
_REVOKE = """
if redis.call('HGET', KEYS[1], 'revoked') == '0' then
  redis.call('HSET', KEYS[1], 'revoked', '1')
  return 1
end
return 0
"""
_FIELDS = ("sha256", "role", "tenant", "name", "created_at", "revoked")


def configured_url(config: Any) -> str | None:
    """``config``'s VPA_REDIS_URL, None when not set (an empty value, as a blank ConfigMap entry
    gives, is not set)."""
    url = getattr(config, "redis_url", None)
    return url.strip() if isinstance(url, str) and url.strip() else None


def url_problems(url: str | None) -> list[str]:
    """Why ``url`` cannot be used as VPA_REDIS_URL (empty when it can, or is not set). The URL is
    never quoted back: it may hold a password."""
    if url is None or not url.strip():
        return []
    usage = "VPA_REDIS_URL must read redis://[[user]:password@]host[:port][/db], rediss://... (TLS) or unix:///path"
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return [f"{usage}; it does not parse as a URL (or its port is not a number from 0 to 65535)"]
    if parts.scheme not in SCHEMES:
        shown = parts.scheme if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]{0,15}", parts.scheme) else "?"
        return [f"{usage}; its scheme is {shown!r}" if parts.scheme else f"{usage}; it has no scheme"]
    if parts.scheme == "unix":
        if not parts.path:
            return [f"{usage}; a unix:// URL needs the socket's path"]
    else:
        if not parts.hostname:
            return [f"{usage}; it names no host"]
        if port == 0:
            return [f"{usage}; port 0 is not a port to connect to"]
        db = parts.path.lstrip("/")
        if db and not db.isdigit():
            return [f"{usage}; the database after the host must be a number"]
    try:
        from redis.connection import parse_url
    except ImportError:
        return ["VPA_REDIS_URL is set but the Redis client is not installed: pip install 'vpa-core[redis]'"]
    try:
        parse_url(url.strip())
    except (ValueError, TypeError) as exc:
        return [f"{usage}; the Redis client refuses it ({type(exc).__name__})"]
    return []


def _options() -> dict[str, Any]:
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": SOCKET_TIMEOUT,
        "retry_on_timeout": False,
        "decode_responses": True,
        "health_check_interval": 0,
    }


def sync_client(url: str) -> Any:
    """A blocking Redis client for ``url`` (the CLI, the key routes' worker threads); connects lazily."""
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError as exc:
        raise DependencyMissing(NEEDS_CLIENT) from exc
    return redis.Redis.from_url(url.strip(), retry=Retry(NoBackoff(), 1), **_options())


def async_client(url: str) -> Any:
    """An asyncio Redis client for ``url`` (the server's request path); connects lazily, in the
    event loop that first uses it."""
    try:
        import redis.asyncio as aredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError as exc:
        raise DependencyMissing(NEEDS_CLIENT) from exc
    return aredis.Redis.from_url(url.strip(), retry=Retry(NoBackoff(), 1), **_options())


def redis_errors() -> tuple[type[BaseException], ...]:
    """What a Redis call raises when Redis is away, slow or broken (not the caller's fault)."""
    import redis

    return (redis.RedisError, OSError, TimeoutError)


def unavailable(what: str, exc: BaseException) -> AuthUnavailable:
    """The typed error for a failed Redis call, logged at most every `LOG_EVERY_SECONDS` — by the
    exception's type only (a message may name the socket path; the URL may hold a password)."""
    global _last_logged
    now = time.monotonic()
    if now - _last_logged >= LOG_EVERY_SECONDS:
        _last_logged = now
        log.error("auth.redis_unavailable", store=what, error=type(exc).__name__)
    return AuthUnavailable(
        f"the shared {what} (Redis, VPA_REDIS_URL) is unavailable ({type(exc).__name__}); retry shortly"
    )


def bucket_key(bucket: str) -> str:
    return f"{NAMESPACE}rl:{bucket}"


def _record_key(key_id: str) -> str:
    return f"{NAMESPACE}key:{key_id}"


def _split(key: str | None) -> tuple[str, str]:
    """The key id and secret of a presented key; `AuthenticationError` before any I/O when it
    cannot be one of ours."""
    from vpa.auth.api_keys import PREFIX

    if not key:
        raise AuthenticationError("no API key given")
    if len(key) > MAX_PRESENTED_KEY_LENGTH:
        raise AuthenticationError("malformed API key")
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not KEY_ID_RE.fullmatch(parts[1]):
        raise AuthenticationError("malformed API key")
    return parts[1], parts[2]


def _info(key_id: str, row: dict[str, str]) -> ApiKeyInfo:
    role: Any = row.get("role", "")
    if role in Role._value2member_map_:
        role = Role(role)
    return ApiKeyInfo(
        key_id,
        role,  # a role edited by hand stays as it is, and key_problem refuses it
        row.get("tenant") or None,
        row.get("name", ""),
        float(row.get("created_at") or 0.0),
        row.get("revoked") == "1",
    )


def _principal(key_id: str, secret: str, row: dict[str, str] | None) -> Principal:
    """The file store's checks, on a row read from Redis: the digest compared in constant time
    (against a dummy when the id is unknown), then revocation, then the stored scope."""
    from vpa.auth.api_keys import _digest

    expected = row.get("sha256", "") if row else ""
    if not expected:
        expected, row = _digest(""), None
    if not hmac.compare_digest(expected, _digest(secret)) or row is None:
        raise AuthenticationError("unknown API key")
    info = _info(key_id, row)
    if info.revoked:
        raise AuthenticationError("API key has been revoked")
    problem = key_problem(info)
    if problem is not None:
        raise AuthenticationError(f"API key {info.key_id} is not usable: {problem}; create a new one")
    return Principal(info.key_id, Role(info.role), info.tenant, info.name)


class RedisApiKeyAuthenticator(Authenticator):
    """The ``api-keys`` authenticator with its keys in Redis: what `ApiKeyAuthenticator` does with
    a file, shared by every process that uses the same URL. Nothing is cached: each
    authentication reads the key's hash (one round trip), so a revocation anywhere is seen at the
    next request everywhere."""

    name = "api-keys"
    path = None  # no file: `KeyRing` neither watches nor reloads it

    def __init__(self, url: str) -> None:
        self._url = url
        self._client = sync_client(url)
        self._aclient: Any = None
        self._create = self._client.register_script(_CREATE)
        self._revoke = self._client.register_script(_REVOKE)

    def __repr__(self) -> str:  # never the URL: it may hold a password
        return f"{type(self).__name__}()"

    def create_key(self, role: Role | str, tenant: str | None, name: str = "") -> tuple[ApiKeyInfo, str]:
        from vpa.auth.api_keys import PREFIX, _digest

        role, tenant = check_key_scope(role, tenant)
        name = check_key_name(name)
        secret = secrets.token_urlsafe(32)
        for _ in range(8):  # 48-bit ids: a clash is all but impossible, and never overwrites
            info = ApiKeyInfo(secrets.token_hex(6), role, tenant, name, time.time())
            fields = {"sha256": _digest(secret), "role": str(role), "tenant": tenant or "", "name": name,
                      "created_at": repr(info.created_at), "revoked": "0"}
            args = [info.key_id, *(part for pair in fields.items() for part in pair)]
            try:
                created = self._create(keys=[_record_key(info.key_id), KEY_SET], args=args)
            except redis_errors() as exc:
                raise unavailable("key store", exc) from None
            if created == 1:
                return info, f"{PREFIX}_{info.key_id}_{secret}"
        raise AuthUnavailable("could not find a free key id in the shared key store; retry")

    def authenticate(self, key: str | None) -> Principal:
        key_id, secret = _split(key)
        try:
            row = self._client.hgetall(_record_key(key_id))
        except redis_errors() as exc:
            raise unavailable("key store", exc) from None
        return _principal(key_id, secret, row)

    async def authenticate_async(self, key: str | None) -> Principal:
        key_id, secret = _split(key)
        if self._aclient is None:
            self._aclient = async_client(self._url)
        try:
            row = await self._aclient.hgetall(_record_key(key_id))
        except redis_errors() as exc:
            raise unavailable("key store", exc) from None
        return _principal(key_id, secret, row)

    def revoke(self, key_id: str) -> bool:
        if not isinstance(key_id, str) or not KEY_ID_RE.fullmatch(key_id):
            return False
        try:
            return self._revoke(keys=[_record_key(key_id)]) == 1
        except redis_errors() as exc:
            raise unavailable("key store", exc) from None

    def list_keys(self) -> list[ApiKeyInfo]:
        try:
            ids = sorted(self._client.smembers(KEY_SET))
            pipe = self._client.pipeline(transaction=False)
            for key_id in ids:
                pipe.hmget(_record_key(key_id), *_FIELDS)
            rows = pipe.execute()
        except redis_errors() as exc:
            raise unavailable("key store", exc) from None
        out = [
            _info(key_id, {f: v for f, v in zip(_FIELDS, row, strict=True) if v is not None})
            for key_id, row in zip(ids, rows, strict=True)
            if row[0] is not None  # listed but gone (removed by hand): not a key
        ]
        return sorted(out, key=lambda i: i.created_at)

    def ping(self) -> None:
        """Raise `AuthUnavailable` unless Redis answers (used at start, for a clear log line)."""
        try:
            self._client.ping()
        except redis_errors() as exc:
            raise unavailable("key store", exc) from None

    async def aclose(self) -> None:
        """Close the connections (the server's shutdown)."""
        if self._aclient is not None:
            client, self._aclient = self._aclient, None
            await client.aclose()
        self._client.close()

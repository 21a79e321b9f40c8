"""The Redis backends of the shared state (``VPA_REDIS_URL``) against a real redis-server: the
key store passes the authenticator contract, two instances (two replicas) see each other's keys,
revocations and buckets, secrets are stored only as hashes, an unreachable Redis is a typed
error, and a bad URL is a configuration error that never shows its password."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_helpers import RedisServer
from server_helpers import free_port
from vpa.auth.api_keys import ApiKeyAuthenticator, _digest, _for_config
from vpa.auth.base import AuthUnavailable
from vpa.auth.redis_store import RedisApiKeyAuthenticator, bucket_key, url_problems
from vpa.config import load_config, validate_config
from vpa.errors import AuthenticationError
from vpa.server.security import HTTPError, RedisTokenBucketLimiter, TokenBucketLimiter, make_limiter
from vpa_conformance import AuthContract


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


class TestRedisApiKeyAuthenticator(AuthContract):
    @pytest.fixture
    def authenticator(self, redis_server: RedisServer) -> RedisApiKeyAuthenticator:
        return RedisApiKeyAuthenticator(redis_server.url)


def test_two_instances_share_keys_and_revocations(redis_server: RedisServer) -> None:
    """A key made through one instance authenticates through another (sync and async); revoked
    through the second, the first refuses it at once — nothing is cached."""
    a, b = RedisApiKeyAuthenticator(redis_server.url), RedisApiKeyAuthenticator(redis_server.url)
    info, secret = a.create_key("writer", "acme", "shared")
    assert b.authenticate(secret).key_id == info.key_id
    assert asyncio.run(b.authenticate_async(secret)).tenant == "acme"
    assert b.revoke(info.key_id) is True
    with pytest.raises(AuthenticationError, match="revoked"):
        a.authenticate(secret)

    async def refused() -> None:
        with pytest.raises(AuthenticationError, match="revoked"):
            await a.authenticate_async(secret)
        await a.aclose()

    asyncio.run(refused())
    assert {i.key_id: i.revoked for i in a.list_keys()}[info.key_id] is True


def test_only_hashes_are_stored(redis_server: RedisServer) -> None:
    """Redis holds the secret's SHA-256, never the secret or the whole key."""
    info, key = RedisApiKeyAuthenticator(redis_server.url).create_key("reader", "acme")
    secret = key.split("_", 2)[2]
    import redis

    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    stored = client.hgetall(f"vpa:key:{info.key_id}")
    assert stored["sha256"] == _digest(secret)
    everything = repr([(k, client.dump(k)) for k in client.scan_iter(count=1000)])
    assert secret not in everything and secret[:16] not in everything
    client.close()


def test_bucket_is_shared_and_expires(redis_server: RedisServer) -> None:
    """Two limiters (two replicas) draw from one bucket: a caller alternating between them gets
    the burst in total, not per limiter; the bucket carries an expiry (Redis does not fill up)."""
    burst, calls = 4, 12

    async def run() -> tuple[list[float], float]:
        one = RedisTokenBucketLimiter(redis_server.url, rate_per_minute=1, burst=burst)
        two = RedisTokenBucketLimiter(redis_server.url, rate_per_minute=1, burst=burst)
        started = time.monotonic()
        waits = [await (one if i % 2 else two).take_async("key:shared-bucket") for i in range(calls)]
        elapsed = time.monotonic() - started
        with pytest.raises(HTTPError) as refused:
            await one.check_async("key:shared-bucket")
        assert refused.value.status == 429 and 1 <= int(refused.value.headers["Retry-After"]) <= 60
        await one.aclose()
        await two.aclose()
        return waits, elapsed

    waits, elapsed = asyncio.run(run())
    allowed = sum(1 for w in waits if w == 0.0)
    # One token a minute: only a run slower than a minute could earn one more.
    assert burst <= allowed <= burst + math.floor(elapsed / 60), waits
    assert all(0 < w <= 60 for w in waits[allowed:]), waits
    ttl = int((redis_server.command("PTTL", bucket_key("key:shared-bucket")) or ":0").lstrip(":"))
    assert 0 < ttl <= (burst / (1 / 60) + 1) * 1000


def test_unreachable_redis_is_a_typed_error() -> None:
    """Nothing listening: every call raises AuthUnavailable (503 auth_unavailable in the server),
    naming no password."""
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    auth = RedisApiKeyAuthenticator(url)
    calls: list[Any] = [
        lambda: auth.authenticate("vpa_0123456789ab_" + "x" * 43),
        lambda: auth.create_key("reader", "acme"),
        lambda: auth.revoke("0123456789ab"),
        auth.list_keys,
        lambda: asyncio.run(auth.authenticate_async("vpa_0123456789ab_" + "x" * 43)),
    ]
    for call in calls:
        with pytest.raises(AuthUnavailable) as caught:
            call()
        assert caught.value.code == "auth_unavailable" and "hunter2" not in str(caught.value)

    async def limited() -> None:
        limiter = RedisTokenBucketLimiter(url, 60, 10)
        with pytest.raises(AuthUnavailable):
            await limiter.check_async("key:x")
        await limiter.aclose()

    asyncio.run(limited())
    # Malformed keys are refused before any I/O: AuthenticationError even with Redis away.
    for bad in (None, "", "nope", "vpa_NOTHEX_secret", "vpa_" + "a" * 300):
        with pytest.raises(AuthenticationError):
            auth.authenticate(bad)


@pytest.mark.parametrize(
    "url, problem",
    [
        ("http://:pw-secret@127.0.0.1:6379", "scheme is 'http'"),
        ("127.0.0.1:6379", "scheme"),
        ("redis://:pw-secret@", "names no host"),
        ("redis://:pw-secret@127.0.0.1:99999/0", "port"),
        ("redis://:pw-secret@127.0.0.1:6379/zero", "database"),
        ("unix://", "socket's path"),
    ],
)
def test_bad_urls_are_config_errors(url: str, problem: str, tmp_path: Path) -> None:
    errors = validate_config(load_config(environ={"VPA_REDIS_URL": url, "VPA_DATA_DIR": str(tmp_path)}))
    found = [e for e in errors if "VPA_REDIS_URL" in e]
    assert len(found) == 1 and problem in found[0], errors
    assert "pw-secret" not in found[0]


def test_good_urls_and_no_url() -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://user:pw@redis.internal:6380/2", "unix:///run/redis.sock",
                "redis://localhost", None, "", "  "):
        assert url_problems(url) == [], url


def test_without_redis_url_the_single_process_backends_stay(tmp_path: Path) -> None:
    """No VPA_REDIS_URL (or an empty one): the key file and the in-memory buckets, as before."""
    for environ in ({}, {"VPA_REDIS_URL": ""}):
        config = load_config(environ={"VPA_DATA_DIR": str(tmp_path), **environ})
        auth = _for_config(config)
        assert isinstance(auth, ApiKeyAuthenticator) and auth.path == tmp_path / "keys.json"
        assert isinstance(make_limiter(config, None), TokenBucketLimiter)
    config = load_config(environ={"VPA_DATA_DIR": str(tmp_path), "VPA_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert isinstance(_for_config(config), RedisApiKeyAuthenticator)
    assert isinstance(make_limiter(config, 5), RedisTokenBucketLimiter)
    assert "127.0.0.1" not in repr(_for_config(config))  # the URL is never in a repr

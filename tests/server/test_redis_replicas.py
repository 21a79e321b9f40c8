"""Two `vpa serve` replicas sharing one real redis-server (``VPA_REDIS_URL``): a key revoked on one
is refused by the other within a second; a caller alternating between them gets the configured
rate in total; Redis going away is a fast 503 ``auth_unavailable`` on both, and its return
recovers them without a restart. The Redis password never reaches a log."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from redis_helpers import RedisServer
from server_helpers import Server, base_env, error, ok, vpa
from vpa.auth.redis_store import RedisApiKeyAuthenticator

#: One token a minute, ten saved up: within a test's few seconds a bucket holds exactly ten.
BURST = 10
RATE_PER_MINUTE = 1


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    redis = RedisServer(tmp_path_factory.mktemp("redis")).start()
    servers: list[Server] = []
    try:
        envs = []
        for name in ("a", "b"):
            folder = tmp_path_factory.mktemp(f"replica-{name}")
            env = base_env(folder / "data", VPA_REDIS_URL=redis.url,
                           VPA_RATE_LIMIT_PER_MINUTE=str(RATE_PER_MINUTE), VPA_RATE_LIMIT_BURST=str(BURST))
            envs.append(env)
            servers.append(Server(folder, env).start())
        # The admin key is made as a user would, by the CLI, which writes to Redis too.
        made = vpa(envs[0], "keys", "create", "--role", "admin", "--tenant", "acme", "--json")
        admin = json.loads(made.stdout)
        yield {"redis": redis, "a": servers[0], "b": servers[1], "admin": admin["key"]}
    finally:
        for server in servers:
            server.stop()
        redis.stop()


def new_key(cluster: dict[str, Any], role: str = "reader") -> tuple[str, str]:
    info, secret = RedisApiKeyAuthenticator(cluster["redis"].url).create_key(role, "acme", "test")
    return info.key_id, secret


def test_revoked_on_one_replica_is_refused_by_the_other(cluster: dict[str, Any]) -> None:
    a, b = cluster["a"], cluster["b"]
    key_id, key = new_key(cluster)
    for server in (a, b):
        with server.client(key) as client:
            ok(client.get("/documents"))
    with a.client(cluster["admin"]) as admin:
        assert ok(admin.delete(f"/keys/{key_id}"))["revoked"] is True
    deadline = time.monotonic() + 1.0
    with b.client(key) as client:
        while True:
            response = client.get("/documents")
            if response.status_code == 401:
                break
            assert time.monotonic() < deadline, f"replica B still accepts the revoked key: {response.text}"
            time.sleep(0.05)
    assert "revoked" in error(response, 401, "unauthenticated")["message"]
    # A key made over HTTP on B works on A at once, and A lists both, the first as revoked.
    with b.client(cluster["admin"]) as admin:
        made = ok(admin.post("/keys", json={"role": "reader", "name": "from b"}), 201)
    with a.client(made["key"]) as client:
        ok(client.get("/documents"))
    with a.client(cluster["admin"]) as admin:
        listed = {k["key_id"]: k["revoked"] for k in ok(admin.get("/keys"))}
    assert listed[key_id] is True and listed[made["key_id"]] is False


def test_a_caller_spread_over_replicas_gets_the_rate_in_total(cluster: dict[str, Any]) -> None:
    a, b = cluster["a"], cluster["b"]
    _, key = new_key(cluster)
    calls = 2 * BURST + 4
    started = time.monotonic()
    with a.client(key) as on_a, b.client(key) as on_b:
        responses = [(on_a if i % 2 else on_b).get("/documents") for i in range(calls)]
    elapsed = time.monotonic() - started
    allowed = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(allowed) + len(refused) == calls, [r.status_code for r in responses]
    # Per replica this would be 2 x BURST; one token a minute could add one only to a slow run.
    assert BURST <= len(allowed) <= BURST + math.floor(elapsed * RATE_PER_MINUTE / 60)
    for response in refused:
        error(response, 429, "rate_limited")
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    # The refusals were on both replicas, and another caller's bucket is untouched.
    assert {r.url.port for r in refused} == {a.port, b.port}
    _, other = new_key(cluster)
    for server in (a, b):
        with server.client(other) as client:
            ok(client.get("/documents"))


def test_redis_away_is_a_fast_503_and_its_return_recovers(cluster: dict[str, Any]) -> None:
    redis, a, b = cluster["redis"], cluster["a"], cluster["b"]
    _, key = new_key(cluster)
    for server in (a, b):
        with server.client(key) as client:
            ok(client.get("/documents"))
    redis.save()  # the restart below loads this snapshot: the keys survive it
    redis.stop()
    try:
        for server in (a, b):
            # A bounded wait, never a hang: the client gives up long before a request could.
            with server.client(key, timeout=15) as client:
                refused = client.get("/documents")
                error(refused, 503, "auth_unavailable")
                assert refused.headers["Retry-After"] == "1"
            with server.client(cluster["admin"], timeout=15) as admin:
                error(admin.post("/keys", json={"role": "reader"}), 503, "auth_unavailable")
            assert httpx.get(f"{server.url}/api/v1/health", timeout=15).status_code == 200
    finally:
        redis.start()
    for server in (a, b):
        deadline = time.monotonic() + 20
        with server.client(key) as client:
            while (response := client.get("/documents")).status_code == 503:
                assert time.monotonic() < deadline, f"replica did not recover: {response.text}"
                time.sleep(0.2)
            ok(response)
    for server in (a, b):
        logs = server.log() + (server.audit_path.read_text() if server.audit_path.exists() else "")
        assert "auth.redis_unavailable" in server.log()  # once per outage window, by type only
        assert redis.password not in logs and key not in logs

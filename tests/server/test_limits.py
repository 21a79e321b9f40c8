"""Rate limits (token bucket per key, 429 + Retry-After), the concurrency cap, body, batch and
document size limits — on a server started with tight settings."""

from __future__ import annotations

import socket
import time

import pytest
from server_helpers import error, make_key, ok

BURST = 4


@pytest.fixture(scope="module")
def tight(server_factory):
    server, _ = server_factory(
        "tight",
        "--rate-limit-burst",
        str(BURST),
        "--max-body-bytes",
        "20000",
        VPA_RATE_LIMIT_PER_MINUTE="30",
        VPA_MAX_CONCURRENT_REQUESTS="1",
        VPA_MAX_BATCH_SIZE="3",
        VPA_MAX_DOCUMENT_BYTES="5000",
    )
    return server


def fresh_key(server, role="writer", tenant="t"):
    return make_key(server.env, role, tenant)["key"]


def test_token_bucket_per_key(tight):
    with tight.client(fresh_key(tight)) as first, tight.client(fresh_key(tight)) as second:
        for _ in range(BURST):
            ok(first.get("/stats"))
        limited = first.get("/stats")
        err = error(limited, 429, "rate_limited")
        retry = int(limited.headers["retry-after"])
        assert 1 <= retry <= 2 and "retry" in err["message"]  # 30/min: a token every 2 s
        ok(second.get("/stats"))  # another key has its own bucket
        time.sleep(retry)
        ok(first.get("/stats"))
        error(first.get("/stats"), 429, "rate_limited")
    with tight.client() as anonymous:
        ok(anonymous.get("/health"))  # health is not rate limited
    with tight.client(fresh_key(tight, "admin")) as admin:
        assert "vpa_rate_limited_total 2.0" in admin.get("/metrics").text


def test_concurrency_cap(tight):
    key = fresh_key(tight)
    body = b'{"query": "held open"}'
    head = (
        f"POST /api/v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", tight.port), timeout=10) as slow:
        slow.sendall(head + body[:5])  # the request is in the server, its body still arriving
        with tight.client(fresh_key(tight)) as other:
            deadline = time.monotonic() + 10
            while True:  # wait until the slow request holds the only slot (the cap counts
                # authenticated requests only; a key per probe, as each spends a token)
                with tight.client(fresh_key(tight)) as probe:
                    response = probe.get("/documents/probe")
                if response.status_code == 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            err = error(response, 503, "overloaded")
            assert response.headers["retry-after"] == "1" and "VPA_MAX_CONCURRENT_REQUESTS" in err["message"]
            ok(other.get("/health"))  # probes are never refused
            slow.sendall(body[5:])
            reply = slow.recv(65536).decode()
            assert reply.startswith("HTTP/1.1 200"), reply
            ok(other.get("/stats"))


def test_body_size_limit(tight):
    with tight.client(fresh_key(tight)) as client:
        big = {"id": "big", "content": "x" * 30_000}
        error(client.post("/documents", json=big), 413, "payload_too_large")

        def chunks():  # no Content-Length: the limit applies as the body streams in
            for _ in range(30):
                yield b"x" * 1000

        error(
            client.post("/documents", content=chunks(), headers={"content-type": "application/json"}),
            413,
            "payload_too_large",
        )


def test_document_and_batch_limits(tight):
    def send(method, path, body):  # a key per call, so the tight rate limit stays out of the way
        with tight.client(fresh_key(tight)) as client:
            return client.request(method, path, json=body)

    err = error(send("POST", "/documents", {"id": "d", "content": "é" * 2501}), 413, "document_too_large")
    assert err["field"] == "content" and "5002 bytes" in err["message"]
    docs = [{"id": f"d{i}", "content": "fine"} for i in range(4)]
    err = error(send("POST", "/documents/batch", {"documents": docs}), 413, "batch_too_large")
    assert err["field"] == "documents" and "VPA_MAX_BATCH_SIZE" in err["message"]
    docs = [{"id": "a", "content": "fine"}, {"id": "b", "content": "y" * 5001}]
    err = error(send("POST", "/documents/batch", {"documents": docs}), 413, "document_too_large")
    assert err["field"] == "documents[1].content"
    error(send("GET", "/documents/a", None), 404)  # nothing of a refused batch was written
    ok(send("POST", "/documents/batch", {"documents": docs[:1]}), 201)
    error(send("PUT", "/documents/a", {"content": "z" * 6000}), 413, "document_too_large")

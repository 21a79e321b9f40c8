"""Slow and idle clients cannot deny service: raw sockets against a real `vpa serve`.

The server runs with short deadlines (2 s for headers, 2 s for bodies), the default concurrency
cap (64) and an open-files limit of 1024 — the usual default, so the connection bound it derives
from it is the one operators get. Each attack is checked from the attacked side (an authenticated
caller is served promptly, without 503) and from the attacker's (its sockets are closed by the
server within the deadline). Both of uvicorn's HTTP/1.1 implementations are guarded.
"""

from __future__ import annotations

import json
import resource
import socket
import time

import pytest
from server_helpers import ok

SERVER_FDS = 1024
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
CLIENT_FDS_NEEDED = 1300
IDLE_SOCKETS = 1100
SLOW_BODIES = 80
CAP = 64  # VPA_MAX_CONCURRENT_REQUESTS' default


def _server_limits() -> None:  # runs in the server process before it starts
    resource.setrlimit(resource.RLIMIT_NOFILE, (SERVER_FDS, SERVER_FDS))


@pytest.fixture(scope="module", params=["httptools", "h11"])
def slow(server_factory, request):
    server, made = server_factory(
        f"slow-{request.param}",
        "--header-timeout",
        str(HEADER_TIMEOUT),
        "--body-timeout",
        str(BODY_TIMEOUT),
        "--http",
        request.param,
        keys={"writer": ("writer", "acme"), "operator": ("operator", None)},
        preexec_fn=_server_limits,
    )
    return server, {label: info["key"] for label, info in made.items()}


@pytest.fixture
def client_fds():
    """Enough descriptors in this process for the idle-socket attack (the soft limit is raised
    within the hard one, and put back)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = CLIENT_FDS_NEEDED if hard == resource.RLIM_INFINITY else min(hard, CLIENT_FDS_NEEDED)
    if wanted < CLIENT_FDS_NEEDED:
        pytest.skip(f"ulimit -n allows {hard} descriptors; the test needs {CLIENT_FDS_NEEDED}")
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _post_head(path: str, length: int, key: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _read_response(sock: socket.socket, timeout: float) -> tuple[int, dict]:
    """Status and JSON body of one response (Content-Length framed)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed inside a response"
        body += chunk
    return int(lines[0].split()[1]), json.loads(body[:length]) if length else {}


def _wait_closed(socks: list[socket.socket], deadline: float) -> list[bytes]:
    """Wait until the server has closed every socket (or the deadline passes); returns what each
    received. A socket still open at the deadline fails the test."""
    received = [b""] * len(socks)
    open_ = set(range(len(socks)))
    for sock in socks:
        sock.setblocking(False)
    while open_ and time.monotonic() < deadline:
        for i in list(open_):
            try:
                chunk = socks[i].recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                open_.discard(i)
                continue
            if chunk:
                received[i] += chunk
            else:
                open_.discard(i)
        if open_:
            time.sleep(0.05)
    assert not open_, f"{len(open_)} of {len(socks)} sockets still open"
    return received


def _served_promptly(server, key: str, times: int = 10, within: float = 2.0) -> None:
    with server.client(key, timeout=within + 3) as client:
        for _ in range(times):
            started = time.monotonic()
            ok(client.get("/stats"))
            assert time.monotonic() - started < within


def _closed_counts(server, operator_key: str) -> dict[str, float]:
    with server.client(operator_key) as client:
        text = client.get("/metrics").text
    out = {}
    for line in text.splitlines():
        if line.startswith("vpa_connections_closed_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = float(line.rsplit(" ", 1)[1])
    return out


def _close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def _wait_fds(server, at_most: int, seconds: float = 10.0) -> int:
    deadline = time.monotonic() + seconds
    while (fds := server.open_fds()) > at_most and time.monotonic() < deadline:
        time.sleep(0.1)
    return fds


def test_slow_bodies_without_a_key_hold_nothing(slow):
    server, keys = slow
    baseline = server.open_fds()
    socks: list[socket.socket] = []
    try:
        started = time.monotonic()
        for _ in range(SLOW_BODIES):  # more than the cap: each declares 100 kB and sends 10 bytes
            sock = _connect(server.port)
            sock.sendall(_post_head("/api/v1/documents", 100_000) + b'{"id": "x"')
            socks.append(sock)
        for sock in socks:  # refused from its headers alone, the body unread
            status, body = _read_response(sock, 5)
            assert status == 401 and body["error"]["code"] == "unauthenticated"
        _served_promptly(server, keys["writer"])  # no slot is held: never a 503
        received = _wait_closed(socks, started + BODY_TIMEOUT + 4)  # the body deadline ends them
        assert all(r == b"" for r in received)  # nothing more was said after the 401
    finally:
        _close_all(socks)
    assert _wait_fds(server, baseline + 2) <= baseline + 2


def test_slow_bodies_with_a_key_hold_a_slot_until_their_deadline(slow):
    server, keys = slow
    socks: list[socket.socket] = []
    try:
        for _ in range(CAP):
            sock = _connect(server.port)
            sock.sendall(_post_head("/api/v1/documents", 100_000, keys["writer"]) + b'{"id": "x"')
            socks.append(sock)
        started = time.monotonic()
        with server.client(keys["writer"], timeout=5) as client:  # authenticated: they do take slots
            deadline = started + 5
            while (response := client.get("/stats")).status_code != 503 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert response.status_code == 503
        for sock in socks:  # ... until the body deadline: 408 with the envelope, then closed
            status, body = _read_response(sock, BODY_TIMEOUT + 3)
            assert status == 408 and body["error"]["code"] == "request_timeout"
        assert time.monotonic() - started < BODY_TIMEOUT + 3
        _wait_closed(socks, time.monotonic() + 2)
    finally:
        _close_all(socks)
    _served_promptly(server, keys["writer"])


def test_idle_and_incomplete_sockets_cannot_exhaust_descriptors(slow, client_fds):
    server, keys = slow
    before = _closed_counts(server, keys["operator"])
    baseline = server.open_fds()
    socks: list[socket.socket] = []
    try:
        started = time.monotonic()
        for i in range(IDLE_SOCKETS):  # idle ones, and ones whose headers never end
            sock = _connect(server.port)
            if i % 2:
                sock.sendall(b"GET /api/v1/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(sock)
        _served_promptly(server, keys["writer"], times=5)  # room is made for a real client
        assert server.open_fds() < SERVER_FDS - 64  # descriptors to spare for everything else
        _wait_closed(socks, started + HEADER_TIMEOUT + 4)  # evicted, or timed out: none is left
    finally:
        _close_all(socks)
    assert _wait_fds(server, baseline + 2) <= baseline + 2
    after = _closed_counts(server, keys["operator"])
    assert after.get("evicted", 0) > before.get("evicted", 0)  # over the bound: the oldest made room
    assert after.get("header_timeout", 0) > before.get("header_timeout", 0)
    _served_promptly(server, keys["writer"], times=2)


def test_a_request_that_never_finishes_its_headers_is_408(slow):
    server, keys = slow
    with _connect(server.port) as sock:  # on a keep-alive connection, after a complete request
        sock.sendall(f"GET /api/v1/stats HTTP/1.1\r\nHost: x\r\nX-API-Key: {keys['writer']}\r\n\r\n".encode())
        assert _read_response(sock, 5)[0] == 200
        sock.sendall(b"GET /api/v1/stats HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        status, body = _read_response(sock, HEADER_TIMEOUT + 3)
        assert status == 408 and body["error"]["code"] == "request_timeout"
        assert HEADER_TIMEOUT - 0.5 < time.monotonic() - started < HEADER_TIMEOUT + 3
        assert _wait_closed([sock], time.monotonic() + 2) == [b""]


def test_headers_are_bounded_in_size(slow):
    server, _ = slow
    with _connect(server.port) as sock:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(40):  # 80 kB of headers, never ended
                sock.sendall(b"X-Filler: " + b"a" * 2000 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while sending: the status was written first
        status, _ = _read_response(sock, 5)
        assert status in (400, 431)  # 431 (httptools, guarded); h11 refuses it itself: 400

"""A full disk, a data folder owned by another process and an incomplete document are typed
answers (507, 503, 409) with the error envelope, on a connection that stays open; and what the
server writes to disk is private whatever the umask.

The faults come from a store plugin written here (a memory store that raises the error a
document's text names), installed for the server process only through ``PYTHONPATH`` — the
plugin path a third-party store takes."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from server_helpers import VPA, base_env, error, make_key, ok

PLUGIN = """
from vpa import errors
from vpa.hookspecs import hookimpl
from vpa.stores.memory import MemoryStore

FAULTS = ("StorageFull", "DataFolderLocked", "IncompleteDocument")


class FaultStore(MemoryStore):
    @classmethod
    def from_config(cls, config):
        return cls(None)

    async def _upsert(self, info, records):
        for record in records:
            for name in FAULTS:
                if f"FAULT:{name}" in record.text:
                    raise getattr(errors, name)(f"injected {name}")
        await super()._upsert(info, records)


@hookimpl
def vpa_register_stores(register):
    register("faulty", FaultStore.from_config, capabilities=MemoryStore.capabilities,
             description="raises the error a record's text names (tests)")
"""


@pytest.fixture(scope="module")
def faulty(server_factory, tmp_path_factory):
    site = tmp_path_factory.mktemp("fault-plugin")
    (site / "vpa_fault_store.py").write_text(textwrap.dedent(PLUGIN))
    dist = site / "vpa_fault_store-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vpa-fault-store\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vpa]\nfault_store = vpa_fault_store\n")
    server, made = server_factory(
        "faulty", keys={"writer": ("writer", "t")}, VPA_VECTOR_DB_PROVIDER="faulty", PYTHONPATH=str(site)
    )
    return server, made["writer"]["key"]


def _exchange(sock: socket.socket, request: bytes) -> tuple[int, dict[str, str], dict]:
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, json.loads(body)


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("StorageFull", 507, "storage_full"),
        ("DataFolderLocked", 503, "data_folder_locked"),
        ("IncompleteDocument", 409, "incomplete_document"),
    ],
)
def test_store_faults_are_typed_and_keep_the_connection(faulty, fault, status, code):
    server, key = faulty
    document = json.dumps({"id": f"doc-{fault}", "content": f"payload FAULT:{fault}"}).encode()
    request = (
        f"POST /api/v1/documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(document)}\r\n\r\n"
    ).encode() + document
    stats = f"GET /api/v1/stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        documents = _exchange(sock, stats)[2]["data"]["documents"]
        got, headers, body = _exchange(sock, request)
        assert (got, body["status"], body["error"]["code"]) == (status, "error", code), body
        assert "close" not in headers.get("connection", "")
        got, _, body = _exchange(sock, stats)  # the same connection serves the next request
        assert got == 200 and body["data"]["documents"] == documents  # nothing of the failed write stored
    with server.client(key) as client:
        error(client.get(f"/documents/doc-{fault}"), 404, "document_not_found")
        ok(client.post("/documents", json={"id": f"fine-{fault}", "content": "no fault here"}), 201)


def test_declared_limits_are_413_limit_exceeded(faulty):
    server, key = faulty
    deep: dict = {"a": 1}
    for _ in range(100):
        deep = {"$not": deep}
    with server.client(key) as client:
        err = error(client.post("/search", json={"query": "x", "filters": deep}), 413, "limit_exceeded")
        assert err["field"] == "filters"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _no_umask() -> None:
    os.umask(0)


def test_data_folder_keys_and_audit_log_are_private_whatever_the_umask(server_factory, tmp_path):
    data = tmp_path / "fresh" / "data"  # neither exists yet: the server creates both
    env = base_env(data)
    audit = tmp_path / "fresh" / "logs" / "audit.log"
    server, _ = server_factory("private", "--audit-log", str(audit), env=env, preexec_fn=_no_umask)
    assert _mode(data) == 0o700
    assert _mode(audit) == 0o600 and _mode(audit.parent) == 0o700
    created = subprocess.run(
        [VPA, "keys", "create", "--role", "writer", "--tenant", "t", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        preexec_fn=_no_umask,
    )
    assert created.returncode == 0, created.stderr
    assert _mode(data / "keys.json") == 0o600 and _mode(data / "keys.json.lock") == 0o600
    with server.client(json.loads(created.stdout)["key"]) as client:
        ok(client.post("/documents", json={"id": "d", "content": "private"}), 201)
    deadline = time.monotonic() + 5  # the audit line is written once the response is sent
    while not audit.stat().st_size and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _mode(audit) == 0o600 and audit.stat().st_size > 0
    server.stop()
    audit.chmod(0o644)  # a log left readable by an older version is narrowed at the next start
    make_key(env, "reader", "t")
    server.start()
    assert _mode(audit) == 0o600

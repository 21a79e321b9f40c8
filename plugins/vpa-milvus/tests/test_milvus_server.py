"""The real Milvus standalone server: how the tests run it, and the store with authorization on.

`vpa_milvus.standalone.MilvusStandalone` starts the Milvus 2.3.5 binary of the ``milvus`` package
here with ``common.security.authorizationEnabled`` on (a second server beside the session's one,
for this module only). A missing or wrong token must be a typed `StoreAuthError` — never
`StoreUnavailable`, which pymilvus's own message suggests ("Fail connecting to server ...,
illegal connection params or server unavailable") — and the right one (``root:Milvus``, Milvus
2.x's default superuser) must work for every kind of call. The launcher's listeners are read
from /proc: every port is one it chose, the embedded etcd's on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from vpa.errors import StoreAuthError
from vpa.models import Record
from vpa_milvus.standalone import DEFAULT_TOKEN, MilvusStandalone
from vpa_milvus.store import MilvusStore

EXTERNAL_URI = os.environ.get("VPA_MILVUS_URI", "")


@pytest.fixture(scope="module")
def auth_server(milvus_binary_dir) -> Iterator[MilvusStandalone]:
    server = MilvusStandalone(authorization=True, binary_dir=milvus_binary_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def listeners(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket the process holds, from /proc."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            address_hex, port_hex = local.split(":")
            raw = bytes.fromhex(address_hex)
            # /proc prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.append((socket.inet_ntop(family, raw), int(port_hex, 16)))
    return found


def test_every_listener_is_a_chosen_port_and_etcd_is_loopback_only(auth_server):
    """The server opens no port it was not given (no fixed 2379/9091/19530 that another server
    could hold), and the embedded etcd listens on 127.0.0.1 only. The gRPC and metrics servers
    of Milvus 2.3.5 listen on every interface (no listen-address option): the README says so."""
    assert auth_server.pid is not None
    found = listeners(auth_server.pid)
    chosen = set(auth_server.ports.values())
    assert found, "the server holds no listening socket"
    assert {port for _, port in found} <= chosen, (found, auth_server.ports)
    etcd = {auth_server.ports["etcd_port"], auth_server.ports["etcd_peer_port"]}
    etcd_listeners = [(address, port) for address, port in found if port in etcd]
    assert {port for _, port in etcd_listeners} == etcd
    assert all(address == "127.0.0.1" for address, _ in etcd_listeners), etcd_listeners
    assert auth_server.ports["proxy_port"] in {port for _, port in found}
    assert auth_server.uri == f"http://127.0.0.1:{auth_server.ports['proxy_port']}"


@pytest.mark.parametrize(
    "token", [None, "root:wrong-password", "nobody:Milvus"], ids=["none", "wrong-password", "unknown-user"]
)
async def test_a_missing_or_wrong_token_is_a_store_auth_error(auth_server, token):
    store = MilvusStore(auth_server.uri, token=token, timeout=30)
    try:
        with pytest.raises(StoreAuthError) as caught:
            await store.list_collections()
        assert "wrong-password" not in str(caught.value)  # the token is never in a message
        with pytest.raises(StoreAuthError):
            await store.create_collection("denied", 4)
        health = await store.health()
        assert not health.ok and "StoreAuthError" in health.detail
    finally:
        await store.close()
    # nothing was created by the refused calls
    admin = MilvusStore(auth_server.uri, token=DEFAULT_TOKEN, timeout=30)
    try:
        assert "denied" not in await admin.list_collections()
    finally:
        await admin.close()


async def test_the_right_token_works_for_every_kind_of_call(auth_server):
    assert auth_server.token == DEFAULT_TOKEN
    store = MilvusStore(auth_server.uri, token=auth_server.token, timeout=60)
    try:
        assert (await store.health()).ok
        await store.create_collection("authed", 4)
        assert "authed" in await store.list_collections()
        records = [
            Record(
                f"r{i}",
                [1.0, float(i), 0.5, -1.0],
                f"text {i}",
                {"year": 2000 + i, "lang": "fr" if i % 2 == 0 else "en"},
            )
            for i in range(6)
        ]
        assert await store.upsert("authed", records) == 6
        assert await store.count("authed") == 6
        assert await store.count("authed", filter={"lang": "en"}) == 3
        hits = await store.query("authed", [1.0, 5.0, 0.5, -1.0], top_k=2, filter={"year": {"$gte": 2002}})
        assert [h.id for h in hits] == ["r5", "r4"]
        got = await store.get("authed", ["r1", "missing", "r0"])
        assert [r.id for r in got] == ["r1", "r0"] and got[0].metadata == {"year": 2001, "lang": "en"}
        pages = [page async for page in store.scroll("authed", {"lang": "fr"}, batch_size=2)]
        assert sorted(r.id for page in pages for r in page.records) == ["r0", "r2", "r4"]
        assert await store.update("authed", filter={"lang": "fr"}, set={"lang": "de"}) == 3
        assert await store.count("authed", filter={"lang": "de"}) == 3
        assert await store.delete("authed", filter={"lang": "de"}) == 3
        assert await store.count("authed") == 3
        assert await store.drop_collection("authed") is True
        assert "authed" not in await store.list_collections()
    finally:
        await store.close()


def test_stop_ends_the_server_by_its_pid_and_removes_its_data(milvus_binary_dir):
    """A server of its own (the module's is still in use): stopped, its process is gone and its
    data folder removed; stopping again does nothing."""
    server = MilvusStandalone(binary_dir=milvus_binary_dir)
    server.start()
    pid, data_dir = server.pid, server.data_dir
    assert pid is not None and data_dir is not None and data_dir.is_dir()
    server.stop()
    assert server.pid is None and not data_dir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped by stop(): no such process any more
    server.stop()


async def test_a_server_without_bm25_declares_no_lexical_search(milvus_server):
    """Milvus 2.3.5 has no BM25 function: a server store declares no lexical search before or
    after connecting (its version read on the first call), creates collections without the BM25
    fields, and refuses both queries with UnsupportedOperation; lexical=true is a ConfigError
    naming the version on the first call, before any collection is touched."""
    from vpa.errors import ConfigError, UnsupportedOperation
    from vpa_milvus import codec

    if EXTERNAL_URI:
        pytest.skip("the session's server is an external one, of a version not known here")
    store = milvus_server.store()
    try:
        assert not store.capabilities.lexical_search
        await store.create_collection("no_bm25", 2)
        await store.upsert("no_bm25", [Record("a", [1.0, 0.0], "lexical words", {})])
        assert not store.capabilities.lexical_search and not store.capabilities.native_fusion
        client = await store.run_vendor("connect", store._connected)
        assert not codec.has_lexical(client.describe_collection("no_bm25"))
        with pytest.raises(UnsupportedOperation, match="does not declare lexical search"):
            await store.lexical_query("no_bm25", "lexical")
        with pytest.raises(UnsupportedOperation, match="does not declare lexical search"):
            await store.hybrid_query("no_bm25", [1.0, 0.0], "lexical")
        await store.drop_collection("no_bm25")
    finally:
        await store.close()
    told = milvus_server.store(lexical=True)
    try:
        assert told.capabilities.lexical_search  # declared up front, as asked
        with pytest.raises(ConfigError, match=r"lexical is true.*needs Milvus 2\.5"):
            await told.list_collections()
    finally:
        await told.close()

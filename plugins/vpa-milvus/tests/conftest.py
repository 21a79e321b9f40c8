"""Fixtures for the Milvus plugin's tests: real Milvus Lite files in temporary folders, and a real
Milvus standalone server.

Milvus Lite runs in the store's helper process (``python -m vpa_milvus.lite_server``, one per test
process); a store releases its file when closed.

Server mode runs against the Milvus 2.3.5 standalone server of the PyPI package ``milvus`` (the
``server-test`` extra), started once per test session by `milvus_server` on free ports
(`vpa_milvus.standalone`: embedded etcd on 127.0.0.1, data in a temporary folder, stopped by its
PID and the folder removed at the end). ``VPA_MILVUS_URI`` (and ``VPA_MILVUS_TOKEN``) points the
server-mode tests at another Milvus instead, e.g. a 2.4+ cluster; then none is started here.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from vpa_milvus.standalone import MilvusStandalone
from vpa_milvus.store import MilvusStore

EXTERNAL_URI = os.environ.get("VPA_MILVUS_URI", "")
EXTERNAL_TOKEN = os.environ.get("VPA_MILVUS_TOKEN") or None


@dataclass(frozen=True)
class Server:
    """Where the server-mode tests connect."""

    uri: str
    token: str | None

    def store(self, **options) -> MilvusStore:
        return MilvusStore(self.uri, token=self.token, **options)


@pytest.fixture(scope="session")
def milvus_binary_dir() -> Iterator[Path]:
    """One unpacked copy of the server binary (~250 MB, ~7 s to unpack) for every server this
    session starts; removed at the end."""
    folder = Path(tempfile.mkdtemp(prefix="vpa-milvus-bin-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def milvus_server(milvus_binary_dir) -> Iterator[Server]:
    """The Milvus server of this test session: the one VPA_MILVUS_URI names, or a Milvus 2.3.5
    standalone started here (authorization off) and stopped when the session ends."""
    if EXTERNAL_URI:
        yield Server(EXTERNAL_URI, EXTERNAL_TOKEN)
        return
    with MilvusStandalone(binary_dir=milvus_binary_dir) as server:
        yield Server(server.uri, server.token)


@pytest.fixture(scope="module", params=["lite", "server"])
def mode_store_factory(request, tmp_path_factory) -> Callable[[], MilvusStore]:
    """Makes stores of one mode: a Milvus Lite file, or the session's Milvus server."""
    if request.param == "server":
        server: Server = request.getfixturevalue("milvus_server")
        return server.store
    folder = tmp_path_factory.mktemp("lite")
    return lambda: MilvusStore(str(folder / "vpa.db"))


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for a module's module-scoped stores and sync hypothesis tests."""
    with asyncio.Runner() as r:
        yield r


@pytest.fixture
def lite_path(tmp_path) -> str:
    return str(tmp_path / "milvus" / "vpa.db")


@pytest.fixture
async def lite_store(lite_path) -> MilvusStore:
    store = MilvusStore(lite_path)
    yield store
    await store.close()

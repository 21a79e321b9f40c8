"""Fixtures for the Milvus plugin's tests: real Milvus Lite files in temporary folders.

Milvus Lite runs in the store's helper process (``python -m vpa_milvus.lite_server``, one per test
process); a store releases its file when closed. Server mode needs a running Milvus: set
``VPA_MILVUS_URI`` (and optionally ``VPA_MILVUS_TOKEN``) to run the server-mode tests against it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from vpa_milvus.store import MilvusStore

SERVER_URI = os.environ.get("VPA_MILVUS_URI", "")
SERVER_TOKEN = os.environ.get("VPA_MILVUS_TOKEN") or None
SERVER_SKIP_REASON = (
    "no Milvus server configured: set VPA_MILVUS_URI=http://host:19530 (and VPA_MILVUS_TOKEN if "
    "authentication is on) to run the server-mode tests"
)


@pytest.fixture(scope="module", params=["lite", "server"])
def mode_store_factory(request, tmp_path_factory):
    """Makes stores of one mode: a Milvus Lite file, or the server named by VPA_MILVUS_URI."""
    if request.param == "server":
        if not SERVER_URI:
            pytest.skip(SERVER_SKIP_REASON)
        return lambda: MilvusStore(SERVER_URI, token=SERVER_TOKEN)
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

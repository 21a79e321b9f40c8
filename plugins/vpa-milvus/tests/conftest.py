"""Fixtures for the Milvus plugin's tests: real Milvus Lite files in temporary folders.

Milvus Lite runs inside the test process (pymilvus starts it for a ``.db`` path); a store releases
it when closed. Server mode needs a running Milvus: set ``VPA_MILVUS_URI`` (and optionally
``VPA_MILVUS_TOKEN``) to run the server-mode tests against it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from vpa_milvus import MilvusStore

SERVER_URI = os.environ.get("VPA_MILVUS_URI", "")
SERVER_TOKEN = os.environ.get("VPA_MILVUS_TOKEN") or None
SERVER_SKIP_REASON = (
    "no Milvus server configured: set VPA_MILVUS_URI=http://host:19530 (and VPA_MILVUS_TOKEN if auth "
    "is on) to run the server-mode tests, e.g. against `docker run -p 19530:19530 milvusdb/milvus standalone`"
)


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

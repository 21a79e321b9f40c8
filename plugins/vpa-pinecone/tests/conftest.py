"""Fixtures: the Pinecone stand-in (one per session, on a free loopback port) and stores on it."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from standin import PineconeStandIn
from vpa_pinecone.settings import PineconeSettings
from vpa_pinecone.store import PineconeStore

API_KEY = "standin-test-key"
#: The shared index's dimension: collections of up to this many dimensions share it (zero-padded).
INDEX_DIMENSION = 64
#: Writes become visible this long after they are acknowledged: the stores must settle() to read them.
SESSION_LAG = 0.02

REAL_KEY = os.environ.get("VPA_PINECONE_API_KEY")
REAL_SKIP = (
    "real Pinecone not configured: set VPA_PINECONE_API_KEY (and optionally VPA_PINECONE_INDEX, "
    "VPA_PINECONE_CLOUD, VPA_PINECONE_REGION, VPA_PINECONE_DIMENSION, VPA_PINECONE_HOST) to run the "
    "conformance suite against the real service"
)

_names = itertools.count()


def wait_ready(url: str, api_key: str, timeout: float = 10.0) -> None:
    """Readiness poll: the control plane answers an authenticated request."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            response = httpx.get(
                f"{url}/indexes", headers={"Api-Key": api_key, "X-Pinecone-Api-Version": "2026-07"}
            )
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"Pinecone stand-in at {url} did not become ready")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


@pytest.fixture(scope="session")
def standin() -> Iterator[PineconeStandIn]:
    server = PineconeStandIn(API_KEY, lag=SESSION_LAG).start()
    try:
        wait_ready(server.url, API_KEY)
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_standin() -> Callable[..., PineconeStandIn]:
    """Start a private stand-in with its own settings (lag, LSN headers); stopped after the test."""
    started: list[PineconeStandIn] = []

    def start(**kwargs: Any) -> PineconeStandIn:
        server = PineconeStandIn(API_KEY, **kwargs).start()
        started.append(server)
        wait_ready(server.url, API_KEY)
        return server

    yield start
    for server in started:
        server.stop()


def unique(prefix: str = "c") -> str:
    return f"{prefix}{os.getpid()}x{next(_names)}"


@pytest.fixture
def make_store(standin: PineconeStandIn) -> Callable[..., PineconeStore]:
    """Build stores on the session stand-in; each is closed after the test."""
    stores: list[PineconeStore] = []

    def make(
        server: PineconeStandIn | None = None, *, api_key: str | None = API_KEY, **kwargs: Any
    ) -> PineconeStore:
        server = server or standin
        options: dict[str, Any] = {
            "host": server.url,
            "index": "vpa-tests",
            "dimension": INDEX_DIMENSION,
            "settle_timeout": 20.0,
        }
        options.update(kwargs)
        store = PineconeStore(PineconeSettings(**options), api_key=api_key)
        stores.append(store)
        return store

    yield make
    import asyncio

    async def close_all() -> None:
        for store in stores:
            await store.close()

    asyncio.run(close_all())

"""Fixtures: the Weaviate stand-in (a subprocess on free 127.0.0.1 ports) and stores bound to it.

Each stand-in is started by the tests, waited for with a readiness poll on
``/v1/.well-known/ready`` (never a fixed sleep) and stopped by its own PID.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from vpa_weaviate.settings import WeaviateSettings
from weaviate_support import RealWeaviate, StandIn, start_standin, stop_standin


@pytest.fixture(scope="session")
def standin() -> Iterator[StandIn]:
    """The default stand-in: auto-schema on (Weaviate's default), no API key."""
    server = start_standin()
    try:
        yield server
    finally:
        stop_standin(server)


@pytest.fixture
def unique_name() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


# --- a real Weaviate, when the user supplies one ----------------------------------------------

REAL_URL = os.environ.get("VPA_WEAVIATE_URL")
HOW_TO_RUN_REAL = (
    "no real Weaviate: set VPA_WEAVIATE_URL=http(s)://host[:port] (and VPA_WEAVIATE_API_KEY if it needs "
    "one, VPA_WEAVIATE_GRPC_URL if gRPC is not on <host>:50051 or grpc-<host>:443) to run these tests "
    "against it"
)


@pytest.fixture(scope="session")
def real_weaviate() -> Iterator[RealWeaviate]:
    """The user's Weaviate, with a class prefix unique to this run; every class created under it
    is dropped at the end of the session."""
    if not REAL_URL:
        pytest.skip(HOW_TO_RUN_REAL)
    prefix = "Vpatest" + uuid.uuid4().hex[:8]
    options: dict[str, object] = {"url": REAL_URL, "class_prefix": prefix, "timeout": 60.0}
    grpc_url = os.environ.get("VPA_WEAVIATE_GRPC_URL")
    if grpc_url:
        parts = urlsplit(grpc_url if "://" in grpc_url else f"grpc://{grpc_url}")
        secure = parts.scheme in ("https", "grpcs")
        options.update(
            grpc_host=parts.hostname, grpc_port=parts.port or (443 if secure else 50051), grpc_secure=secure
        )
    real = RealWeaviate(WeaviateSettings(**options), os.environ.get("VPA_WEAVIATE_API_KEY") or None)  # type: ignore[arg-type]
    try:
        yield real
    finally:
        _drop_run_classes(real, prefix)


def _drop_run_classes(real: RealWeaviate, prefix: str) -> None:
    store = real.store()
    client = store._client()  # the store's own connection: every class under the prefix goes
    try:
        for name in client.collections.list_all(simple=True):
            if name.startswith(prefix):
                client.collections.delete(name)
    finally:
        client.close()

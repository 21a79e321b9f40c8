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
from vpa_weaviate import WeaviateSettings
from weaviate_support import StandIn, start_standin, stop_standin


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
def real_weaviate() -> Iterator[WeaviateSettings]:
    """Settings for the user's Weaviate, with a class prefix unique to this run; every class
    created under it is dropped at the end of the session."""
    if not REAL_URL:
        pytest.skip(HOW_TO_RUN_REAL)
    prefix = "Vpatest" + uuid.uuid4().hex[:8]
    options: dict[str, object] = {
        "api_key": os.environ.get("VPA_WEAVIATE_API_KEY") or None,
        "class_prefix": prefix,
        "timeout": 60.0,
    }
    grpc_url = os.environ.get("VPA_WEAVIATE_GRPC_URL")
    if grpc_url:
        parts = urlsplit(grpc_url if "://" in grpc_url else f"grpc://{grpc_url}")
        secure = parts.scheme in ("https", "grpcs")
        options.update(
            grpc_host=parts.hostname, grpc_port=parts.port or (443 if secure else 50051), grpc_secure=secure
        )
    settings = WeaviateSettings.from_url(REAL_URL, **options)  # type: ignore[arg-type]
    try:
        yield settings
    finally:
        _drop_run_classes(settings, prefix)


def _drop_run_classes(settings: WeaviateSettings, prefix: str) -> None:
    import weaviate
    from weaviate.classes.init import Auth

    grpc_host, grpc_port, grpc_secure = settings.resolved_grpc
    client = weaviate.connect_to_custom(
        http_host=settings.http_host,
        http_port=settings.http_port,
        http_secure=settings.http_secure,
        grpc_host=grpc_host,
        grpc_port=grpc_port,
        grpc_secure=grpc_secure,
        auth_credentials=Auth.api_key(settings.api_key) if settings.api_key else None,
        skip_init_checks=True,
    )
    try:
        for name in client.collections.list_all(simple=True):
            if name.startswith(prefix):
                client.collections.delete(name)
    finally:
        client.close()

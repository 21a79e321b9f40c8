"""Fixtures: the Weaviate stand-in (a subprocess on free 127.0.0.1 ports) and stores bound to it.

Each stand-in is started by the tests, waited for with a readiness poll on
``/v1/.well-known/ready`` (never a fixed sleep) and stopped by its own PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from vpa_weaviate import WeaviateSettings, WeaviateStore

HERE = Path(__file__).resolve().parent


@dataclass
class StandIn:
    """A running stand-in process."""

    http_port: int
    grpc_port: int
    process: subprocess.Popen[str]
    api_key: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def settings(self, **overrides: object) -> WeaviateSettings:
        options: dict[str, object] = {
            "http_host": "127.0.0.1",
            "http_port": self.http_port,
            "grpc_host": "127.0.0.1",
            "grpc_port": self.grpc_port,
            "api_key": self.api_key,
            "timeout": 20.0,
            "init_timeout": 5.0,
        }
        options.update(overrides)
        return WeaviateSettings(**options)  # type: ignore[arg-type]

    def store(self, **overrides: object) -> WeaviateStore:
        return WeaviateStore(self.settings(**overrides))

    def requests(self) -> dict[str, int]:
        """The stand-in's per-endpoint request counters."""
        return dict(httpx.get(f"{self.url}/_standin/requests", timeout=5).json())

    def alive(self) -> bool:
        return self.process.poll() is None


def start_standin(*args: str, api_key: str | None = None, timeout: float = 30.0) -> StandIn:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("WEAVIATE_STANDIN_API_KEY", None)
    if api_key:
        env["WEAVIATE_STANDIN_API_KEY"] = api_key
    process = subprocess.Popen(
        [sys.executable, "-m", "standin", *args],
        cwd=HERE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until the servers are bound, or the process died
    if not line:
        process.wait(timeout=5)
        raise RuntimeError(f"the Weaviate stand-in exited with status {process.returncode} before listening")
    ports = json.loads(line)
    standin = StandIn(
        ports["http_port"],
        ports["grpc_port"],
        process,
        api_key,
        dict(zip(args[::2], args[1::2], strict=False)),
    )
    deadline = time.monotonic() + timeout
    while True:  # readiness poll
        try:
            if httpx.get(f"{standin.url}/v1/.well-known/ready", timeout=1).status_code == 200:
                return standin
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not standin.alive():
            stop_standin(standin)
            raise RuntimeError("the Weaviate stand-in did not become ready")
        time.sleep(0.05)


def stop_standin(standin: StandIn) -> None:
    process = standin.process
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()


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

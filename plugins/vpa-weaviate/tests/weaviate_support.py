"""Test support: start and stop the Weaviate stand-in (a subprocess on free 127.0.0.1 ports).

A stand-in is started by the tests, waited for with a readiness poll on ``/v1/.well-known/ready``
(never a fixed sleep) and stopped by its own PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import attrs
import httpx
import weaviate
from vpa_weaviate.settings import WeaviateSettings
from vpa_weaviate.store import WeaviateStore

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
            "host": "127.0.0.1",
            "port": self.http_port,
            "grpc_host": "127.0.0.1",
            "grpc_port": self.grpc_port,
            "timeout": 20.0,
            "init_timeout": 5.0,
        }
        options.update(overrides)
        return WeaviateSettings(**options)  # type: ignore[arg-type]

    def store(self, **overrides: object) -> WeaviateStore:
        """A store on this stand-in; ``api_key`` (default: the stand-in's) goes to the store, the
        rest are settings."""
        api_key = overrides.pop("api_key", self.api_key)
        return WeaviateStore(self.settings(**overrides), api_key=api_key)  # type: ignore[arg-type]

    def client(self, *, skip_init_checks: bool = True) -> weaviate.WeaviateClient:
        """The official client on this stand-in, without VPA (to see what the store wrote)."""
        return weaviate.connect_to_custom(
            http_host="127.0.0.1",
            http_port=self.http_port,
            http_secure=False,
            grpc_host="127.0.0.1",
            grpc_port=self.grpc_port,
            grpc_secure=False,
            skip_init_checks=skip_init_checks,
        )

    def requests(self) -> dict[str, int]:
        """The stand-in's per-endpoint request counters."""
        return dict(httpx.get(f"{self.url}/_standin/requests", timeout=5).json())

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class RealWeaviate:
    """The user's Weaviate (``VPA_WEAVIATE_URL``): settings and the API key to reach it."""

    settings: WeaviateSettings
    api_key: str | None = None

    def store(self, **overrides: object) -> WeaviateStore:
        api_key = overrides.pop("api_key", self.api_key)
        settings = attrs.evolve(self.settings, **overrides) if overrides else self.settings
        return WeaviateStore(settings, api_key=api_key)  # type: ignore[arg-type]


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

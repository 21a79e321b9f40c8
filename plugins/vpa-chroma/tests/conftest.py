"""Fixtures: a real Chroma server for the session, and stores in both modes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from vpa_chroma.store import ChromaStore


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _chroma_cli() -> str:
    beside = Path(sys.executable).parent / "chroma"
    found = str(beside) if beside.exists() else shutil.which("chroma")
    if not found:
        raise RuntimeError("the `chroma` command (installed with chromadb) is not on PATH")
    return found


class ChromaServer:
    def __init__(self, host: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
        self.host, self.port, self.process, self.log = host, port, process, log


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """`chroma run` on 127.0.0.1 and a free port; ready when its heartbeat answers; stopped by PID."""
    root = tmp_path_factory.mktemp("chroma-server")
    log = root / "server.log"
    host, port = "127.0.0.1", _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [_chroma_cli(), "run", "--path", str(root / "data"), "--host", host, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False", "NO_COLOR": "1"},
        )
    try:
        deadline = time.monotonic() + 60
        url = f"http://{host}:{port}/api/v2/heartbeat"
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"chroma run exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"chroma run did not become ready in 60 s: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield ChromaServer(host, port, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(params=["embedded", "server"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(mode: str, tmp_path: Path, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A factory of fresh stores on the same data (same folder, or the session's server)."""
    if mode == "embedded":
        path = tmp_path / "chroma"
        return lambda **kw: ChromaStore(path=path, **kw)
    server = request.getfixturevalue("chroma_server")
    return lambda **kw: ChromaStore(host=server.host, port=server.port, **kw)


@pytest.fixture
async def chroma_store(make_store):  # type: ignore[no-untyped-def]
    s = make_store()
    yield s
    await s.close()

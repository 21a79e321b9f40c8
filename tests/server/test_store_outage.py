"""The engine server going away and coming back, for real: `vpa serve` over a `chroma run`
server that the test kills (SIGKILL, by PID) and starts again on the same port and folder.

While it is away /health is 503 within a few seconds and every request fails with
``store_unavailable`` rather than hanging or answering 500; once it is back the same `vpa serve`
process recovers without a restart and serves what it had acknowledged before."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from server_helpers import error, free_port, ok

#: Bounds that catch a hang, not a speed target: each poll loop gives up after this long.
WAIT = 60.0


def _chroma_cli() -> str:
    beside = Path(sys.executable).parent / "chroma"
    found = str(beside) if beside.exists() else shutil.which("chroma")
    if not found:
        pytest.fail("the `chroma` command (installed with chromadb, a vpa-chroma dependency) is not on PATH")
    return found


class Chroma:
    """`chroma run` on 127.0.0.1:port over one data folder, restartable, stopped by its PID."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.folder / "chroma.log").open("ab") as log:
            self.process = subprocess.Popen(
                [_chroma_cli(), "run", "--path", str(self.folder / "data"), "--host", "127.0.0.1",
                 "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.folder,
                env={**os.environ, "ANONYMIZED_TELEMETRY": "False", "NO_COLOR": "1"},
            )
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.folder / "chroma.log").read_text()[-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/api/v2/heartbeat", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("chroma run did not become ready")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None


@pytest.fixture
def chroma(tmp_path: Path):
    server = Chroma(tmp_path)
    server.start()
    yield server
    server.kill()


def _poll(client: httpx.Client, path: str, status: int) -> float:
    """Seconds until GET ``path`` answers ``status``; fails after WAIT."""
    started = time.monotonic()
    while time.monotonic() - started < WAIT:
        try:
            if client.get(path).status_code == status:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"GET {path} did not answer {status} within {WAIT:.0f} s")


def test_engine_away_is_503_and_its_return_recovers(chroma: Chroma, server_factory) -> None:
    server, made = server_factory(
        "outage", keys={"w": ("writer", "t")}, VPA_VECTOR_DB_PROVIDER="chroma",
        VPA_VECTOR_DB_HOST="127.0.0.1", VPA_VECTOR_DB_PORT=str(chroma.port),
    )
    with server.client(made["w"]["key"], timeout=30) as client, server.client(timeout=30) as anonymous:
        ok(client.post("/documents", json={"id": "a", "content": "wombats dig burrows"}), 201)
        ok(anonymous.get("/health"))

        chroma.kill()
        _poll(anonymous, "/health", 503)
        err = error(anonymous.get("/health"), 503, "store_unavailable")
        assert "store" in {d["field"] for d in err["details"]}
        for call in (
            lambda: client.post("/search", json={"query": "wombats"}),
            lambda: client.post("/documents", json={"id": "b", "content": "never acknowledged"}),
            lambda: client.get("/documents/a"),
        ):
            error(call(), 503, "store_unavailable")  # each answered (the client's 30 s bound), none 500
        assert server.process is not None and server.process.poll() is None

        chroma.start()  # the same port and folder: the engine comes back
        _poll(anonymous, "/health", 200)
        hits = ok(client.post("/search", json={"query": "wombats dig burrows"}))["results"]
        assert [h["document_id"] for h in hits][:1] == ["a"]
        assert ok(client.get("/documents/a"))["content"] == "wombats dig burrows"
        error(client.get("/documents/b"), 404)  # refused while away, so never stored
        ok(client.post("/documents", json={"id": "c", "content": "echidnas lay eggs"}), 201)

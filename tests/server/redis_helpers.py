"""A real `redis-server` for the shared-state tests: a free loopback port, its own folder, no
automatic persistence, a password, stopped by its own PID.

redis-server is a Debian package (`apt-get install -y redis-server`); `.ci/run` installs it. When it
is missing the tests fail saying so — they never skip.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from server_helpers import free_port

START_TIMEOUT = 30.0


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        pytest.fail("redis-server is not installed: run `apt-get install -y redis-server` (.ci/run does)")
    return found


class RedisServer:
    """One redis-server process. ``save()`` writes a snapshot (``SAVE``) into its folder, which a
    restart on the same port and folder loads: a restart that keeps the keys."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.process: subprocess.Popen | None = None
        self.log_path = folder / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.folder), "--requirepass", self.password]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.process.returncode}:\n{self.log()}")
            if self.command("PING") == "+PONG":
                return self
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"redis-server did not answer within {START_TIMEOUT} s:\n{self.log()}")

    def command(self, *words: str) -> str | None:
        """One inline command after AUTH; the first line of its answer, None if nothing answers."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                sock.sendall(f"AUTH {self.password}\r\n{' '.join(words)}\r\n".encode())
                data = b""
                while data.count(b"\r\n") < 2:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except OSError:
            return None
        lines = data.split(b"\r\n")
        return lines[1].decode() if len(lines) > 2 else None

    def save(self) -> None:
        assert self.command("SAVE") == "+OK"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Stop it by its PID (SIGTERM; with ``--save ''`` nothing is written on the way out)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

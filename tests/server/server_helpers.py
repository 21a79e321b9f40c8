"""Helpers of the REST API tests: `vpa serve` subprocesses on free loopback ports, keys, envelopes.

Each server runs with the `hashing` embedder and the `memory` store in its own temporary data
folder (unless a test asks otherwise), is waited for by polling /api/v1/health, and is stopped by
its own PID. Keys are made with `vpa keys create`, as a user would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

VPA = str(Path(sys.executable).parent / "vpa")
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPA_")}
    env.update(
        {
            "VPA_DATA_DIR": str(data_dir),
            "VPA_EMBEDDER": "hashing",
            "VPA_LOG_LEVEL": "WARNING",
            "VPA_CHUNK_SIZE": "200",
            "VPA_CHUNK_OVERLAP": "40",
            "VPA_AUTH_ENABLED": "true",
            "VPA_RATE_LIMIT_PER_MINUTE": "100000",
        }
    )
    env.update(extra)
    return env


def vpa(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([VPA, *args], capture_output=True, text=True, env=env, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"vpa {' '.join(args)} failed: {result.stderr}")
    return result


def create_key(env: dict[str, str], role: str, tenant: str, name: str = "") -> dict[str, Any]:
    """A key made by `vpa keys create --json`: its id, role, tenant and (once) the secret."""
    return json.loads(
        vpa(env, "keys", "create", "--role", role, "--tenant", tenant, "--name", name, "--json").stdout
    )


def make_key(env: dict[str, str], role: str, tenant: str, name: str = "") -> dict[str, Any]:
    """A key written straight into the server's key file by the `api-keys` authenticator (what
    `vpa keys create` does, without a process start per key; the CLI has its own tests)."""
    from vpa.auth.api_keys import ApiKeyAuthenticator

    info, secret = ApiKeyAuthenticator(Path(env["VPA_DATA_DIR"]) / "keys.json").create_key(role, tenant, name)
    return {
        "key_id": info.key_id,
        "role": str(info.role),
        "tenant": info.tenant,
        "name": info.name,
        "key": secret,
    }


class Server:
    """One `vpa serve` process."""

    def __init__(
        self,
        folder: Path,
        env: dict[str, str],
        args: tuple[str, ...] = (),
        scheme: str = "http",
        preexec_fn: Any = None,
    ) -> None:
        self.folder = folder
        self.env = env
        self.args = args
        self.scheme = scheme
        #: Run in the server process before it starts (a lower open-files limit, a umask).
        self.preexec_fn = preexec_fn
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = folder / f"server-{self.port}.log"
        self.audit_path = folder / "audit.log"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, verify: Any = True) -> Server:
        self.port = free_port()
        self.log_path = self.folder / f"server-{self.port}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    VPA,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--audit-log",
                    str(self.audit_path),
                    *self.args,
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self.preexec_fn,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"vpa serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                httpx.get(f"{self.url}/api/v1/health", timeout=2, verify=verify)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"vpa serve did not answer within {START_TIMEOUT} s:\n{self.log()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def open_fds(self) -> int:
        """File descriptors the server process holds now."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop this server by its PID (SIGTERM: graceful; SIGKILL: a crash)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return process.returncode if process else None
        process.send_signal(sig)
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout=10)

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, **{"timeout": 30, **kwargs})


def ok(response: httpx.Response, status: int = 200) -> Any:
    """The ``data`` of a success envelope, after checking the status and the envelope."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "success" and set(body) == {"status", "data", "pagination"}, body
    return body["data"]


def error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The ``error`` of an error envelope, after checking the status (and the code)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error" and set(body["error"]) >= {"code", "message"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]

"""Milvus Lite outside the app's process: one host child process, one Lite server per data path.

The first store that uses a ``.db`` path starts the host (``python -m vpa_milvus.lite_server``,
see there why) and asks it to open the path; the host answers with the port its Lite server
serves on — a readiness handshake, no sleeping — and the store connects over gRPC to 127.0.0.1.
Later stores on the same path share that server. When the last of them is closed, the host stops
that server and closes the data, so another process can open the file; the reply only comes
once that is done.

The host itself stays up for later paths and exits with this process: `shutdown` (run at exit)
closes its stdin and waits for it, stopping it by its own PID if it does not exit in time; and
should this process die, the host sees end-of-file on its stdin and exits too.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from typing import Any

from vpa.errors import DependencyMissing, StoreTimeout, StoreUnavailable

STOP_TIMEOUT = 15.0


class LiteHost:
    """The child process and its request/reply pipe (one request at a time)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.buffer = b""

    @classmethod
    def start(cls) -> LiteHost:
        try:
            import milvus_lite  # noqa: F401
        except ImportError as exc:
            raise DependencyMissing("Milvus Lite is not installed: pip install 'vpa-milvus[lite]'") from exc
        process = subprocess.Popen(
            [sys.executable, "-m", "vpa_milvus.lite_server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        return cls(process)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(json.dumps(message).encode("utf-8") + b"\n")
            stdin.flush()
        except OSError as exc:
            raise StoreUnavailable(f"the Milvus Lite host process is gone: {exc}") from exc
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StoreTimeout(f"Milvus Lite did not answer {message.get('op')!r} within {timeout:.0f} s")
            ready, _, _ = select.select([stdout], [], [], remaining)
            if ready:
                chunk = os.read(stdout.fileno(), 65536)
                if not chunk:
                    raise StoreUnavailable(
                        f"the Milvus Lite host process exited (status {self.process.poll()}); see its stderr"
                    )
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line.decode("utf-8"))

    def stop(self) -> None:
        process = self.process
        try:
            if process.stdin is not None:
                process.stdin.close()
        except OSError:
            pass
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        finally:
            if process.stdout is not None:
                process.stdout.close()


_lock = threading.Lock()
_host: LiteHost | None = None
#: path → [port, users]
_paths: dict[str, list[int]] = {}


def _ensure_host() -> LiteHost:
    global _host
    if _host is None or not _host.alive():
        if _host is not None:
            _host.stop()
        _paths.clear()  # whatever the old host served is gone with it
        _host = LiteHost.start()
    return _host


def acquire(path: str, timeout: float) -> str:
    """The gRPC URI of the Milvus Lite serving ``path`` (opened if needed); counts one user."""
    with _lock:
        host = _ensure_host()
        entry = _paths.get(path)
        if entry is None:
            reply = host.request({"op": "open", "path": path}, timeout)
            if not reply.get("ok"):
                raise StoreUnavailable(
                    f"Milvus Lite cannot open {path}: {reply.get('error')} "
                    "(one process uses a Milvus Lite file at a time)"
                )
            entry = _paths[path] = [int(reply["port"]), 0]
        entry[1] += 1
        return f"http://127.0.0.1:{entry[0]}"


def release(path: str, timeout: float = 60.0) -> None:
    """Forget one user of ``path``; the last one has the host close it (and waits for that)."""
    with _lock:
        entry = _paths.get(path)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _paths[path]
        if _host is not None and _host.alive():
            reply = _host.request({"op": "close", "path": path}, timeout)
            if not reply.get("ok"):
                raise StoreUnavailable(f"Milvus Lite could not close {path}: {reply.get('error')}")


def users(path: str) -> int:
    with _lock:
        entry = _paths.get(path)
        return entry[1] if entry else 0


def host_pid() -> int | None:
    with _lock:
        return _host.pid if _host is not None and _host.alive() else None


def shutdown() -> None:
    """Close every Lite path and stop the host process (also run at interpreter exit)."""
    global _host
    with _lock:
        host, _host = _host, None
        _paths.clear()
    if host is not None:
        host.stop()


atexit.register(shutdown)

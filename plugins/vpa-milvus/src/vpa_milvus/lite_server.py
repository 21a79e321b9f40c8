"""The Milvus Lite host process: ``python -m vpa_milvus.lite_server``.

Milvus Lite 3 is a pure-Python engine. Run inside the app's process (what pymilvus does for a
``.db`` URI), its threads compete with the app's event loop for the GIL, and a filtered count over
a few thousand records can stall the loop for hundreds of milliseconds. So the store runs it in
this child process instead (see lite.py) and talks to it over gRPC on 127.0.0.1, like to any
Milvus server.

Protocol with the parent, one JSON object per line:

- stdin ``{"op": "open", "path": P}`` → stdout ``{"ok": true, "port": N}``: Milvus Lite now
  serves the data at P on 127.0.0.1:N (or ``{"ok": false, "error": "..."}``, e.g. when another
  process holds P);
- stdin ``{"op": "close", "path": P}`` → stdout ``{"ok": true}`` once the server is stopped and
  the data closed (its lock released);
- end of file on stdin — the parent closed the pipe *or died* — closes everything and exits, so
  the host never outlives its parent.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any, TextIO


def _stop(*_: object) -> None:
    raise SystemExit(0)


class Host:
    def __init__(self) -> None:
        self.servers: dict[str, tuple[Any, Any, int]] = {}

    def open(self, path: str) -> dict[str, Any]:
        if path in self.servers:
            return {"ok": True, "port": self.servers[path][2]}
        from milvus_lite.adapter.grpc.server import start_server_in_thread

        server, db, port = start_server_in_thread(data_dir=path, host="127.0.0.1", port=0)
        self.servers[path] = (server, db, port)
        return {"ok": True, "port": port}

    def close(self, path: str) -> dict[str, Any]:
        entry = self.servers.pop(path, None)
        if entry is not None:
            server, db, _ = entry
            # The parent's last client on this path is closed: nothing is in flight.
            server.stop(grace=0.2).wait(5)
            db.close()
        return {"ok": True}

    def close_all(self) -> None:
        for path in list(self.servers):
            try:
                self.close(path)
            except Exception as exc:  # keep closing the others
                print(f"closing {path}: {type(exc).__name__}: {exc}", file=sys.stderr)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op, path = request.get("op"), request.get("path")
        if not isinstance(path, str):
            return {"ok": False, "error": "request without a path"}
        try:
            if op == "open":
                return self.open(path)
            if op == "close":
                return self.close(path)
        except Exception as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"ok": False, "error": f"unknown op {op!r}"}


def serve(requests: TextIO, replies: TextIO) -> None:
    host = Host()
    try:
        for line in requests:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
            except ValueError:
                reply: dict[str, Any] = {"ok": False, "error": "not JSON"}
            else:
                reply = host.handle(request)
            replies.write(json.dumps(reply) + "\n")
            replies.flush()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        host.close_all()


def main() -> int:
    signal.signal(signal.SIGTERM, _stop)
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything the engine prints goes to stderr (the log), never into the replies
    serve(sys.stdin, replies)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

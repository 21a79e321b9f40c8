"""Run the Weaviate stand-in: ``python -m standin [--http-port N] [--grpc-port N] ...``.

It binds 127.0.0.1 (port 0 picks free ports), prints ``{"http_port": ..., "grpc_port": ...,
"pid": ...}`` on one line once both servers listen, and serves until SIGTERM or SIGINT. The API
key, when wanted, comes from the ``WEAVIATE_STANDIN_API_KEY`` environment variable.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from .grpc_service import build_server as build_grpc
from .model import Model
from .rest import build_server as build_rest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m standin", description="Weaviate stand-in for tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, default=0)
    parser.add_argument("--grpc-port", type=int, default=0)
    parser.add_argument("--autoschema", choices=("on", "off"), default="on")
    parser.add_argument("--query-maximum-results", type=int, default=10_000)
    parser.add_argument("--grpc-max-message-size", type=int, default=104_858_000)
    parser.add_argument("--version", default="1.33.0", help="the Weaviate version to report and emulate")
    parser.add_argument("--normalize-vectors", action="store_true", help="return unit vectors")
    args = parser.parse_args(argv)

    model = Model(
        api_key=os.environ.get("WEAVIATE_STANDIN_API_KEY") or None,
        autoschema=args.autoschema == "on",
        query_maximum_results=args.query_maximum_results,
        grpc_max_message_size=args.grpc_max_message_size,
        version=args.version,
        normalize_vectors=args.normalize_vectors,
    )
    grpc_server, grpc_port = build_grpc(model, args.grpc_port, args.host)
    rest_server = build_rest(model, args.http_port, args.host)
    grpc_server.start()
    rest_thread = threading.Thread(
        target=rest_server.serve_forever, kwargs={"poll_interval": 0.1}, name="standin-rest", daemon=True
    )
    rest_thread.start()

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(
        json.dumps({"http_port": rest_server.server_address[1], "grpc_port": grpc_port, "pid": os.getpid()}),
        flush=True,
    )
    stop.wait()
    rest_server.shutdown()
    rest_server.server_close()
    grpc_server.stop(grace=0.2).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the Pinecone stand-in as its own process (for ``vpa conformance pinecone`` and manual use).

    cd plugins/vpa-pinecone/tests && python -m standin [--port 0] [--api-key KEY] [--lag 0.01]

Prints ``PINECONE_STANDIN_URL=http://127.0.0.1:<port>`` once it listens, then serves until it is
sent SIGTERM or SIGINT. Point VPA at it with ``VPA_VECTOR_DB_HOST`` (the printed URL) and
``VPA_VECTOR_DB_API_KEY`` (the key).
"""

from __future__ import annotations

import argparse
import signal
import threading

from .server import PineconeStandIn


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m standin", description="Pinecone wire-level stand-in")
    parser.add_argument("--port", type=int, default=0, help="control-plane port (default: a free one)")
    parser.add_argument("--api-key", default="standin-key", help="the only API key accepted")
    parser.add_argument("--lag", type=float, default=0.01, help="seconds before a write becomes visible")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with PineconeStandIn(args.api_key, lag=args.lag, port=args.port) as standin:
        print(f"PINECONE_STANDIN_URL={standin.url}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()

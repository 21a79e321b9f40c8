"""A wire-level stand-in for Pinecone's REST control and data planes, for tests.

It is not Pinecone: it is a small HTTP server that answers the requests the official ``pinecone``
SDK (10.x, API version 2026-07) sends, with the JSON shapes, headers, status codes and limits
the SDK's source and Pinecone's documentation describe, backed by the in-memory `model`.

- The **control plane** listens on its own loopback port: ``GET/POST /indexes``,
  ``GET/PATCH/DELETE /indexes/{name}``. An index is created from a 2026-07 ``schema`` whose only
  field is the dense vector ``_values`` (what the SDK sends for a vector index) and a
  ``managed`` (serverless) deployment with cloud and region.
- Every index gets its own **data plane** host (another loopback port, returned as ``host`` by
  describe, as Pinecone returns a per-index host): ``/vectors/upsert``, ``/query``,
  ``/vectors/fetch``, ``/vectors/fetch_by_metadata``, ``/vectors/update`` (by id, or by metadata
  filter with ``setMetadata`` merged in), ``/vectors/delete``, ``/vectors/list`` (ids in sorted
  order, paginated by a ``skip_past`` token), ``/describe_index_stats``, ``DELETE /namespaces/{ns}``.
- A namespace exists only while it holds records: ``/vectors/delete`` in one that does not
  answers 404 (as Pinecone does), and with ``strict_namespaces`` so do the reads.
- Every request must carry the project's key in ``Api-Key`` (else 401) and an
  ``X-Pinecone-Api-Version`` header (else 400). Writes (upsert, update, delete) answer with
  ``x-pinecone-request-lsn``, queries with ``x-pinecone-max-indexed-lsn``; writes become visible
  ``lag`` seconds after commit.

Use it as a context manager or call `start` / `stop`; the tests start one per session.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .model import MAX_DIMENSION, MAX_REQUEST_BYTES, ApiFailure, IndexState, bad_request

INDEX_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,43}[a-z0-9])?")
CLOUDS = {"aws", "gcp", "azure"}
METRICS = {"cosine", "euclidean", "dotproduct"}


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, standin: PineconeStandIn, index: IndexState | None, port: int = 0) -> None:
        self.standin = standin
        self.index = index
        super().__init__(("127.0.0.1", port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Answer each request in one segment, without Nagle's delay (as a real server does).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read assertions, not logs
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    # --- plumbing ------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        standin = self.server.standin
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        standin.record_request(method, self.path, self.headers)
        try:
            if self.headers.get("Api-Key") != standin.api_key:
                raise ApiFailure(401, "Invalid API Key")
            if not self.headers.get("X-Pinecone-Api-Version"):
                raise bad_request("Missing required header X-Pinecone-Api-Version")
            if len(raw) > MAX_REQUEST_BYTES:
                raise ApiFailure(
                    413,
                    f"Request size {len(raw)} bytes exceeds the maximum supported size of "
                    f"{MAX_REQUEST_BYTES} bytes",
                )
            body: Any = {}
            if raw:
                try:
                    body = json.loads(raw, parse_constant=_reject_constant)
                except ValueError as exc:
                    raise bad_request(f"Request body is not valid JSON: {exc}") from None
                if not isinstance(body, dict):
                    raise bad_request("Request body must be a JSON object")
            split = urlsplit(self.path)
            query = parse_qs(split.query, keep_blank_values=True)
            if self.server.index is None:
                status, payload, headers = standin.control(method, split.path, body)
            else:
                status, payload, headers = standin.data(self.server.index, method, split.path, query, body)
        except ApiFailure as failure:
            status, payload, headers = failure.status, failure.body(), {}
        self._send(status, payload, headers)

    def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        data = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-pinecone-request-id", str(next(self.server.standin.request_ids)))
        for name, value in headers.items():
            self.send_header(name, value)
        self._headers_buffer.append(b"\r\n" + data)  # headers and body in one write
        self.flush_headers()


class PineconeStandIn:
    """The stand-in: a control-plane server plus one data-plane server per index."""

    def __init__(
        self,
        api_key: str = "standin-key",
        *,
        lag: float = 0.0,
        lsn_headers: bool = True,
        strict_namespaces: bool = False,
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.strict_namespaces = strict_namespaces
        self.port = port
        self.lag = lag
        self.lsn_headers = lsn_headers
        self.indexes: dict[str, IndexState] = {}
        #: the last requests received (method, path, lower-cased headers); see `requests_since`
        self.requests: deque[tuple[str, str, dict[str, str]]] = deque(maxlen=5000)
        self.request_total = 0
        self.request_ids = itertools.count(1)
        self._lock = threading.RLock()
        self._control: _Server | None = None
        self._data: dict[str, _Server] = {}
        self._threads: list[threading.Thread] = []

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> PineconeStandIn:
        self._control = self._serve(None, self.port)
        return self

    def stop(self) -> None:
        servers = [self._control, *self._data.values()]
        for server in servers:
            if server is not None:
                server.shutdown()
                server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._control = None
        self._data.clear()
        self._threads.clear()

    def __enter__(self) -> PineconeStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The control-plane URL to give the SDK as ``host``."""
        assert self._control is not None, "stand-in not started"
        return f"http://127.0.0.1:{self._control.server_address[1]}"

    def _serve(self, index: IndexState | None, port: int = 0) -> _Server:
        server = _Server(self, index, port)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"pinecone-standin-{index.name if index else 'control'}",
            daemon=True,
        )
        thread.start()
        self._threads.append(thread)
        return server

    def record_request(self, method: str, path: str, headers: Any) -> None:
        with self._lock:
            self.requests.append((method, path, {k.lower(): v for k, v in headers.items()}))
            self.request_total += 1

    def requests_since(self, mark: int) -> list[tuple[str, str, dict[str, str]]]:
        """The requests received after ``request_total`` was ``mark``."""
        with self._lock:
            count = self.request_total - mark
            return list(self.requests)[-count:] if count > 0 else []

    def settle_all(self) -> None:
        """Test helper: wait (by polling, bounded) until every logged write is visible."""
        deadline = time.monotonic() + 10 + self.lag * 10
        while any(ix.log for ix in self.indexes.values()):
            if time.monotonic() > deadline:
                raise TimeoutError("stand-in log did not drain")
            for ix in list(self.indexes.values()):
                ix.reconcile()
            time.sleep(0.005)

    # --- control plane -------------------------------------------------------------------------

    def control(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts == ["indexes"] and method == "GET":
            with self._lock:
                return 200, {"indexes": [ix.describe() for ix in self.indexes.values()]}, {}
        if parts == ["indexes"] and method == "POST":
            return 201, self._create_index(body), {}
        if len(parts) == 2 and parts[0] == "indexes":
            with self._lock:
                index = self.indexes.get(parts[1])
                if index is None:
                    raise ApiFailure(404, f"Resource {parts[1]} not found")
                if method == "GET":
                    index.described = True
                    return 200, index.describe(), {}
                if method == "PATCH":
                    return 200, self._configure(index, body), {}
                if method == "DELETE":
                    if index.deletion_protection == "enabled":
                        raise ApiFailure(403, f"Deletion protection is enabled for index {index.name}")
                    self._delete_index(index)
                    return 202, None, {}
        raise ApiFailure(404, f"Unknown control-plane route {method} {path}")

    def _create_index(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not INDEX_NAME_RE.fullmatch(name):
            raise bad_request(
                "Index name must be 1-45 lowercase alphanumeric characters or '-', "
                "starting and ending with an alphanumeric character"
            )
        fields = (body.get("schema") or {}).get("fields")
        if isinstance(fields, dict) and set(fields) == {"_sparse_values"}:
            # A sparse index (the client's vector_type="sparse"): no dimension and no metric.
            if fields["_sparse_values"] != {"type": "sparse_vector"}:
                raise bad_request("schema field _sparse_values must be exactly {'type': 'sparse_vector'}")
            dimension, metric = None, "dotproduct"
        elif not isinstance(fields, dict) or set(fields) != {"_values"}:
            raise bad_request(
                "the stand-in serves vector indexes only: schema.fields must be exactly {'_values'} "
                "or {'_sparse_values'}"
            )
        else:
            field = fields["_values"]
            dimension, metric = field.get("dimension"), field.get("metric", "cosine")
            if field.get("type") != "dense_vector":
                raise bad_request("schema field _values must have type dense_vector")
        if dimension is None:
            pass
        elif (
            isinstance(dimension, bool)
            or not isinstance(dimension, int)
            or not 1 <= dimension <= MAX_DIMENSION
        ):
            raise bad_request(f"dimension must be an integer between 1 and {MAX_DIMENSION}")
        if metric not in METRICS:
            raise bad_request(f"metric must be one of {sorted(METRICS)}")
        deployment = body.get("deployment") or {
            "deployment_type": "managed",
            "cloud": "aws",
            "region": "us-east-1",
        }
        if deployment.get("deployment_type") != "managed":
            raise bad_request("the stand-in serves managed (serverless) deployments only")
        cloud, region = deployment.get("cloud"), deployment.get("region")
        if cloud not in CLOUDS or not isinstance(region, str) or not region:
            raise bad_request(f"deployment needs cloud (one of {sorted(CLOUDS)}) and region")
        tags = body.get("tags")
        protection = body.get("deletion_protection", "disabled")
        with self._lock:
            if name in self.indexes:
                raise ApiFailure(409, f"Resource {name} already exists")
            index = IndexState(name, dimension, metric, cloud, region, tags, protection, self.lag)
            index.strict_namespaces = self.strict_namespaces
            server = self._serve(index)
            index.host = f"http://127.0.0.1:{server.server_address[1]}"
            self._data[name] = server
            self.indexes[name] = index
            return index.describe()

    def _configure(self, index: IndexState, body: dict[str, Any]) -> dict[str, Any]:
        if "deletion_protection" in body:
            index.deletion_protection = body["deletion_protection"]
        if body.get("tags"):
            tags = dict(index.tags or {})
            for key, value in body["tags"].items():
                if value == "":
                    tags.pop(key, None)
                else:
                    tags[key] = value
            index.tags = tags or None
        return index.describe()

    def _delete_index(self, index: IndexState) -> None:
        # The index's host keeps answering (404 for everything) until the stand-in stops, so a
        # client holding the old host gets "not found" rather than a refused connection.
        index.deleted = True
        del self.indexes[index.name]
        self._data[f"deleted:{index.name}:{id(index)}"] = self._data.pop(index.name)

    # --- data plane ----------------------------------------------------------------------------

    def data(
        self, index: IndexState, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        if index.deleted:
            raise ApiFailure(404, f"Index {index.name} not found")
        if method == "POST" and path == "/vectors/upsert":
            count, lsn = index.upsert(body.get("namespace") or "", body.get("vectors"))
            return 200, {"upsertedCount": count}, self._lsn("x-pinecone-request-lsn", lsn)
        if method == "POST" and path == "/query":
            response, lsn = index.query(body)
            return 200, response, self._lsn("x-pinecone-max-indexed-lsn", lsn)
        if method == "GET" and path == "/vectors/fetch":
            namespace = (query.get("namespace") or [""])[0]
            return 200, index.fetch(namespace, query.get("ids", [])), {}
        if method == "POST" and path == "/vectors/fetch_by_metadata":
            return 200, index.fetch_by_metadata(body), {}
        if method == "POST" and path == "/vectors/update":
            response, lsn = index.update(body)
            return 200, response, {} if lsn is None else self._lsn("x-pinecone-request-lsn", lsn)
        if method == "POST" and path == "/vectors/delete":
            lsn = index.delete(body.get("namespace") or "", body)
            return 200, {}, self._lsn("x-pinecone-request-lsn", lsn)
        if method == "GET" and path == "/vectors/list":
            namespace = (query.get("namespace") or [""])[0]
            prefix = (query.get("prefix") or [""])[0]
            try:
                limit = int((query.get("limit") or ["100"])[0])
            except ValueError:
                raise bad_request("limit must be an integer") from None
            token = (query.get("paginationToken") or [None])[0]
            return 200, index.list_ids(namespace, prefix, limit, token), {}
        if method == "POST" and path == "/describe_index_stats":
            return 200, index.stats(body), {}
        if method == "DELETE" and path.startswith("/namespaces/"):
            index.delete_namespace(unquote(path.removeprefix("/namespaces/")))
            return 202, None, {}
        raise ApiFailure(404, f"Unknown data-plane route {method} {path}")

    def _lsn(self, header: str, lsn: int) -> dict[str, str]:
        return {header: str(lsn)} if self.lsn_headers else {}

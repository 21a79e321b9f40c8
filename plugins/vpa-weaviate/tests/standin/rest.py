"""The stand-in's REST side: the ``/v1`` endpoints the v4 client uses for meta, readiness, schema,
tenants, and the update of one object (``PATCH`` and ``PUT /v1/objects/{class}/{id}``). Anything else
answers 501 and names itself, so a client call the stand-in does not cover fails loudly instead of
pretending."""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from .model import Model, StandInError

UNAUTHENTICATED_PATHS = {
    "/v1/.well-known/ready",
    "/v1/.well-known/live",
    "/v1/.well-known/openid-configuration",
    "/_standin/requests",  # the stand-in's own request counters, for tests
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server_version = "weaviate-standin"
    model: Model  # set on the subclass built by build_server

    def log_message(self, format: str, *args: Any) -> None:
        return

    # --- plumbing -----------------------------------------------------------------------------

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except ValueError:
            raise StandInError("request body is not valid JSON", 400) from None

    def _send(self, status: int, payload: Any = None) -> None:
        body = b"" if payload is None or self.command == "HEAD" else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _error(self, exc: StandInError) -> None:
        if exc.status == 401:
            self._send(401, {"code": 401, "message": exc.message})
        elif exc.status == 404:
            self._send(404, None)
        else:
            self._send(exc.status, {"error": [{"message": exc.message}]})

    def _dispatch(self) -> None:
        path = urlsplit(self.path).path.rstrip("/") or "/"
        if not path.startswith("/_standin/"):
            route = re.sub(r"/schema/[^/]+", "/schema/{class}", path)
            route = re.sub(r"^/v1/objects/[^/]+/[^/]+$", "/v1/objects/{class}/{id}", route)
            self.model.count_request(f"rest:{self.command} {route}")
        try:
            body = self._body()
            if path not in UNAUTHENTICATED_PATHS:
                self.model.check_auth(self.headers.get("Authorization"))
            status, payload = self._route(self.command, path, body)
        except StandInError as exc:
            self._error(exc)
            return
        self._send(status, payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _dispatch

    # --- routes -------------------------------------------------------------------------------

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        m = self.model
        if path in ("/v1/.well-known/ready", "/v1/.well-known/live") and method in ("GET", "HEAD"):
            return 200, None
        if path == "/v1/.well-known/openid-configuration":
            return 404, None
        if path == "/_standin/requests" and method == "GET":
            with m.lock:
                return 200, dict(m.requests)
        if path == "/v1/meta" and method == "GET":
            return 200, m.meta()
        if path == "/v1/schema":
            if method == "GET":
                return 200, m.schema()
            if method == "POST":
                if not isinstance(body, dict):
                    raise StandInError("class definition must be a JSON object")
                return 200, m.create_class(body)
        parts = [unquote(p) for p in path.split("/")[1:]]  # v1, schema, {class}, ...
        if len(parts) == 4 and parts[:2] == ["v1", "objects"] and method == "PATCH":
            if not isinstance(body, dict):
                raise StandInError("object must be a JSON object", 400)
            if body.get("class") and str(body["class"]).lower() != parts[2].lower():
                raise StandInError("invalid update: field 'class' is immutable", 422)
            m.patch_object(
                parts[2], parts[3], body.get("tenant") or "", body.get("properties"), body.get("vectors")
            )
            return 204, None
        if len(parts) == 4 and parts[:2] == ["v1", "objects"] and method == "PUT":
            if not isinstance(body, dict):
                raise StandInError("object must be a JSON object", 400)
            if str(body.get("id", "")).lower() != parts[3].lower():
                raise StandInError("invalid update: field 'id' is immutable", 422)
            m.replace_object(
                parts[2], parts[3], body.get("tenant") or "", body.get("properties"), body.get("vectors")
            )
            return 200, body
        if len(parts) >= 3 and parts[:2] == ["v1", "schema"]:
            class_name = parts[2]
            rest = parts[3:]
            if not rest:
                if method in ("GET", "HEAD"):
                    return 200, m.get_class(class_name)
                if method == "DELETE":
                    m.delete_class(class_name)  # Weaviate answers 200 for a missing class too
                    return 200, None
            elif rest == ["properties"] and method == "POST":
                if not isinstance(body, dict):
                    raise StandInError("property definition must be a JSON object")
                return 200, m.add_property(class_name, body)
            elif rest == ["tenants"]:
                if method == "GET":
                    return 200, m.get_tenants(class_name)
                if method == "POST":
                    return 200, m.add_tenants(class_name, body or [])
                if method == "DELETE":
                    m.delete_tenants(class_name, body or [])
                    return 200, None
            elif len(rest) == 2 and rest[0] == "tenants" and method in ("GET", "HEAD"):
                if m.tenant_exists(class_name, rest[1]):
                    return 200, {"name": rest[1], "activityStatus": "ACTIVE"}
                return 404, None
        raise StandInError(
            f"the Weaviate stand-in does not implement {method} {path}", HTTPStatus.NOT_IMPLEMENTED
        )


def build_server(model: Model, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    handler = type("StandInHandler", (Handler,), {"model": model})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server

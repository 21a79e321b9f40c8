"""The REST API: `create_app(config, settings)` builds the FastAPI application `vpa serve` runs.

Routes (all under ``/api/v1``; the OpenAPI document is ``/openapi.json``):

=======  ==========================  ======  =====================================================
method   path                        role    what
=======  ==========================  ======  =====================================================
POST     /documents                  writer  add (or replace) one document
POST     /documents/batch            writer  add many; all validated before any is written
GET      /documents                  reader  list documents (id, title, metadata, chunks), a page
                                             at a time: ``?limit=&filter=&cursor=`` (store 1.1)
GET      /documents/{document_id}    reader  the document as it was added
PUT      /documents/{document_id}    writer  change title, content or metadata of a document
PATCH    /documents/{document_id}    writer  change metadata in place: ``{"set", "unset"}`` (store 1.1)
DELETE   /documents/{document_id}    writer  remove a document and its chunks
POST     /search                     reader  search by meaning or words, with a metadata filter
GET      /search/history             reader  the calling key's recent searches (hashes, not text)
GET      /stats                      reader  `get_system_stats()` for the caller's tenant
                                     operator  ... for every tenant
GET      /health                     none    ok, or 503 when the store or the embedder is down
                                             (what failed, and how, only for an operator key)
GET      /live                       none    the process answers (liveness: no store, no model,
                                             no audit line, outside the concurrency cap)
GET      /metrics                    admin   Prometheus text format, the caller's tenant only
                                     operator  ... for the whole process (or none: --public-metrics)
POST     /keys, GET /keys,           admin   keys of the caller's own tenant
DELETE   /keys/{key_id}
GET      /admin/export, /backup      admin   the caller's tenant as a snapshot .tar (`vpa.portability`)
=======  ==========================  ======  =====================================================

Every document route is scoped to the key's tenant through the RAG layer's ``tenant=``: ids are
prefixed by it and every read is filtered by it, whatever filter the caller sends. An ``operator``
key (no tenant) reaches no document: only every tenant's figures.

Metadata is typed JSON both ways (`vpa.typedjson`): a datetime is ``{"$date": "...Z"}`` in
requests (metadata, ``set``, filters) and in responses.

Who may come in is decided from the request line and headers before the body is read
(`vpa.server.security.Gate`); `vpa serve` adds header and body deadlines and a bound on open
connections (`vpa.server.connections`).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import attrs
from fastapi import Depends, FastAPI, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from vpa import tracing
from vpa.auth.base import Action, AuthUnavailable, Role
from vpa.config import VPAConfig, load_config
from vpa.errors import (
    AuthenticationError,
    BatchTooLarge,
    CollectionNotFound,
    DataFolderLocked,
    DocumentNotFound,
    DocumentTooLarge,
    EmbedderMismatch,
    IncompleteDocument,
    InvalidCursor,
    InvalidFilter,
    LimitExceeded,
    PermissionDenied,
    RecordTooLarge,
    StorageFull,
    StoreAuthError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    UnsupportedFilter,
    UnsupportedOperation,
    ValidationError,
    VPAError,
)
from vpa.filters import MAX_FILTER_DEPTH
from vpa.log import get_logger
from vpa.plugins import Registry
from vpa.rag import (
    DEFAULT_LIST_PAGE_SIZE,
    MAX_DOCUMENT_ID_LENGTH,
    MAX_LIST_PAGE_SIZE,
    MAX_TOP_K,
    RAGSystem,
    create_enhanced_rag_system,
)
from vpa.server import schemas as s
from vpa.server.audit import AuditLog
from vpa.server.connections import ConnectionGuard
from vpa.server.metrics import Metrics, TenantMetrics
from vpa.server.security import (
    ANONYMOUS,
    PUBLIC,
    UNROUTED,
    Access,
    BodyLimit,
    Caller,
    ConcurrencyLimit,
    Gate,
    HTTPError,
    KeyRing,
    RedisTokenBucketLimiter,
    TokenBucketLimiter,
    authorize,
    key_from_scope,
    make_limiter,
    registry_for,
    run_sync,
)
from vpa.server.settings import ServerSettings
from vpa.stores.base import MAX_CURSOR_LENGTH

log = get_logger("vpa.server")

PREFIX = "/api/v1"
HEALTH_PATH = f"{PREFIX}/health"
METRICS_PATH = f"{PREFIX}/metrics"
LIVE_PATH = f"{PREFIX}/live"
HEALTH_TIMEOUT_SECONDS = 10.0
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")

#: VPA error class → HTTP status; the first match wins.
STATUS_BY_ERROR: tuple[tuple[type[VPAError], int], ...] = (
    (AuthenticationError, 401),
    (AuthUnavailable, 503),
    (PermissionDenied, 403),
    (DocumentNotFound, 404),
    (InvalidCursor, 400),
    (LimitExceeded, 413),
    (BatchTooLarge, 413),
    (DocumentTooLarge, 413),
    (RecordTooLarge, 413),
    (ValidationError, 422),
    (UnsupportedFilter, 422),
    (UnsupportedOperation, 422),
    (EmbedderMismatch, 409),
    (StoreTimeout, 504),
    (StoreUnavailable, 503),
    (CollectionNotFound, 503),
    (StorageFull, 507),
    (DataFolderLocked, 503),
    (IncompleteDocument, 409),
    (StoreAuthError, 502),
    (StoreError, 502),
)


def status_for(exc: VPAError) -> int:
    return next((status for cls, status in STATUS_BY_ERROR if isinstance(exc, cls)), 500)


@attrs.define
class Service:
    """Everything the routes share, built once per application."""

    config: VPAConfig
    settings: ServerSettings
    system: RAGSystem
    keyring: KeyRing | None
    limiter: TokenBucketLimiter | RedisTokenBucketLimiter
    metrics: Metrics
    audit: AuditLog
    tenant_metrics: TenantMetrics = attrs.field(factory=TenantMetrics)
    guard: ConnectionGuard | None = None

    async def authenticate(self, key: str | None) -> Caller:
        """The caller a key stands for (an unscoped admin when auth is off)."""
        if self.keyring is None:
            return Caller(ANONYMOUS, Role.ADMIN, None)
        return Caller.from_principal(await self.keyring.current().authenticate_async(key))

    async def limit(self, caller: Caller, scope: Any) -> None:
        """Take a token from the caller's bucket (per client address when auth is off)."""
        if self.keyring is None:
            client = scope.get("client")
            bucket = f"client:{client[0] if client else 'unknown'}"
        else:
            bucket = f"key:{caller.key_id}"
        try:
            await self.limiter.check_async(bucket)
        except HTTPError:
            self.metrics.rate_limited.inc()
            if caller.tenant is not None:
                self.tenant_metrics.of(caller.tenant).rate_limited.inc()
            raise


def _service(request: Request) -> Service:
    return request.app.state.service


def _context(request: Request) -> dict[str, Any]:
    return request.scope.setdefault("vpa", {})


def _note(request: Request, **fields: Any) -> None:
    """Add fields to this request's audit line (ids and counts only — never text or keys)."""
    _context(request).setdefault("audit", {}).update(fields)


# --- authentication dependency ---------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <key>")


def require(*actions: Action) -> Callable[..., Any]:
    """A dependency that yields the caller, whose role allows one of ``actions``.

    `Gate` has authenticated, rate-limited and authorized the request from its headers before
    its body was read (it finds ``actions`` on this dependency); the checks are repeated here only
    for an application mounted without that middleware."""

    async def dependency(
        request: Request,
        _b: Annotated[Any, Security(_bearer)] = None,
        _k: Annotated[Any, Security(_api_key)] = None,
    ) -> Caller:
        context = _context(request)
        if not context.get("gated"):
            svc = _service(request)
            caller = await svc.authenticate(key_from_scope(request.scope.get("headers", [])))
            context["caller"] = caller
            await svc.limit(caller, request.scope)
        caller = context["caller"]
        authorize(caller, *actions)
        return caller

    dependency.vpa_actions = frozenset(actions)  # type: ignore[attr-defined]
    return dependency


Reader = Annotated[Caller, Depends(require(Action.READ))]
Writer = Annotated[Caller, Depends(require(Action.WRITE))]
Admin = Annotated[Caller, Depends(require(Action.ADMIN))]
#: A tenant's reader (its own figures) or an operator (every tenant's).
FiguresReader = Annotated[Caller, Depends(require(Action.READ, Action.OPERATE))]
#: A tenant's admin (its own metrics) or an operator (the whole process's).
MetricsReader = Annotated[Caller, Depends(require(Action.ADMIN, Action.OPERATE))]
DocumentId = Annotated[
    str, Path(min_length=1, max_length=MAX_DOCUMENT_ID_LENGTH, description="the document's id")
]

#: What any keyed route may answer before its handler runs: a key sent twice, no valid key, a role
#: that may not, a body that stopped arriving, an empty bucket, the concurrency cap.
AUTH_ERRORS = (400, 401, 403, 408, 429, 503)
STORE_ERRORS = (409, 502, 503, 504, 507)


# --- request checks that depend on the configuration -----------------------------------------


def _check_content_size(content: str | None, limit: int, field: str) -> None:
    if content is not None:
        size = len(content.encode("utf-8"))
        if size > limit:
            raise HTTPError(
                413,
                DocumentTooLarge.code,
                f"{field} is {size} bytes of UTF-8; the limit is {limit} (VPA_MAX_DOCUMENT_BYTES)",
                field=field,
            )


@contextlib.contextmanager
def _blame(field: str) -> Any:
    """Attach ``field`` to an input error raised inside (a filter the store cannot express, ...)."""
    try:
        yield
    except (ValidationError, UnsupportedFilter) as exc:
        raise HTTPError(status_for(exc), exc.code, str(exc), field=field) from exc


def _filter_param(text: str | None) -> Any:
    """A filter sent as JSON in a query parameter (empty: none), parsed and bounded like a body's
    (a malformed one is 422 invalid_filter, one over the ceilings 413 limit_exceeded)."""
    if text is None or not text.strip():
        return None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HTTPError(422, InvalidFilter.code, f"filter is not valid JSON: {exc.msg} at column {exc.colno}",
                        field="filter") from None
    except RecursionError:  # nested beyond what the reader takes: far past the ceiling
        raise HTTPError(413, LimitExceeded.code, f"filter is nested deeper than {MAX_FILTER_DEPTH} levels",
                        field="filter") from None
    if not isinstance(spec, dict):
        raise HTTPError(422, InvalidFilter.code, "filter must be a JSON object", field="filter")
    return spec



def _page(items: list[Any], offset: int, limit: int, total: int | None = None) -> s.Pagination:
    return s.Pagination(offset=offset, limit=limit, count=len(items), total=total)


# --- the application -------------------------------------------------------------------------


def create_app(
    config: VPAConfig | None = None,
    settings: ServerSettings | None = None,
    *,
    system: RAGSystem | None = None,
    registry: Registry | None = None,
) -> FastAPI:
    """The FastAPI application for ``config`` (default: the environment). The store is not
    contacted here: it is opened when the application starts (and retried per request while it is down)."""
    config = config or load_config()
    settings = settings or ServerSettings()
    registry = registry or registry_for(config)
    system = system or create_enhanced_rag_system(config, registry=registry)
    keyring = None
    if config.auth_enabled:
        keyring = KeyRing(lambda: registry.create("auth", config.authenticator, config))
    if settings.audit_log is not None:
        _create_private(settings.audit_log)
    metrics = Metrics()
    from vpa.stores.observed import observe_store

    system.store = observe_store(system.store, metrics.store_observer(config.provider))
    guard = ConnectionGuard(
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        on_close=lambda reason: metrics.connections_closed.labels(reason).inc(),
    )
    if settings.max_connections is not None:
        guard.max_connections = settings.max_connections
    metrics.open_connections.set_function(lambda: guard.open)
    service = Service(
        config=config,
        settings=settings,
        system=system,
        keyring=keyring,
        limiter=make_limiter(config, settings.rate_limit_burst),
        metrics=metrics,
        audit=AuditLog(settings.audit_log),
        guard=guard,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        import asyncio
        from pathlib import Path as FilePath

        swept = await asyncio.to_thread(sweep_exports, FilePath(config.data_dir))
        if swept:
            log.info("server.exports_swept", folders=swept)
        try:
            await system.initialize()
        except StoreUnavailable as exc:  # serve anyway: /health says 503 and requests retry the store
            log.warning("server.store_unavailable", error=type(exc).__name__, detail=str(exc))
        # The model loads now, beside serving, not on the first health check or search: /live
        # answers at once, /health turns 200 when the embedder is ready.
        warm = asyncio.create_task(_warm_embedder(system.embedder))
        log.info(
            "server.started",
            provider=config.provider,
            collection=config.collection,
            auth=config.auth_enabled,
            tls=settings.tls,
            shared_state="redis" if isinstance(service.limiter, RedisTokenBucketLimiter) else "process",
        )
        try:
            yield
        finally:
            warm.cancel()
            await system.shutdown()
            await service.limiter.aclose()
            if keyring is not None and hasattr(keyring.authenticator, "aclose"):
                await keyring.authenticator.aclose()
            service.audit.close()

    from importlib.metadata import PackageNotFoundError, version

    try:
        app_version = version("vpa-core")
    except PackageNotFoundError:  # pragma: no cover
        app_version = "0+unknown"
    app = FastAPI(
        title="VPA",
        version=app_version,
        description="Retrieval-augmented search over any vector database. Every response is an envelope "
        "(`status`, `data`, `pagination`) or an error envelope (`status`, `error.code`, `error.message`, "
        "`error.field`). Send a key as `Authorization: Bearer <key>` or `X-API-Key`.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.service = service
    _install_error_handlers(app, service)
    _add_document_routes(app)
    _add_search_routes(app)
    _add_operations_routes(app)
    _add_key_routes(app)
    _add_admin_routes(app)
    # The last added runs first: observe everything; let in (key, rate, role: headers only); the
    # concurrency cap on what was let in; then, and only then, read the body.
    body_limit = settings.body_limit(config.max_document_bytes)
    app.add_middleware(BodyLimit, limit=body_limit)
    app.add_middleware(
        ConcurrencyLimit, limit=config.max_concurrent_requests, exempt=frozenset({HEALTH_PATH, METRICS_PATH, LIVE_PATH})
    )
    app.add_middleware(
        Gate,
        access=_access_policy(app),
        authenticate=service.authenticate,
        limit=service.limit,
        body_limit=body_limit,
    )
    app.add_middleware(RequestObserver, service=service)
    return app


def uvicorn_options(app: FastAPI) -> dict[str, Any]:
    """What `vpa serve` passes to ``uvicorn.run`` besides the address and TLS: the guarded HTTP
    protocol, no WebSocket upgrades (there is no WebSocket route), and uvicorn's own concurrency
    limit off (it refuses requests while sockets are merely open; the guard bounds those)."""
    service: Service = app.state.service
    assert service.guard is not None
    from vpa.server.connections import MAX_HEADER_BYTES

    return {
        "http": service.guard.protocol_class(service.settings.http),
        "ws": "none",
        "limit_concurrency": None,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    }


def _create_private(path: Any) -> None:
    """Create a file (and its folder) only this user may read, whatever the umask."""
    import os
    from pathlib import Path as FilePath

    from vpa.auth.api_keys import ensure_private_folder
    from vpa.files import open_private

    path = FilePath(path)
    if not path.parent.exists():
        ensure_private_folder(path.parent)
    os.close(open_private(path))


def _access_policy(app: FastAPI) -> Callable[[Any], Access]:
    """What each request needs, found by matching it against the routes as the router will: the
    actions of the route's `require` dependency, or none (a public route, a 404 or a 405)."""
    by_route: dict[int, Access] = {}

    def access_of(route: Any) -> Access:
        found = by_route.get(id(route))
        if found is None:
            actions: set[Action] = set()
            stack = [getattr(route, "dependant", None)]
            while stack:
                dependant = stack.pop()
                if dependant is None:
                    continue
                actions.update(getattr(dependant.call, "vpa_actions", ()))
                stack.extend(dependant.dependencies)
            found = by_route[id(route)] = Access(frozenset(actions)) if actions else PUBLIC
        return found

    def access(scope: Any) -> Access:
        for route in app.router.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                scope["route"] = route  # the router sets the same; a refused request keeps its label
                return access_of(route)
        return UNROUTED

    return access


# --- errors ----------------------------------------------------------------------------------


def _error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    details: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    context = _context(request)
    context["error_code"] = code
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    if context.get("trace_id"):  # a failed request's id to hand to an operator
        body["trace_id"] = context["trace_id"]
    if details:
        body["details"] = details
    return JSONResponse({"status": "error", "error": body}, status_code=status, headers=headers)


UNION_TAGS = frozenset({"str", "int", "float", "bool", "none"})


def _field_name(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as the request field it names: ``documents[2].content``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in UNION_TAGS or "[" in str(part):
            continue  # a union member's tag (pydantic adds it to the location), not a field
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def _install_error_handlers(app: FastAPI, service: Service) -> None:
    @app.exception_handler(HTTPError)
    async def http_error(request: Request, exc: HTTPError) -> JSONResponse:
        return _error_response(
            request, exc.status, exc.code, exc.message, field=exc.field, headers=exc.headers
        )

    @app.exception_handler(VPAError)
    async def vpa_error(request: Request, exc: VPAError) -> JSONResponse:
        status = status_for(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status >= 500:
            log.warning("server.store_error", error=type(exc).__name__, code=exc.code)
            if status in (503, 504):
                headers = {"Retry-After": "5"}
        return _error_response(request, status, exc.code, str(exc), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        content_type = request.headers.get("content-type", "")
        body_unread = any(tuple(e.get("loc", ())) == ("body",) and e.get("type") != "missing" for e in errors)
        if body_unread and content_type and "json" not in content_type.lower():
            return _error_response(
                request,
                415,
                "unsupported_media_type",
                f"the body must be JSON sent with Content-Type: application/json, not {content_type!r}",
                field="body",
            )
        details: list[dict[str, str]] = []
        seen: set[str] = set()
        for error in errors:
            field = _field_name(tuple(error.get("loc", ())))
            kind = error.get("type", "")
            if kind == "json_invalid":
                message = f"the body is not valid JSON: {error.get('ctx', {}).get('error', 'malformed')}"
                field = "body"
            elif kind == "missing" and field == "body":
                message = "a JSON body is required"
            else:
                message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            if field not in seen:
                seen.add(field)
                details.append({"field": field, "message": message})
        first = details[0] if details else {"field": "body", "message": "invalid request"}
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        return _error_response(
            request,
            422,
            "invalid_input",
            f"{first['field']}: {first['message']}{more}",
            field=first["field"],
            details=details,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = s.HTTP_CODES.get(exc.status_code, "http_error")
        if exc.status_code == 400 and str(exc.detail) == "There was an error parsing the body":
            return _error_response(
                request, 400, code, "the body could not be parsed as JSON (too deeply nested?)", field="body"
            )
        return _error_response(request, exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("server.unexpected_error", error=type(exc).__name__, exc_info=exc)
        return _error_response(request, 500, "internal_error", "internal error; see the server log")


# --- routes ----------------------------------------------------------------------------------


def _ingest_out(result: Any) -> s.IngestOut:
    return s.IngestOut(document_id=result.document_id, chunks=result.chunks, unchanged=result.unchanged)


def _add_document_routes(app: FastAPI) -> None:
    @app.post(
        f"{PREFIX}/documents",
        status_code=201,
        response_model=s.Envelope[s.IngestOut],
        responses=s.error_responses(400, 413, 415, 422, *AUTH_ERRORS, *STORE_ERRORS),
        tags=["documents"],
    )
    async def add_document(request: Request, body: s.DocumentIn, caller: Writer) -> Any:
        """Add a document, or replace the caller's document with that id.
        Unchanged content is not re-embedded."""
        svc = _service(request)
        _note(request, document_id=body.id)
        _check_content_size(body.content, svc.config.max_document_bytes, "content")
        with _blame("body"):
            result = await svc.system.add_document(
                body.id, body.title, body.content, body.metadata, tenant=caller.tenant
            )
        _note(request, chunks=result.chunks, unchanged=result.unchanged)
        return s.Envelope(data=_ingest_out(result))

    @app.post(
        f"{PREFIX}/documents/batch",
        status_code=201,
        response_model=s.Envelope[list[s.IngestOut]],
        responses=s.error_responses(400, 413, 415, 422, *AUTH_ERRORS, *STORE_ERRORS),
        tags=["documents"],
    )
    async def add_documents(request: Request, body: s.BatchIn, caller: Writer) -> Any:
        """Add many documents in one call (at most VPA_MAX_BATCH_SIZE). All are validated first."""
        svc = _service(request)
        limit = svc.config.max_batch_size
        if len(body.documents) > limit:
            raise HTTPError(
                413,
                BatchTooLarge.code,
                f"documents holds {len(body.documents)} items; the limit is {limit} (VPA_MAX_BATCH_SIZE)",
                field="documents",
            )
        for i, doc in enumerate(body.documents):
            _check_content_size(doc.content, svc.config.max_document_bytes, f"documents[{i}].content")
        _note(request, documents=len(body.documents))
        with _blame("documents"):
            results = await svc.system.add_documents(
                [
                    {"id": d.id, "title": d.title, "content": d.content, "metadata": d.metadata}
                    for d in body.documents
                ],
                tenant=caller.tenant,
            )
        _note(request, chunks=sum(r.chunks for r in results), unchanged=sum(r.unchanged for r in results))
        data = [_ingest_out(r) for r in results]
        return s.Envelope(data=data, pagination=_page(data, 0, len(data), len(data)))

    @app.get(
        f"{PREFIX}/documents",
        response_model=s.CursorEnvelope[list[s.DocumentSummaryOut]],
        responses=s.error_responses(400, 413, 422, *AUTH_ERRORS, *STORE_ERRORS),
        tags=["documents"],
    )
    async def list_documents(
        request: Request,
        caller: Reader,
        limit: Annotated[
            int, Query(ge=1, le=MAX_LIST_PAGE_SIZE, description="the most documents in this page")
        ] = DEFAULT_LIST_PAGE_SIZE,
        filter: Annotated[  # the query parameter's name
            str | None,
            Query(max_length=s.MAX_FILTER_QUERY_LENGTH,
                  description="a metadata filter as JSON (the filter language of POST /search), e.g. "
                  '{"category": "news", "published": {"$gte": {"$date": "2024-01-01T00:00:00Z"}}}'),
        ] = None,
        cursor: Annotated[
            str | None,
            Query(description="the `pagination.next_cursor` of the previous page (empty or left out: the "
                  f"first page); at most {MAX_CURSOR_LENGTH} characters",
                  json_schema_extra={"maxLength": MAX_CURSOR_LENGTH, "pattern": "^[A-Za-z0-9_-]*$"}),
        ] = None,
    ) -> Any:
        """The caller's documents that match `filter`, a page at a time: id, title, metadata and
        chunk count (never text or vectors). Follow `pagination.next_cursor` until it is null:
        every document that exists for the whole listing comes exactly once. A page may hold fewer
        than `limit` documents before the last. Needs a store of contract 1.1 (else 422
        unsupported_operation)."""
        svc = _service(request)
        spec = _filter_param(filter)
        if cursor == "":
            cursor = None
        if cursor is not None and len(cursor) > MAX_CURSOR_LENGTH:
            raise HTTPError(400, InvalidCursor.code, "cursor is not one this listing handed out",
                            field="cursor")
        try:
            page = await svc.system.list_documents(
                filter=spec, page_size=limit, cursor=cursor, tenant=caller.tenant
            )
        except InvalidCursor as exc:
            raise HTTPError(400, exc.code, str(exc), field="cursor") from exc
        except (ValidationError, UnsupportedFilter) as exc:
            raise HTTPError(status_for(exc), exc.code, str(exc), field="filter") from exc
        data = [
            s.DocumentSummaryOut(id=d.document_id, title=d.title, metadata=d.metadata, chunks=d.chunks)
            for d in page.documents
        ]
        _note(request, documents=len(data), filtered=spec is not None, resumed=cursor is not None)
        return s.CursorEnvelope(
            data=data, pagination=s.CursorPagination(limit=limit, count=len(data), next_cursor=page.cursor)
        )

    @app.get(
        f"{PREFIX}/documents/{{document_id:path}}",
        response_model=s.Envelope[s.DocumentOut],
        responses=s.error_responses(404, 422, *AUTH_ERRORS, *STORE_ERRORS),
        tags=["documents"],
    )
    async def get_document(request: Request, document_id: DocumentId, caller: Reader) -> Any:
        """The caller's document as it was added."""
        _note(request, document_id=document_id)
        with _blame("document_id"):
            document = await _service(request).system.get_document(document_id, tenant=caller.tenant)
        if document is None:
            raise DocumentNotFound(document_id)
        return s.Envelope(
            data=s.DocumentOut(
                id=document.id, title=document.title, content=document.content, metadata=document.metadata
            )
        )

    @app.put(
        f"{PREFIX}/documents/{{document_id:path}}",
        response_model=s.Envelope[s.IngestOut],
        responses=s.error_responses(400, 404, 413, 415, 422, *AUTH_ERRORS, *STORE_ERRORS),
        tags=["documents"],
    )
    async def update_document(
        request: Request, document_id: DocumentId, body: s.DocumentUpdate, caller: Writer
    ) -> Any:
        """Change an existing document; fields left out keep their current value."""
        svc = _service(request)
        _note(request, document_id=document_id)
        _check_content_size(body.content, svc.config.max_document_bytes, "content")
        with _blame("document_id"):
            result = await svc.system.update_document(
                document_id,
                title=body.title,
                content=body.content,
                metadata=body.metadata,
                tenant=caller.tenant,
            )
        _note(request, chunks=result.chunks, unchanged=result.unchanged)
        return s.Envelope(data=_ingest_out(result))

    @app.patch(
        f"{PREFIX}/documents/{{document_id:path}}",
        response_model=s.Envelope[s.MetadataUpdatedOut],
        responses=s.error_responses(400, 404, 413, 415, 422, *AUTH_ERRORS, *STORE_ERRORS),
        tags=["documents"],
    )
    async def patch_document(
        request: Request, document_id: DocumentId, body: s.MetadataPatch, caller: Writer
    ) -> Any:
        """Change the caller's document's metadata in place, on every chunk, without re-embedding:
        `set` adds or replaces keys (null removes one), `unset` removes keys; `vpa_*` keys are
        VPA's own and refused. Needs a store of contract 1.1 (else 422 unsupported_operation)."""
        _note(request, document_id=document_id)
        with _blame("body"):
            result = await _service(request).system.update_document_metadata(
                document_id, set=body.set, unset=body.unset, tenant=caller.tenant
            )
        _note(request, chunks=result.chunks)
        return s.Envelope(data=s.MetadataUpdatedOut(document_id=document_id, chunks=result.chunks))

    @app.delete(
        f"{PREFIX}/documents/{{document_id:path}}",
        response_model=s.Envelope[s.DeletedOut],
        responses=s.error_responses(404, 422, *AUTH_ERRORS, *STORE_ERRORS),
        tags=["documents"],
    )
    async def delete_document(request: Request, document_id: DocumentId, caller: Writer) -> Any:
        """Remove the caller's document and all its chunks."""
        _note(request, document_id=document_id)
        with _blame("document_id"):
            removed = await _service(request).system.delete_document(document_id, tenant=caller.tenant)
        if not removed:
            raise DocumentNotFound(document_id)
        return s.Envelope(data=s.DeletedOut(document_id=document_id, deleted=True))


def _history_user(caller: Caller, user_id: str | None) -> str:
    return f"{caller.key_id}/{user_id}" if user_id else caller.key_id


def _add_search_routes(app: FastAPI) -> None:
    @app.post(
        f"{PREFIX}/search",
        response_model=s.Envelope[s.SearchOut],
        responses=s.error_responses(400, 413, 415, 422, *AUTH_ERRORS, *STORE_ERRORS),
        tags=["search"],
    )
    async def search(request: Request, body: s.SearchIn, caller: Reader) -> Any:
        """The documents most relevant to `query` among the caller's that match `filters`, best
        first, as `data.results` (one a document, its best chunk; `group_by=chunk` for chunks). Page with `top_k` and `offset`, or with `page` and
        `per_page` (the original interface); `pagination.total` counts every match of the filter (null
        for a full lexical page: only chunks holding a query word are ranked, and they are not counted).
        `mode` ranks by meaning (dense, the default), by words (lexical, BM25) or both (hybrid, with
        `fusion` and `alpha`); each result's `score` is that mode's, `similarity` the cosine in dense
        mode only. Lexical and hybrid on a store without lexical search (or with its text sealed by
        encryption at rest): 422 unsupported_operation."""
        svc = _service(request)
        if body.page is not None or body.per_page is not None:
            if "top_k" in body.model_fields_set or "offset" in body.model_fields_set:
                raise HTTPError(422, "invalid_input", "give page/per_page or top_k/offset, not both", field="page")
            per_page = body.per_page or body.top_k
            limit, offset = per_page, ((body.page or 1) - 1) * per_page
        else:
            limit, offset = body.top_k, body.offset
        if limit + offset > MAX_TOP_K:
            field = "page" if body.page is not None else "offset"
            raise HTTPError(422, "invalid_input", f"top_k + offset (the end of the page) must be at most {MAX_TOP_K}",
                            field=field)
        if body.mode != "dense":
            from vpa.lexical import query_terms

            with _blame("query"):  # its words within the lexical bounds (413 limit_exceeded, 422 no words)
                query_terms(body.query)
        started = time.perf_counter()
        with _blame("filters"):
            results = await svc.system.search_knowledge(
                _history_user(caller, body.user_id),
                body.query,
                top_k=limit + offset,
                filters=body.filters,
                tenant=caller.tenant,
                group_by=body.group_by,
                passages=body.passages,
                mode=body.mode,
                fusion=body.fusion,
                alpha=body.alpha,
            )
            # A lexical search ranks only what holds a query word: how many do is not counted.
            total = (
                offset + len(results[offset:]) if len(results) < limit + offset
                else None if body.mode == "lexical"
                else await svc.system.count_matching(
                    body.filters, tenant=caller.tenant, documents=body.group_by == "document"
                )
            )
        seconds = time.perf_counter() - started
        svc.metrics.search_latency.observe(seconds)
        if caller.tenant is not None:
            svc.tenant_metrics.of(caller.tenant).search_latency.observe(seconds)
        page = results[offset:]
        _note(request, top_k=limit, offset=offset, results=len(page), filtered=body.filters is not None)
        data = [
            s.SearchResultOut(
                document_id=r.document_id,
                chunk_id=r.chunk_id,
                similarity=r.similarity,
                score=r.score,
                mode=r.mode,
                content=r.content,
                title=r.title,
                metadata=r.metadata,
                passages=[
                    s.PassageOut(
                        chunk_id=p.chunk_id, similarity=p.similarity, score=p.score, content=p.content
                    )
                    for p in r.passages
                ] if body.passages else None,
            )
            for r in page
        ]
        pagination = s.Pagination(offset=offset, limit=limit, count=len(data), total=total,
                                  page=offset // limit + 1, per_page=limit)
        return s.Envelope(data=s.SearchOut(results=data), pagination=pagination)

    @app.get(
        f"{PREFIX}/search/history",
        response_model=s.Envelope[list[s.SearchHistoryOut]],
        responses=s.error_responses(422, *AUTH_ERRORS),
        tags=["search"],
    )
    async def search_history(
        request: Request,
        caller: Reader,
        user_id: Annotated[str | None, Query(min_length=1, max_length=s.MAX_USER_ID_LENGTH)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 20,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> Any:
        """The calling key's most recent searches (or those it made for `user_id`), newest first.
        Queries are kept as hashes, never as text."""
        history_user = _history_user(caller, user_id)
        entries = _service(request).system.get_search_history(history_user, tenant=caller.tenant)
        page = entries[offset : offset + limit]
        data = [s.SearchHistoryOut(**attrs.asdict(e)) for e in page]
        return s.Envelope(data=data, pagination=_page(data, offset, limit, len(entries)))


def _without_detail(health: s.ComponentHealth) -> s.ComponentHealth:
    return s.ComponentHealth(
        ok=health.ok, detail="ok" if health.ok else "unavailable", latency_ms=health.latency_ms
    )


async def _health(coro: Any) -> s.ComponentHealth:
    import asyncio

    started = time.perf_counter()
    try:
        status = await asyncio.wait_for(coro, HEALTH_TIMEOUT_SECONDS)
    except TimeoutError:
        return s.ComponentHealth(ok=False, detail=f"no answer within {HEALTH_TIMEOUT_SECONDS:g} s")
    except Exception as exc:  # health reports, it does not raise
        return s.ComponentHealth(ok=False, detail=type(exc).__name__)
    latency = status.latency_ms if status.latency_ms is not None else (time.perf_counter() - started) * 1000
    return s.ComponentHealth(ok=status.ok, detail=status.detail, latency_ms=round(latency, 3))


async def _warm_embedder(embedder: Any) -> None:
    try:
        await embedder.aembed(["warm up"])
    except Exception as exc:  # noqa: BLE001 - /health reports it; serving goes on
        log.warning("server.embedder_not_ready", error=type(exc).__name__)


def _add_operations_routes(app: FastAPI) -> None:
    @app.get(LIVE_PATH, response_model=s.Envelope[s.LiveOut], tags=["operations"])
    async def live() -> Any:
        """The process answers: Kubernetes' liveness probe. Touches neither the store nor the
        embedder (an engine outage must not restart every API pod), writes no audit line and is
        not counted against the concurrency cap."""
        return s.Envelope(data=s.LiveOut(status="ok"))

    @app.get(
        HEALTH_PATH,
        response_model=s.Envelope[s.HealthOut],
        responses=s.error_responses(503),
        tags=["operations"],
    )
    async def health(request: Request) -> Any:
        """Whether the store and the embedder answer: 200, or 503 naming which is down. Needs no
        key. What failed and how (an error text may name a host or a path) is shown only to an
        operator key, or to everyone when auth is off."""
        svc = _service(request)
        system = svc.system
        store = await _health(system.store.health())
        embedder = await _health(system.embedder.health())
        viewer: Caller | None = _context(request).get("viewer")
        detailed = svc.keyring is None or (viewer is not None and viewer.role is Role.OPERATOR)
        if not detailed:
            store, embedder = _without_detail(store), _without_detail(embedder)
        if not store.ok or not embedder.ok:
            code, what = (
                ("store_unavailable", "vector store")
                if not store.ok
                else ("embedder_unavailable", "embedder")
            )
            return _error_response(
                request,
                503,
                code,
                f"the {what} is unavailable",
                details=[
                    {"field": "store", "message": store.detail},
                    {"field": "embedder", "message": embedder.detail},
                ],
                headers={"Retry-After": "5"},
            )
        return s.Envelope(data=s.HealthOut(status="ok", store=store, embedder=embedder))

    @app.get(
        f"{PREFIX}/stats",
        response_model=s.Envelope[s.StatsOut],
        responses=s.error_responses(*AUTH_ERRORS, *STORE_ERRORS),
        tags=["operations"],
    )
    async def stats(request: Request, caller: FiguresReader) -> Any:
        """`get_system_stats()`: documents, chunks and searches of the caller's tenant (every
        tenant's for an operator key). The cache hit rate is the whole process's, so it is shown
        to an operator only."""
        figures = await _service(request).system.get_system_stats(tenant=caller.tenant)
        if caller.tenant is not None:
            figures["cache_hit_rate"] = None
        return s.Envelope(data=s.StatsOut(**figures))

    metrics_responses: dict[int | str, dict[str, Any]] = {
        200: {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        404: s.error_responses(404)[404],
        **s.error_responses(*AUTH_ERRORS),
    }

    async def _metrics(request: Request, caller: Caller | None) -> Response:
        svc = _service(request)
        if not svc.config.metrics_enabled:
            raise HTTPError(404, "not_found", "metrics are disabled (VPA_METRICS_ENABLED=false)")
        if caller is not None and caller.tenant is not None:
            text = await svc.tenant_metrics.render(caller.tenant, svc.system)
        else:
            text = await svc.metrics.render(svc.system)
        return Response(text, media_type=svc.metrics.content_type)

    service: Service = app.state.service
    if service.settings.public_metrics:

        @app.get(METRICS_PATH, response_class=Response, responses=metrics_responses, tags=["operations"])
        async def metrics(request: Request) -> Response:
            """The whole process's Prometheus metrics (served without a key: --public-metrics)."""
            return await _metrics(request, None)
    else:

        @app.get(METRICS_PATH, response_class=Response, responses=metrics_responses, tags=["operations"])
        async def metrics(request: Request, caller: MetricsReader) -> Response:  # type: ignore[no-redef]
            """Prometheus metrics: request counts and latencies by route and status, search latency,
            documents and chunks, errors by code. A tenant's admin key sees its tenant's figures;
            an operator key the whole process's (with the cache hit ratio and open connections)."""
            return await _metrics(request, caller)


def _key_out(info: Any) -> dict[str, Any]:
    return {
        "key_id": info.key_id,
        "role": str(info.role),
        "tenant": info.tenant,
        "name": info.name,
        "created_at": info.created_at,
        "revoked": info.revoked,
    }


def _keyring_for(request: Request) -> KeyRing:
    keyring = _service(request).keyring
    if keyring is None:
        raise HTTPError(
            403,
            PermissionDenied.code,
            "key management over HTTP needs VPA_AUTH_ENABLED=true; use `vpa keys create` instead",
        )
    return keyring


def _add_key_routes(app: FastAPI) -> None:
    @app.post(
        f"{PREFIX}/keys",
        status_code=201,
        response_model=s.Envelope[s.NewKeyOut],
        responses=s.error_responses(400, 415, 422, *AUTH_ERRORS),
        tags=["keys"],
    )
    async def create_key(request: Request, body: s.KeyIn, caller: Admin) -> Any:
        """Create a key for the caller's own tenant. The secret is in the answer, once."""
        keyring = _keyring_for(request)
        tenant = caller.tenant  # an admin key always has one (auth off has no key API)
        info, secret = await run_sync(
            keyring.modify, lambda auth: auth.create_key(body.role, tenant, body.name)
        )
        _note(request, created_key_id=info.key_id, created_role=str(info.role))
        return s.Envelope(data=s.NewKeyOut(**_key_out(info), key=secret))

    @app.get(
        f"{PREFIX}/keys",
        response_model=s.Envelope[list[s.KeyOut]],
        responses=s.error_responses(*AUTH_ERRORS),
        tags=["keys"],
    )
    async def list_keys(request: Request, caller: Admin) -> Any:
        """The keys of the caller's tenant (never their secrets)."""
        listed = await run_sync(_keyring_for(request).current().list_keys)  # Redis: a round trip
        keys = [s.KeyOut(**_key_out(i)) for i in listed if i.tenant == caller.tenant]
        return s.Envelope(data=keys, pagination=_page(keys, 0, len(keys), len(keys)))

    @app.delete(
        f"{PREFIX}/keys/{{key_id}}",
        response_model=s.Envelope[s.RevokedOut],
        responses=s.error_responses(404, 422, *AUTH_ERRORS),
        tags=["keys"],
    )
    async def revoke_key(
        request: Request, key_id: Annotated[str, Path(min_length=1, max_length=64)], caller: Admin
    ) -> Any:
        """Revoke a key of the caller's tenant; it stops working at once."""
        keyring = _keyring_for(request)
        _note(request, revoked_key_id=key_id)

        def revoke(auth: Any) -> bool:
            owned = any(i.key_id == key_id and i.tenant == caller.tenant for i in auth.list_keys())
            return owned and auth.revoke(key_id)

        if not await run_sync(keyring.modify, revoke):
            raise HTTPError(404, "key_not_found", f"no active key {key_id!r} in this tenant")
        return s.Envelope(data=s.RevokedOut(key_id=key_id, revoked=True))


# --- the tenant's snapshot (admin) ------------------------------------------------------------

EXPORT_MEDIA_TYPE = "application/x-tar"
EXPORT_CHUNK_BYTES = 1 << 20
EXPORTS_FOLDER = "exports"


#: A temporary export folder older than this is a dead server's (an export is streamed from an
#: open file whose folder is removed at once; only a kill -9 mid-write leaves one behind).
STALE_EXPORT_SECONDS = 3600


def sweep_exports(data_dir: Any, older_than: float = STALE_EXPORT_SECONDS) -> int:
    """Remove the temporary export folders a killed server left under ``data_dir/exports``
    (those untouched for ``older_than`` seconds, so a live export of another server sharing the
    folder is never touched); returns how many were removed."""
    import shutil
    from pathlib import Path as FilePath

    parent = FilePath(data_dir) / EXPORTS_FOLDER
    if not parent.is_dir():
        return 0
    removed = 0
    for folder in parent.glob("export-*"):
        try:
            if folder.is_dir() and time.time() - folder.stat().st_mtime > older_than:
                shutil.rmtree(folder)
                removed += 1
        except OSError:  # gone meanwhile, or not ours to remove: never a reason not to start
            continue
    return removed


async def _export_tenant(request: Request, caller: Caller, filter_text: str | None) -> Response:
    """The caller's tenant's records of the configured collection (those matching the filter) as a
    snapshot ``.tar`` (`vpa.portability`), streamed. Scoped as the document routes scope a tenant:
    ``vpa_tenant`` equal to the key's tenant (``""``, the untenanted records, for a key without
    one, as `RAGSystem.list_documents` reads them), whatever the caller's filter says.

    Bounded before a byte is written: the records are counted and more than VPA_MAX_EXPORT_RECORDS
    is 413 ``limit_exceeded``; the count is kept while writing too, so records added meanwhile
    cannot take it past the bound. The snapshot is written under a private temporary folder in the
    data folder and unlinked as soon as it is open, so nothing of it stays on disk once it is
    streamed (or if the client goes away)."""
    import asyncio
    import os
    import shutil
    import tempfile
    from pathlib import Path as FilePath

    from fastapi.responses import StreamingResponse

    from vpa import portability
    from vpa.auth.api_keys import ensure_private_folder
    from vpa.filters import parse_filter
    from vpa.layout import TENANT

    svc = _service(request)
    store = svc.system.store
    spec = _filter_param(filter_text)
    caps = store.capabilities
    with _blame("filter"):  # the caller's filter, held to the store's bounds less the tenant's term
        node = parse_filter(spec, max_terms=caps.max_filter_terms - 1, max_depth=caps.max_filter_depth - 1)
    owner = {TENANT: caller.tenant or ""}
    scope = owner if node is None else {"$and": [owner, spec]}
    info = await svc.system.initialize()
    limit = svc.config.max_export_records
    with _blame("filter"):
        records = await store.count(info.name, scope)
    _note(request, collection=info.name, records=records, filtered=node is not None)

    def too_many(found: int) -> HTTPError:
        return HTTPError(413, LimitExceeded.code,
                         f"the export holds {found} records; the limit is {limit} (VPA_MAX_EXPORT_RECORDS): "
                         "narrow it with filter, or export on the server with `vpa export`", field="filter")

    if records > limit:
        raise too_many(records)
    written = 0

    def bound(page: int) -> None:
        nonlocal written
        written += page
        if written > limit:
            raise too_many(written)

    parent = ensure_private_folder(FilePath(svc.config.data_dir) / EXPORTS_FOLDER)
    work = FilePath(await asyncio.to_thread(tempfile.mkdtemp, prefix="export-", dir=parent))
    try:
        summary = await portability.export_collection(
            store, info.name, work / f"{info.name}.tar", filter=scope,
            sealer=portability.SnapshotSealer.from_config(svc.config),
            source={"provider": svc.config.provider, "tenant": caller.tenant or "", "via": "rest"},
            progress=bound,
        )
        handle = open(work / f"{info.name}.tar", "rb")  # noqa: SIM115 - closed by the stream
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)  # an open file outlives its name
    size = os.fstat(handle.fileno()).st_size
    _note(request, exported=summary.records, bytes=size, encrypted=summary.encrypted)

    async def stream() -> AsyncIterator[bytes]:
        try:
            while chunk := await asyncio.to_thread(handle.read, EXPORT_CHUNK_BYTES):
                yield chunk
        finally:
            handle.close()

    label = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{info.name}-{caller.tenant or 'untenanted'}")
    return StreamingResponse(stream(), media_type=EXPORT_MEDIA_TYPE, headers={
        "Content-Disposition": f'attachment; filename="{label}.tar"', "Content-Length": str(size),
        "Cache-Control": "no-store",
    })


def _add_admin_routes(app: FastAPI) -> None:
    responses: dict[int | str, dict[str, Any]] = {
        200: {"description": "a VPA snapshot: a .tar of manifest.json and Parquet files (see portability)",
              "content": {EXPORT_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}},
        **s.error_responses(413, 422, *AUTH_ERRORS, *STORE_ERRORS),
    }

    @app.get(f"{PREFIX}/admin/export", response_class=Response, responses=responses, tags=["admin"])
    async def export_tenant(
        request: Request,
        caller: Admin,
        filter: Annotated[  # the query parameter's name
            str | None,
            Query(max_length=s.MAX_FILTER_QUERY_LENGTH,
                  description="a metadata filter as JSON (as in GET /documents): the records to export"),
        ] = None,
    ) -> Response:
        """The caller's tenant's records of the collection (those matching `filter`) as a snapshot
        `.tar` to import with `vpa import` or `portability.import_snapshot`: ids, vectors, text and
        metadata, text and titles sealed when encryption at rest is on. Another tenant's record is
        never in it, whatever the filter. At most VPA_MAX_EXPORT_RECORDS records (else 413
        limit_exceeded, counted before anything is written). Admin keys only."""
        return await _export_tenant(request, caller, filter)

    @app.get(f"{PREFIX}/admin/backup", response_class=Response, responses=responses, tags=["admin"])
    async def backup_tenant(request: Request, caller: Admin) -> Response:
        """The caller's tenant backed up: the same snapshot as GET /admin/export without a filter.
        A whole-store backup — every tenant's collections and the key file — is the operator's
        `vpa backup` on the server's host, never an HTTP route: the key file and the other
        tenants' records must not leave through the API."""
        return await _export_tenant(request, caller, None)


# --- observation: request id, metrics, audit -------------------------------------------------


class RequestObserver:
    """Outermost middleware: gives each request an id (``X-Request-ID``), counts and times it by
    route and status (for the whole process, and for the caller's tenant), and writes its audit
    line. A request that ends without a response is 408 when its body timed out, else 499 (the
    client went away)."""

    QUIET = frozenset({HEALTH_PATH, METRICS_PATH, LIVE_PATH})

    def __init__(self, app: Any, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = scope.setdefault("vpa", {})
        given = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-request-id"), "")
        request_id = given if REQUEST_ID_RE.fullmatch(given) else uuid.uuid4().hex
        status = 0
        metrics = self.service.metrics

        async def observe(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        started = time.perf_counter()
        metrics.in_progress.inc()
        failed = True
        span = tracing.span(f"{scope['method']} {scope['path'] if scope['path'] in self.QUIET else 'request'}",
                            **{"http.request.method": scope["method"]})
        span.__enter__()
        context["trace_id"] = tracing.current_trace_id()
        try:
            await self.app(scope, receive, observe)
            failed = False
        finally:
            metrics.in_progress.dec()
            seconds = time.perf_counter() - started
            if not status:
                status = 500 if failed else 408 if context.get("body_timeout") else 499
                context.setdefault(
                    "error_code",
                    "internal_error"
                    if failed
                    else "request_timeout"
                    if status == 408
                    else "client_disconnected",
                )
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.observe_request(scope["method"], template, status, seconds)
            code = context.get("error_code") or context.get("rejected")
            error_code = code or s.HTTP_CODES.get(status, "http_error")
            if status >= 400:
                metrics.errors.labels(error_code).inc()
            caller: Caller | None = context.get("caller")
            if caller is not None and caller.tenant is not None:
                self.service.tenant_metrics.observe(
                    caller.tenant,
                    scope["method"],
                    template,
                    status,
                    seconds,
                    error_code if status >= 400 else None,
                )
            if scope["path"] not in self.QUIET and scope["path"].startswith(PREFIX):
                client = scope.get("client")
                self.service.audit.record(
                    getattr(route, "name", None) or "unmatched",
                    request_id=request_id,
                    method=scope["method"],
                    route=template,
                    status=status,
                    error_code=code,
                    key_id=caller.key_id if caller else None,
                    role=str(caller.role) if caller else None,
                    tenant=caller.tenant if caller else None,
                    client=client[0] if client else None,
                    ms=round(seconds * 1000, 2),
                    **({"trace_id": context["trace_id"]} if context.get("trace_id") else {}),
                    **context.get("audit", {}),
                )
            current = tracing.current_span_if_enabled()
            if current is not None:
                current.update_name(f"{scope['method']} {template}")
                current.set_attribute("http.route", template)
                current.set_attribute("http.response.status_code", status)
            span.__exit__(None, None, None)

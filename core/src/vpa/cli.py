"""The ``vpa`` command: plugins, ingest, search, get, list, update, delete, collections, stats,
config, serve, keys — and whatever installed plugins add (``vpa conformance`` from vpa-conformance).

Every command takes ``--provider`` and ``--collection`` (default from ``VPA_*`` variables). Bad
input — a malformed filter, an unknown provider, an unreadable file — exits with status 2 and one
line on stderr that names the problem.

Metadata is typed JSON (`vpa.typedjson`) wherever the command reads or prints JSON: a datetime is
``{"$date": "2024-05-01T12:00:00Z"}`` in ``--filter``, ``--set``, ``--meta`` and in ``--json`` output.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import textwrap
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import attrs
import click

from vpa.errors import ConfigError, VPAError

EXIT_BAD_INPUT = 2


def _parse_meta(values: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs; values that read as JSON (numbers, true/false, lists) keep that type."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--meta")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    from vpa.typedjson import decode_metadata

    return decode_metadata(out)


def _typed(value: Any) -> Any:
    """``json.dumps``'s ``default``: a datetime as typed JSON (``{"$date": ...}``)."""
    import datetime as dt

    from vpa.typedjson import encode_value

    if isinstance(value, dt.datetime):
        return encode_value(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(value: Any, **options: Any) -> str:
    """JSON as the command prints it: UTF-8 as is, datetimes as ``{"$date": ...}``."""
    return json.dumps(value, ensure_ascii=False, default=_typed, **options)


def _shown(value: Any) -> str:
    """A metadata value in a human-readable line (a datetime in RFC 3339, UTC)."""
    import datetime as dt

    from vpa.typedjson import format_datetime

    return format_datetime(value) if isinstance(value, dt.datetime) else str(value)


def _json_option(text: str, option: str, error: type[Exception]) -> Any:
    """The JSON of an option; malformed JSON is ``error`` naming the option."""
    from vpa.errors import LimitExceeded
    from vpa.filters import MAX_FILTER_DEPTH

    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{option} is not valid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:  # JSON nested beyond what the reader takes: far past the ceiling
        raise LimitExceeded(
            "max_filter_depth", MAX_FILTER_DEPTH + 1, MAX_FILTER_DEPTH, what=f"{option} (too deep to read)"
        ) from None


def _filter_option(text: str | None) -> Any:
    """``--filter`` JSON, parsed and bounded before any model or store is loaded."""
    from vpa.errors import InvalidFilter
    from vpa.filters import parse_filter

    if not text:
        return None
    spec = _json_option(text, "--filter", InvalidFilter)
    parse_filter(spec)  # ceilings included
    return spec


def _config(ctx: click.Context, **overrides: Any) -> Any:
    from vpa.config import load_config, validate_config
    from vpa.errors import ConfigError

    config = load_config(overrides)
    problems = validate_config(config)
    if problems:
        raise ConfigError("; ".join(problems))
    return config


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    @click.option("--provider", help="vector store (VPA_VECTOR_DB_PROVIDER); see `vpa plugins`")
    @click.option("--collection", help="collection name (VPA_COLLECTION)")
    @click.option("--embedder", help="embedder (VPA_EMBEDDER)")
    @click.option("--data-dir", type=click.Path(path_type=Path), help="data folder (VPA_DATA_DIR)")
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


async def _with_system(
    options: dict[str, Any], action: Callable[[Any], Coroutine[Any, Any, Any]], *, initialize: bool = True
) -> Any:
    from vpa.rag import create_enhanced_rag_system

    config = _config(click.get_current_context(), **options)
    system = create_enhanced_rag_system(config)
    try:
        if initialize:
            await system.initialize()
        return await action(system)
    finally:
        await system.shutdown()


def _component_options(provider: str | None, collection: str | None, embedder: str | None, data_dir: Path | None) -> dict[str, Any]:
    return {"provider": provider, "collection": collection, "embedder": embedder, "data_dir": data_dir}


class VPACommand(click.Group):
    """Turns VPA's typed errors into one line on stderr and exit status 2, and adds the commands
    plugins register through the ``vpa_register_commands`` hook (``vpa conformance`` comes from
    the conformance package that way)."""

    _plugins_added = False

    def _add_plugin_commands(self) -> None:
        if self._plugins_added:
            return
        self._plugins_added = True
        from vpa.plugins import get_registry

        for register in get_registry().commands:
            register(cli=self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self._add_plugin_commands()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return super().list_commands(ctx)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VPAError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_BAD_INPUT)


@click.group(cls=VPACommand)
@click.option("--log-level", envvar="VPA_LOG_LEVEL", default="WARNING", show_default=True)
@click.version_option(package_name="vpa-core")
def main(log_level: str) -> None:
    """VPA: retrieval-augmented search over any vector database."""
    from vpa.log import configure_logging

    configure_logging(log_level, "auto")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def plugins(as_json: bool) -> None:
    """List every registered plugin: kind, name, version and package."""
    from vpa.models import to_json_dict
    from vpa.plugins import get_registry

    registry = get_registry()
    rows = [
        {"kind": r.kind, "name": r.name, "version": r.version, "package": r.package, "description": r.description,
         **({"capabilities": to_json_dict(r.capabilities)} if r.capabilities else {})}
        for r in registry.all()
    ]
    if as_json:
        click.echo(json.dumps({"plugins": rows, "errors": [attrs.asdict(e) for e in registry.errors]}, indent=2))
        return
    click.echo(f"{'KIND':<9} {'NAME':<22} {'VERSION':<10} PACKAGE")
    for row in rows:
        click.echo(f"{row['kind']:<9} {row['name']:<22} {row['version']:<10} {row['package']}")
    for error in registry.errors:
        click.echo(f"broken plugin {error.plugin} ({error.package}): {error.error}", err=True)


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--meta", multiple=True, help="key=value metadata added to every document")
@click.option("--tenant", help="tenant the documents belong to")
@click.option("--strict", is_flag=True, help="stop at the first file that cannot be read")
@common_options
def ingest(paths: tuple[str, ...], meta: tuple[str, ...], tenant: str | None, strict: bool, **options: Any) -> None:
    """Add .txt, .md and .html files (and folders of them) to the collection.

    Ids are paths relative to the current folder (or to the common folder of PATHS outside it).
    A file that cannot be read is reported on its own line and the others are ingested; the exit
    status is then 2. With --strict the first such file stops the command before anything is
    written."""
    from tqdm import tqdm

    from vpa.errors import ValidationError
    from vpa.ingest import find_files, read_document

    extra = _parse_meta(meta)
    found = find_files(paths)
    problems = list(found.problems)
    documents = []
    for path, doc_id in found.files:
        try:
            documents.append(read_document(path, doc_id, extra))
        except ValidationError as exc:
            if strict:
                raise
            problems.append(str(exc))
    if strict and found.problems:
        raise ValidationError(found.problems[0])
    for problem in problems:
        click.echo(f"skipped: {problem}", err=True)
    if not documents:
        if problems:
            sys.exit(EXIT_BAD_INPUT)
        raise click.UsageError("no .txt, .md or .html files found")

    async def action(system: Any) -> tuple[int, int, int]:
        added = chunks = unchanged = 0
        batch = 32
        with tqdm(total=len(documents), unit="doc", file=sys.stderr, disable=None) as bar:
            for start in range(0, len(documents), batch):
                results = await system.add_documents(documents[start : start + batch], tenant=tenant)
                added += len(results)
                chunks += sum(r.chunks for r in results)
                unchanged += sum(r.unchanged for r in results)
                bar.update(len(results))
        return added, chunks, unchanged

    added, chunks, unchanged = _run(_with_system(_component_options(**options), action))
    click.echo(f"ingested {added} documents ({chunks} chunks; {unchanged} unchanged)"
               + (f"; {len(problems)} skipped" if problems else ""))
    if problems:
        sys.exit(EXIT_BAD_INPUT)


@main.command()
@click.argument("query")
@click.option("--top-k", default=5, show_default=True, type=int)
@click.option("--filter", "filter_json", help='metadata filter as JSON, e.g. \'{"year": {"$gte": 2020}}\'')
@click.option("--tenant", help="search only this tenant's documents")
@click.option("--user", default="cli", show_default=True,
              help="user id for the search history (history is kept per process: a running `vpa serve` "
                   "keeps it, one `vpa search` run forgets it)")
@click.option("--group-by", type=click.Choice(["document", "chunk"]), default="document", show_default=True,
              help="one result per document (its best chunk), or one per chunk")
@click.option("--mode", type=click.Choice(["dense", "lexical", "hybrid"]), default="dense", show_default=True,
              help="rank by meaning (embeddings), by words (BM25), or both fused; the score shown is the mode's "
                   "(cosine, BM25 or fused: see docs/search.md)")
@click.option("--fusion", type=click.Choice(["rrf", "linear"]),
              help="with --mode hybrid: reciprocal rank fusion (the default) or a linear blend of the scores")
@click.option("--alpha", type=click.FloatRange(0.0, 1.0),
              help="with --fusion linear: the dense half's weight, from 0 (words only) to 1 (meaning only); "
                   "default 0.5")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@common_options
def search(query: str, top_k: int, filter_json: str | None, tenant: str | None, user: str, group_by: str,
           mode: str, fusion: str | None, alpha: float | None, as_json: bool, **options: Any) -> None:
    """Search the collection."""
    from vpa.rag import check_mode, flatten

    filters = _filter_option(filter_json)
    check_mode(mode, fusion, alpha)  # a setting that would not be used is refused before the store is opened

    results = _run(_with_system(
        _component_options(**options),
        lambda system: system.search_knowledge(user, query, top_k=top_k, filters=filters, tenant=tenant,
                                                group_by=group_by, mode=mode, fusion=fusion, alpha=alpha),
    ))
    if as_json:
        click.echo(_dumps(flatten(results), indent=2))
        return
    if not results:
        click.echo("no results")
    for rank, result in enumerate(results, 1):
        snippet = " ".join(result.content.split())
        click.echo(f"{rank}. [{result.score:.3f}] {result.title or result.document_id}  ({result.document_id})")
        click.echo(textwrap.indent(textwrap.fill(snippet[:300] + ("…" if len(snippet) > 300 else ""), 96), "   "))
        if result.metadata:
            click.echo("   " + ", ".join(f"{k}={_shown(v)}" for k, v in sorted(result.metadata.items())))


@main.command()
@click.argument("document_id")
@click.option("--tenant")
@click.option("--json", "as_json", is_flag=True)
@common_options
def get(document_id: str, tenant: str | None, as_json: bool, **options: Any) -> None:
    """Print a document."""
    from vpa.errors import DocumentNotFound

    document = _run(_with_system(_component_options(**options), lambda s: s.get_document(document_id, tenant=tenant)))
    if document is None:
        raise DocumentNotFound(document_id)
    if as_json:
        click.echo(_dumps(attrs.asdict(document), indent=2))
    else:
        click.echo(f"# {document.title}\n{_dumps(document.metadata)}\n\n{document.content}")


# --- listing and metadata updates (store contract 1.1) ---------------------------------------


def _summary_row(summary: Any) -> dict[str, Any]:
    """A listed document as ``--json`` prints it (the REST listing's fields)."""
    return {"id": summary.document_id, "title": summary.title, "metadata": summary.metadata,
            "chunks": summary.chunks}


@main.command("list")
@click.argument("collection_name", metavar="[COLLECTION]", required=False)
@click.option("--filter", "filter_json", help='metadata filter as JSON, e.g. \'{"year": {"$gte": 2020}}\'')
@click.option("--tenant", help="list only this tenant's documents (default: the untenanted ones)")
@click.option("--limit", type=click.IntRange(min=1),
              help="print at most N documents, then the cursor to resume")
@click.option("--cursor", help="resume after the listing that printed this cursor (same filter and tenant)")
@click.option("--json", "as_json", is_flag=True, help='print JSON: {"documents": [...], "next_cursor": ...}')
@common_options
def list_documents(collection_name: str | None, filter_json: str | None, tenant: str | None,
                   limit: int | None, cursor: str | None, as_json: bool, **options: Any) -> None:
    """List the documents of COLLECTION (default: --collection / VPA_COLLECTION): id, chunks,
    title and metadata, never their text. Every document is listed once, page by page, by the
    store's scroll (a store of contract 1.1). With --limit, the cursor of the rest is printed
    (on stderr unless --json) for --cursor."""
    from vpa.rag import MAX_LIST_PAGE_SIZE

    spec = _filter_option(filter_json)
    collection = _named_collection(collection_name, options)

    async def action(system: Any) -> None:
        position = cursor
        shown = 0
        first = True
        while True:
            size = MAX_LIST_PAGE_SIZE if limit is None else min(MAX_LIST_PAGE_SIZE, limit - shown)
            page = await system.list_documents(collection, spec, page_size=size, cursor=position,
                                               tenant=tenant)
            if as_json and first:  # only once the first page came: a refusal prints no JSON at all
                click.echo('{"documents": [', nl=False)
            first = False
            for summary in page.documents:
                if as_json:
                    click.echo(("" if shown == 0 else ", ") + _dumps(_summary_row(summary)), nl=False)
                else:
                    if shown == 0:
                        click.echo(f"{'DOCUMENT ID':<40} {'CHUNKS':>6}  TITLE")
                    click.echo(f"{summary.document_id:<40} {summary.chunks:>6}  {summary.title}")
                    if summary.metadata:
                        pairs = sorted(summary.metadata.items())
                        click.echo("    " + ", ".join(f"{k}={_shown(v)}" for k, v in pairs))
                shown += 1
            position = page.cursor
            if position is None or (limit is not None and shown >= limit):
                break
        if as_json:
            click.echo(f'], "next_cursor": {_dumps(position)}}}')
            return
        if not shown:
            click.echo("no documents")
        if position is not None:
            click.echo(f"more documents: vpa list --cursor {position}", err=True)

    _run(_with_system(_component_options(**options), action, initialize=False))


def _named_collection(collection_name: str | None, options: dict[str, Any]) -> str | None:
    """COLLECTION, or --collection (the system's own) when it is not given; not both unless equal."""
    given = options.get("collection")
    if collection_name is not None and given is not None and collection_name != given:
        raise click.UsageError(f"COLLECTION {collection_name!r} and --collection {given!r} disagree")
    return collection_name


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@common_options
def collections(as_json: bool, **options: Any) -> None:
    """List the store's collections: name, dimension, embedder and documents."""
    from vpa.errors import VPAError
    from vpa.layout import CHUNK_INDEX

    async def action(system: Any) -> list[dict[str, Any]]:
        from vpa.aliases import list_aliases

        aliases = await list_aliases(system.store)
        named_by = {a.target: a.name for a in aliases}  # the collection an alias means
        hidden = {a.name: a.target for a in aliases if a.shadows}  # a real collection an alias hides
        rows = []
        for name in await system.list_collections():
            try:
                info = await system.store.open_collection(name)
                documents = await system.store.count(name, {CHUNK_INDEX: 0})
            except VPAError as exc:  # an encrypted collection without its key, say: named, not fatal
                rows.append({"name": name, "error": exc.code})
                continue
            rows.append({"name": name, "dimension": info.dimension,
                         "embedder": info.fingerprint.describe() if info.fingerprint else None,
                         "documents": documents, "alias": named_by.get(name),
                         "superseded_by": hidden.get(name)})
        return rows

    rows = _run(_with_system(_component_options(**options), action, initialize=False))
    if as_json:
        click.echo(_dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no collections")
        return
    click.echo(f"{'NAME':<24} {'DIMENSION':>9} {'DOCUMENTS':>9}  EMBEDDER")
    for row in rows:
        if "error" in row:
            click.echo(f"{row['name']:<24} {'-':>9} {'-':>9}  ({row['error']})")
        else:
            note = (f"  (used as {row['alias']!r})" if row["alias"] else "") + (
                f"  (superseded: {row['name']!r} means {row['superseded_by']!r})" if row["superseded_by"] else "")
            click.echo(f"{row['name']:<24} {row['dimension']:>9} {row['documents']:>9}  "
                       f"{row['embedder'] or '-'}{note}")


@main.command()
@click.argument("document_id", required=False)
@click.option("--filter", "filter_json", help="update every document that matches this filter (JSON) instead")
@click.option("--set", "set_json", help='metadata to add or replace, as JSON: \'{"status": "done"}\' '
              '(null removes a key; a datetime is {"$date": "2024-05-01T12:00:00Z"})')
@click.option("--unset", multiple=True, help="a metadata key to remove (repeatable)")
@click.option("--tenant", help="the tenant whose documents are changed (default: the untenanted ones)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@common_options
def update(document_id: str | None, filter_json: str | None, set_json: str | None, unset: tuple[str, ...],
           tenant: str | None, as_json: bool, **options: Any) -> None:
    """Change the metadata of DOCUMENT_ID, or of every document matching --filter, in place on
    every chunk, without re-embedding (a store of contract 1.1). VPA's own vpa_* keys cannot be
    changed."""
    from vpa.errors import InvalidMetadata
    from vpa.typedjson import DateError, decode_metadata

    if (document_id is None) == (filter_json is None):
        raise click.UsageError("give DOCUMENT_ID or --filter (one of them)")
    if set_json is None and not unset:
        raise click.UsageError("give --set or --unset")
    spec = _filter_option(filter_json)
    changes = None
    if set_json is not None:
        raw = _json_option(set_json, "--set", InvalidMetadata)
        if not isinstance(raw, dict):
            raise InvalidMetadata("--set must be a JSON object of metadata")
        try:
            changes = decode_metadata(raw)
        except DateError as exc:
            raise InvalidMetadata(f"--set: {exc}") from None

    result = _run(_with_system(
        _component_options(**options),
        lambda system: system.update_document_metadata(
            document_id, filter=spec, set=changes, unset=list(unset) or None, tenant=tenant
        ),
        initialize=False,
    ))
    if as_json:
        click.echo(_dumps({"documents": result.documents, "chunks": result.chunks}, indent=2))
        return
    documents = f"{result.documents} document" + ("" if result.documents == 1 else "s")
    chunks = f"{result.chunks} chunk" + ("" if result.chunks == 1 else "s")
    click.echo(f"updated {documents} ({chunks})")


@main.command()
@click.argument("document_id")
@click.option("--tenant")
@common_options
def delete(document_id: str, tenant: str | None, **options: Any) -> None:
    """Delete a document and its chunks."""
    from vpa.errors import DocumentNotFound

    removed = _run(_with_system(_component_options(**options), lambda s: s.delete_document(document_id, tenant=tenant)))
    if not removed:
        raise DocumentNotFound(document_id)
    click.echo(f"deleted {document_id}")


@main.command()
@click.option("--tenant")
@click.option("--json", "as_json", is_flag=True)
@common_options
def stats(tenant: str | None, as_json: bool, **options: Any) -> None:
    """Documents and chunks of the collection. Search figures are per process: they count the
    searches of a running `vpa serve` (its /stats), not earlier `vpa search` runs."""
    figures = _run(_with_system(_component_options(**options), lambda s: s.get_system_stats(tenant=tenant)))
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    for key, value in figures.items():
        if isinstance(value, dict):
            continue  # the nested sections repeat the flat figures
        label = f"{key} (this process)" if key in ("total_searches", "avg_latency_ms", "p95_latency_ms",
                                                  "cache_hit_rate") else key
        click.echo(f"{label:<31} {value}")


def _echo_provider_options(config: Any) -> None:
    """The configured store's ``[providers.<name>]`` options, with their help (stderr)."""
    from vpa.errors import VPAError
    from vpa.plugins import get_registry
    from vpa.settings import describe_settings

    try:
        store_class = get_registry().get("store", config.provider).load()
    except VPAError:
        return  # validate_config names the problem
    settings_class = getattr(store_class, "settings_class", None)
    options = describe_settings(settings_class) if settings_class is not None and attrs.has(settings_class) else []
    if options:
        click.echo(f"[providers.{config.provider}] options:", err=True)
        for option in options:
            click.echo(f"  {option['name']} ({option['type']}, default {option['default']!r}): {option['help']}",
                       err=True)


@main.command("config")
def show_config() -> None:
    """Print the effective configuration (secrets hidden) and any problems with it."""
    from vpa.config import load_config, validate_config

    config = load_config()
    click.echo(json.dumps(config.redacted(), indent=2, default=str))
    _echo_provider_options(config)
    problems = validate_config(config)
    for problem in problems:
        click.echo(f"problem: {problem}", err=True)
    if problems:
        sys.exit(EXIT_BAD_INPUT)


# --- the REST service and its keys ------------------------------------------------------------


@main.command()
@click.option("--host", envvar="VPA_SERVER_HOST", default="127.0.0.1", show_default=True,
              help="address to bind (VPA_SERVER_HOST)")
@click.option("--port", envvar="VPA_SERVER_PORT", default=8000, show_default=True, type=int,
              help="port (VPA_SERVER_PORT)")
@click.option("--tls-cert", envvar="VPA_TLS_CERT_FILE", type=click.Path(path_type=Path, dir_okay=False),
              help="PEM certificate; with --tls-key, serve HTTPS (VPA_TLS_CERT_FILE)")
@click.option("--tls-key", envvar="VPA_TLS_KEY_FILE", type=click.Path(path_type=Path, dir_okay=False),
              help="PEM private key (VPA_TLS_KEY_FILE)")
@click.option("--max-body-bytes", envvar="VPA_MAX_BODY_BYTES", type=int,
              help="largest request body (VPA_MAX_BODY_BYTES; default 2 x VPA_MAX_DOCUMENT_BYTES + 1 MiB)")
@click.option("--rate-limit-burst", envvar="VPA_RATE_LIMIT_BURST", type=int,
              help="token-bucket capacity per key (VPA_RATE_LIMIT_BURST; default VPA_RATE_LIMIT_PER_MINUTE)")
@click.option("--audit-log", envvar="VPA_AUDIT_LOG", type=click.Path(path_type=Path, dir_okay=False),
              help="append the audit log (JSON lines) here instead of stderr (VPA_AUDIT_LOG)")
@click.option("--public-metrics", envvar="VPA_PUBLIC_METRICS", is_flag=True,
              help="serve /api/v1/metrics without a key (VPA_PUBLIC_METRICS)")
@click.option("--header-timeout", envvar="VPA_HEADER_TIMEOUT", type=float, default=10.0, show_default=True,
              help="seconds a client has to send a request's headers; then 408 (VPA_HEADER_TIMEOUT)")
@click.option("--body-timeout", envvar="VPA_BODY_TIMEOUT", type=float, default=30.0, show_default=True,
              help="seconds a client has to send a request body, plus one per 64 KiB sent; then 408 "
                   "(VPA_BODY_TIMEOUT)")
@click.option("--max-connections", envvar="VPA_MAX_CONNECTIONS", type=int,
              help="open connections at most; the longest-waiting idle one makes room for a new one "
                   "(VPA_MAX_CONNECTIONS; default: what the open-files limit allows, up to 10000)")
@click.option("--http", "http_impl", envvar="VPA_HTTP", default="auto", show_default=True,
              type=click.Choice(["auto", "httptools", "h11"]), help="HTTP/1.1 implementation (VPA_HTTP)")
@click.option("--allow-anonymous", envvar="VPA_ALLOW_ANONYMOUS", is_flag=True,
              help="serve with authentication off even though keys exist or the address is not loopback "
                   "(VPA_ALLOW_ANONYMOUS)")
@common_options
def serve(host: str, port: int, tls_cert: Path | None, tls_key: Path | None, max_body_bytes: int | None,
          allow_anonymous: bool,
          rate_limit_burst: int | None, audit_log: Path | None, public_metrics: bool, header_timeout: float,
          body_timeout: float, max_connections: int | None, http_impl: str, **options: Any) -> None:
    """Serve the REST API (needs the `server` extra: pip install 'vpa-core[server]')."""
    from vpa.errors import DependencyMissing
    from vpa.server.settings import ServerSettings

    try:
        import uvicorn

        from vpa.server.app import create_app, uvicorn_options
    except ImportError as exc:
        raise DependencyMissing(
            f"`vpa serve` needs the server extra: pip install 'vpa-core[server]' ({exc.name} is missing)"
        ) from exc
    config = _config(click.get_current_context(), **_component_options(**options))
    settings = ServerSettings(host=host, port=port, tls_cert_file=tls_cert, tls_key_file=tls_key,
                              max_body_bytes=max_body_bytes, rate_limit_burst=rate_limit_burst,
                              audit_log=audit_log, public_metrics=public_metrics,
                              header_timeout=header_timeout, body_timeout=body_timeout,
                              max_connections=max_connections, http=http_impl)
    problems = settings.problems()
    if problems:
        raise click.UsageError("; ".join(problems))
    if config.encrypt_at_rest:
        from vpa.crypto import parse_key

        parse_key(config.encryption_key)  # a malformed key fails here, before anything is opened
    loopback = _is_loopback(settings.host)
    if config.encrypt_in_transit and not settings.tls and not loopback:
        raise ConfigError(f"VPA_ENCRYPT_IN_TRANSIT is on: serving {settings.host} needs --tls-cert and --tls-key "
                          "(plain HTTP is allowed on loopback only)")
    if not config.auth_enabled:
        keys_on_disk = (Path(config.data_dir) / "keys.json").is_file()
        if (keys_on_disk or not loopback) and not allow_anonymous:
            why = "API keys exist in VPA_DATA_DIR" if keys_on_disk else f"{settings.host} is not a loopback address"
            raise ConfigError(f"refusing to serve without authentication: {why}; set VPA_AUTH_ENABLED=true, "
                              "or pass --allow-anonymous to serve every caller as an unscoped admin")
        click.echo("warning: VPA_AUTH_ENABLED is off: every caller is an unscoped admin", err=True)
    if config.environment == "production" and not settings.tls:
        click.echo("warning: serving plain HTTP in production; terminate TLS in front of it "
                   "or pass --tls-cert/--tls-key", err=True)
    from vpa.auth.api_keys import ensure_private_folder

    ensure_private_folder(Path(config.data_dir))  # 0700 before any store or key file is made in it
    app = create_app(config, settings)
    uvicorn.run(
        app,
        **uvicorn_options(app),
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.tls_cert_file) if settings.tls else None,
        ssl_keyfile=str(settings.tls_key_file) if settings.tls else None,
        access_log=False,  # the audit log records every request, without secrets
        log_level="info",
        server_header=False,
        timeout_graceful_shutdown=30,
    )


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@main.group()
def keys() -> None:
    """Create, list and revoke API keys (stored as hashes in VPA_DATA_DIR/keys.json)."""


def _authenticator(data_dir: Path | None) -> Any:
    from vpa.server.security import registry_for

    config = _config(click.get_current_context(), data_dir=data_dir)
    return registry_for(config, ("auth",)).create("auth", config.authenticator, config)


def _key_row(info: Any) -> dict[str, Any]:
    return {"key_id": info.key_id, "role": str(info.role), "tenant": info.tenant, "name": info.name,
            "created_at": info.created_at, "revoked": info.revoked}


@keys.command("create")
@click.option("--role", required=True, type=click.Choice(["reader", "writer", "admin", "operator"]),
              help="reader, writer, admin (of one tenant) or operator (every tenant's figures, no documents)")
@click.option("--tenant", help="the tenant whose documents the key reaches (not for an operator key)")
@click.option("--name", default="", help="a label, e.g. who holds the key")
@click.option("--data-dir", type=click.Path(path_type=Path), help="data folder (VPA_DATA_DIR)")
@click.option("--json", "as_json", is_flag=True)
def keys_create(role: str, tenant: str | None, name: str, data_dir: Path | None, as_json: bool) -> None:
    """Create a key and print it once: only its hash is stored."""
    from vpa.auth.base import check_key_name, check_key_scope
    from vpa.server.security import key_file_lock

    check_key_scope(role, tenant)  # a bad tenant (control characters, '/', ...) fails before any file
    check_key_name(name)
    probe = _authenticator(data_dir)
    with key_file_lock(getattr(probe, "path", None)):
        info, secret = _authenticator(data_dir).create_key(role, tenant, name)
    if as_json:
        click.echo(json.dumps({**_key_row(info), "key": secret}, indent=2))
    else:
        click.echo(secret)
        scope = info.tenant if info.tenant is not None else "every tenant's figures"
        click.echo(f"key id {info.key_id} · role {info.role} · tenant {scope} — store the key now; "
                   "it is not shown again", err=True)


@keys.command("revoke")
@click.argument("key_id")
@click.option("--data-dir", type=click.Path(path_type=Path), help="data folder (VPA_DATA_DIR)")
def keys_revoke(key_id: str, data_dir: Path | None) -> None:
    """Revoke a key by its id (a running server refuses it from its next request)."""
    from vpa.server.security import key_file_lock

    probe = _authenticator(data_dir)
    with key_file_lock(getattr(probe, "path", None)):
        revoked = _authenticator(data_dir).revoke(key_id)
    if not revoked:
        click.echo(f"error: no active key with id {key_id!r}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    click.echo(f"revoked {key_id}")


@keys.command("list")
@click.option("--data-dir", type=click.Path(path_type=Path), help="data folder (VPA_DATA_DIR)")
@click.option("--json", "as_json", is_flag=True)
def keys_list(data_dir: Path | None, as_json: bool) -> None:
    """List keys: id, role, tenant, name, created, revoked (never the secrets)."""
    import datetime

    rows = [_key_row(info) for info in _authenticator(data_dir).list_keys()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'KEY ID':<14} {'ROLE':<8} {'TENANT':<20} {'CREATED (UTC)':<20} {'STATE':<8} NAME")
    for row in rows:
        created = datetime.datetime.fromtimestamp(row["created_at"], datetime.UTC)
        state = "revoked" if row["revoked"] else "active"
        click.echo(f"{row['key_id']:<14} {row['role']:<8} {row['tenant'] or '-':<20} "
                   f"{created:%Y-%m-%d %H:%M:%S}  {state:<8} {row['name']}")


# Commands kept in their own modules, registered on `main` when this module loads.
from vpa import cli_portability as _cli_portability  # noqa: E402,F401  (export, import, migrate, backup, restore)
from vpa import cli_reindex as _cli_reindex  # noqa: E402,F401  (reindex, alias)

if __name__ == "__main__":
    main()

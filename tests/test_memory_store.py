"""The memory store: persistence across processes, crash-safe writes, concurrent use."""

import asyncio
import gc
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpa.errors import CollectionNotFound, DimensionMismatch, EmbedderMismatch, InvalidVector, UnsupportedFilter, ValidationError
from vpa.models import EmbedderFingerprint, Record, StoreCapabilities
from vpa.stores.memory import MemoryStore


def rec(i: int, dim: int = 4, **meta) -> Record:
    rng = np.random.default_rng(i)
    return Record(f"id-{i}", rng.normal(size=dim) + 0.01, f"text {i} ✓", {"i": i, **meta})


async def test_persists_across_processes(tmp_path):
    store = MemoryStore(tmp_path)
    await store.create_collection("c", 4, fingerprint=EmbedderFingerprint("hashing", "m", 4))
    await store.upsert("c", [rec(i) for i in range(20)])
    await store.delete("c", ids=["id-3"])
    await store.close()
    script = textwrap.dedent(f"""
        import asyncio, json
        from vpa.stores.memory import MemoryStore
        async def main():
            s = MemoryStore({str(tmp_path)!r})
            info = await s.open_collection("c")
            recs = await s.get("c", ["id-0", "id-3", "id-19"])
            print(json.dumps([await s.count("c"), info.fingerprint.name, [r.id for r in recs], recs[0].text]))
        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '[19, "hashing", ["id-0", "id-19"], "text 0 \\u2713"]'


def test_a_killed_writer_loses_no_acknowledged_write(tmp_path):
    """Kill a process mid-stream of writes, several times: the files always load, whole batches
    only, and every write the writer saw acknowledged is there."""
    script = textwrap.dedent(f"""
        import asyncio, numpy as np
        from vpa.models import Record
        from vpa.stores.memory import MemoryStore
        async def main():
            s = MemoryStore({str(tmp_path)!r})
            await s.create_collection("c", 64)
            n = await s.count("c")
            print("ready", flush=True)
            while True:
                batch = [Record(f"r{{n + j}}", np.ones(64) + j, "x" * 2000) for j in range(50)]
                await s.upsert("c", batch)
                n += 50
                print(n, flush=True)
        asyncio.run(main())
    """)
    for delay in (0.3, 0.55, 0.8):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        acknowledged = [int(line) for line in proc.stdout.read().split()]
        count = asyncio.run(_count(tmp_path))
        assert count % 50 == 0
        assert not acknowledged or count >= acknowledged[-1]
    assert count > 0
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # leftovers are swept on open


async def test_a_torn_journal_tail_is_dropped(tmp_path):
    store = MemoryStore(tmp_path)
    await store.create_collection("c", 4)
    await store.upsert("c", [rec(1), rec(2)])
    journal = next(tmp_path.glob("*.log"))
    with journal.open("ab") as fh:  # as a crash leaves it: the store is gone, its files stay
        fh.write(b"\x40\x00\x00\x00garbage")  # a frame header promising more than was written
    del store  # one owner per folder: a store dropped without close() lets go of it
    gc.collect()
    assert await _count(tmp_path) == 2
    reopened = MemoryStore(tmp_path)
    await reopened.upsert("c", [rec(3)])
    await reopened.close()
    assert await _count(tmp_path) == 3


async def _count(path) -> int:
    store = MemoryStore(path)
    try:
        return await store.count("c")
    finally:
        await store.close()


async def test_concurrent_upserts_lose_nothing(tmp_path):
    store = MemoryStore(tmp_path)
    await store.create_collection("c", 4)
    await asyncio.gather(*(store.upsert("c", [rec(i * 10 + j) for j in range(10)]) for i in range(30)))
    assert await store.count("c") == 300
    await store.close()
    assert await _count(tmp_path) == 300


async def test_rejected_calls_change_nothing():
    store = MemoryStore()
    await store.create_collection("c", 4)
    await store.upsert("c", [rec(1), rec(2)])
    bad_batches = [[rec(3), Record("x", [1, 2, 3])], [rec(4), Record("y", [np.nan, 0, 0, 1])], [Record("", [1, 0, 0, 0])]]
    for batch in bad_batches:
        with pytest.raises(ValidationError):
            await store.upsert("c", batch)
    assert await store.count("c") == 2
    with pytest.raises(ValidationError, match="drop_collection"):
        await store.delete("c")
    with pytest.raises(ValidationError, match="drop_collection"):
        await store.delete("c", filter={})
    with pytest.raises(InvalidVector):
        await store.query("c", [0, 0, 0, 0])
    with pytest.raises(DimensionMismatch):
        await store.create_collection("c", 5)
    with pytest.raises(CollectionNotFound):
        await store.count("missing")
    assert await store.count("c") == 2


async def test_embedder_fingerprint_mismatch_is_refused():
    store = MemoryStore()
    await store.create_collection("c", 4, fingerprint=EmbedderFingerprint("a", "m1", 4))
    await store.create_collection("c", 4, fingerprint=EmbedderFingerprint("a", "m1", 4))  # reopen is fine
    with pytest.raises(EmbedderMismatch, match="a:m1"):
        await store.create_collection("c", 4, fingerprint=EmbedderFingerprint("a", "m2", 4))


async def test_query_scores_are_cosine_and_filters_apply():
    store = MemoryStore()
    await store.create_collection("c", 2)
    await store.upsert("c", [Record("a", [1, 0], "", {"k": 1}), Record("b", [3, 3], "", {"k": 2}), Record("c", [-1, 0], "", {"k": 3})])
    hits = await store.query("c", [2, 0], top_k=3)
    assert [h.id for h in hits] == ["a", "b", "c"]
    assert [round(h.score, 5) for h in hits] == [1.0, round(2**-0.5, 5), -1.0]
    assert [h.id for h in await store.query("c", [2, 0], top_k=3, filter={"k": {"$gte": 2}})] == ["b", "c"]
    assert await store.delete("c", ids=["a", "b", "zz"], filter={"k": 2}) == 1
    assert [r.id for r in await store.get("c", ["c", "b", "a", "c"])] == ["c", "a"]
    assert [r.id for r in await store.get("c", ["zz", "c"])] == ["c"]


async def test_undeclared_operator_is_unsupported():
    class NoOr(MemoryStore):
        capabilities = StoreCapabilities(filter_operators={"$eq", "$and"})

    store = NoOr()
    await store.create_collection("c", 2)
    await store.upsert("c", [Record("a", [1, 0], "", {"k": 1})])
    with pytest.raises(UnsupportedFilter, match=r"\$or"):
        await store.delete("c", filter={"$or": [{"k": 1}, {"k": 2}]})
    assert await store.count("c") == 1


async def test_drop_and_recreate(tmp_path):
    store = MemoryStore(tmp_path)
    await store.create_collection("c", 2)
    await store.upsert("c", [Record("a", [1, 0])])
    assert await store.drop_collection("c") is True
    assert await store.drop_collection("c") is False
    assert await store.list_collections() == []
    await store.create_collection("c", 3)
    assert await store.count("c") == 0


# --- exact string equality (numpy 'U' strings drop trailing NULs) ------------------------------

NUL_STRINGS = ["a", "a\x00", "a\x00\x00", "\x00", "", "b", "a\x00b"]


async def test_a_trailing_nul_is_a_different_string():
    store = MemoryStore()
    await store.create_collection("c", 2)
    await store.upsert("c", [
        Record("plain", [1, 0], "", {"s": "a", "l": ["a"]}),
        Record("nul", [0, 1], "", {"s": "a\x00", "l": ["a\x00"]}),
    ])
    cases = {
        '{"s": "a\\u0000"}': ({"s": "a\x00"}, ["nul"]),
        '{"s": "a"}': ({"s": "a"}, ["plain"]),
        "$in": ({"s": {"$in": ["a\x00"]}}, ["nul"]),
        "$in plain": ({"s": {"$in": ["a"]}}, ["plain"]),
        "$ne": ({"s": {"$ne": "a\x00"}}, ["plain"]),
        "$nin": ({"s": {"$nin": ["a"]}}, ["nul"]),
        "list contains": ({"l": "a\x00"}, ["nul"]),
        "list $eq": ({"l": {"$eq": "a"}}, ["plain"]),
        "list $ne": ({"l": {"$ne": "a"}}, ["nul"]),
        "list $in": ({"l": {"$in": ["a\x00"]}}, ["nul"]),
        "list $nin": ({"l": {"$nin": ["a\x00"]}}, ["plain"]),
    }
    for name, (spec, want) in cases.items():
        assert sorted(h.id for h in await store.query("c", [1, 1], top_k=5, filter=spec)) == want, name
        assert await store.count("c", filter=spec) == len(want), name


@settings(max_examples=150)
@given(
    metadata=st.lists(
        st.fixed_dictionaries({}, optional={
            "s": st.sampled_from(NUL_STRINGS),
            "l": st.lists(st.sampled_from(NUL_STRINGS), max_size=3),
        }),
        max_size=8,
    ),
    field=st.sampled_from(["s", "l"]),
    op=st.sampled_from(["$eq", "$ne", "$in", "$nin"]),
    values=st.lists(st.sampled_from(NUL_STRINGS), min_size=1, max_size=3),
)
def test_column_index_agrees_with_the_reference_on_nul_strings(metadata, field, op, values):
    """ColumnIndex (the memory store's vectorised filters) gives exactly `vpa.filters.evaluate`'s
    answer on strings that differ only by NULs."""
    from vpa.filters import evaluate, parse_filter
    from vpa.stores.memory_filter import ColumnIndex

    operand = values if op in ("$in", "$nin") else values[0]
    node = parse_filter({field: {op: operand}})
    got = ColumnIndex(metadata).mask(node).tolist()
    assert got == [evaluate(node, meta) for meta in metadata]


async def test_run_vendor_times_out_a_call_that_never_answers():
    import threading

    from vpa.errors import StoreTimeout

    store = MemoryStore()
    release = threading.Event()
    with pytest.raises(StoreTimeout, match="waiting: no answer within 0.05 s"):
        await store.run_vendor("waiting", release.wait, 5, timeout=0.05)
    release.set()

    def vendor_timeout():
        raise TimeoutError("the vendor's own")

    with pytest.raises(Exception) as caught:
        await store.run_vendor("probe", vendor_timeout)
    assert type(caught.value).__name__ != "TypeError"  # no timeout given: the vendor's error, translated
    assert store.refine_capabilities(max_batch_size=7).max_batch_size == 7 and store.capabilities.max_batch_size == 7
    assert MemoryStore.capabilities.max_batch_size is None  # the class's declaration is untouched


def test_batched_cuts_by_count_and_by_budget():
    from vpa.stores.base import batched

    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([5, 5, 20, 1, 1], 10, budget=10, cost=lambda n: n)) == [[5, 5], [20], [1, 1]]
    assert list(batched([], 3)) == []

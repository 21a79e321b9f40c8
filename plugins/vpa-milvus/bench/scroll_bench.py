"""Milvus as a migration/export source: VPA's scroll against pymilvus' own ``query_iterator``.

Run with ``.venv/bin/python plugins/vpa-milvus/bench/scroll_bench.py [--n 20000] [--dim 384]``.

N records (``--dim`` float32 vectors, a text of ~40 words, metadata with an int, a float, a
string, a bool, a list and a datetime) are upserted through VPA's store into a Milvus Lite file
in a temporary folder. Then, alternating for ``--rounds`` rounds on the same Lite server (the
store's helper process, reached over gRPC as any client would):

- **vpa**: ``store.scroll(collection, batch_size=1000, with_vectors=True)``, every page converted
  to VPA records (ids, float32 vectors, typed metadata), every id counted once;
- **bare**: ``MilvusClient(uri).query_iterator(batch_size=1000, output_fields=[id, vector, text,
  metadata])``, the rows as pymilvus hands them out (no conversion at all; pymilvus 3 decodes a
  row's vector and JSON only when they are read, so these are never decoded);
- **bare+read**: the same, each row's vector and metadata read once (what any consumer pays).

The first VPA round comes straight after the fill, as in a migration (`vpa migrate` reads a
source it may just have written).

It prints records per second — VPA's first listing apart (in Milvus Lite it flushes the rows
just written first, see `MilvusStore._flush_if_due`), the median of the later ones, the bare
iterator's median — and VPA's time ÷ the bare iterator's.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from vpa.models import Record
from vpa_milvus import codec, lite
from vpa_milvus.store import MilvusStore

COLLECTION = "scrollsource"
PAGE = 1000


def records(n: int, dim: int, seed: int = 20261204) -> list[Record]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    words = [f"w{i}" for i in range(500)]
    base = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    out = []
    for i in range(n):
        text = " ".join(rng.choice(words, size=40))
        meta = {
            "i": i,
            "score": float(rng.random()),
            "g": f"g{i % 10}",
            "flag": bool(i % 2),
            "tags": ["a", f"t{i % 7}"],
            "at": base + dt.timedelta(seconds=i),
        }
        out.append(Record(f"doc-{i:07d}#{int(rng.integers(1e6))}", vectors[i], text, meta))
    order = rng.permutation(n)
    return [out[j] for j in order]


async def fill(store: MilvusStore, batch: list[Record], dim: int) -> float:
    await store.create_collection(COLLECTION, dim)
    t = time.perf_counter()
    for start in range(0, len(batch), 1000):
        await store.upsert(COLLECTION, batch[start : start + 1000])
    return time.perf_counter() - t


async def vpa_scroll(store: MilvusStore, n: int) -> float:
    t = time.perf_counter()
    seen = 0
    async for page in store.scroll(COLLECTION, batch_size=PAGE, with_vectors=True):
        seen += len(page.records)
    elapsed = time.perf_counter() - t
    assert seen == n, (seen, n)
    return elapsed


def bare_scroll(uri: str, n: int, read: bool = False) -> float:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri)
    try:
        t = time.perf_counter()
        it = client.query_iterator(
            codec.milvus_name(COLLECTION),
            batch_size=PAGE,
            filter="",
            output_fields=[codec.ID_FIELD, codec.VECTOR_FIELD, codec.TEXT_FIELD, codec.METADATA_FIELD],
        )
        seen = 0
        while rows := it.next():
            seen += len(rows)
            if read:  # what a consumer of the rows pays: pymilvus decodes vector and JSON on access
                for row in rows:
                    row[codec.VECTOR_FIELD], row[codec.METADATA_FIELD]
        it.close()
        elapsed = time.perf_counter() - t
    finally:
        client.close()
    assert seen == n, (seen, n)
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tmp_root = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="vpa-milvus-scroll-", dir=tmp_root) as tmp:
        path = str(Path(tmp) / "vpa.db")
        data = records(args.n, args.dim)
        store = MilvusStore(path)
        upsert_s = await fill(store, data, args.dim)
        await store.count(COLLECTION)
        uri = lite.acquire(str(Path(path).resolve()), 60)  # the same Lite server the store uses
        try:
            vpa_times, bare_times, read_times = [], [], []
            for _ in range(args.rounds):
                vpa_times.append(await vpa_scroll(store, args.n))
                bare_times.append(await asyncio.to_thread(bare_scroll, uri, args.n))
                read_times.append(await asyncio.to_thread(bare_scroll, uri, args.n, True))
        finally:
            lite.release(str(Path(path).resolve()))
            await store.close()
    first = vpa_times[0]
    v = statistics.median(vpa_times[1:] or vpa_times)
    b, r = statistics.median(bare_times), statistics.median(read_times)
    print(f"N={args.n} dim={args.dim} rounds={args.rounds}")
    print(f"upsert      {args.n / upsert_s:9,.0f} records/s")
    print(f"vpa first   {args.n / first:9,.0f} records/s  (straight after the fill: {first:.2f} s)")
    print(f"vpa later   {args.n / v:9,.0f} records/s  ({', '.join(f'{t:.2f}' for t in vpa_times[1:])} s)")
    print(f"bare        {args.n / b:9,.0f} records/s  ({', '.join(f'{t:.2f}' for t in bare_times)} s)")
    print(f"bare+read   {args.n / r:9,.0f} records/s  ({', '.join(f'{t:.2f}' for t in read_times)} s)")
    print(f"vpa later / bare time {v / b:.2f}; / bare+read {v / r:.2f}")


if __name__ == "__main__":
    asyncio.run(main())

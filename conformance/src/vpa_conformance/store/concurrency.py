"""Clauses on concurrency: no lost writes, a free event loop."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from vpa.models import (
    FilterOp,
    MetadataType,
    Record,
)

from vpa_conformance.checks import ContractViolation, check_record, fail
from vpa_conformance.harness import StoreHarness
from vpa_conformance.oracle import Oracle
from vpa_conformance.store.common import (
    MAX_LOOP_STALL,
    _check_unchanged,
)


class ConcurrencyClauses:
    """Clauses on concurrency: no lost writes, a free event loop. Mixed into `StoreContract`."""

    # --- concurrency and the event loop ------------------------------------------------------------

    def test_concurrent_writes(self, vpa_store: StoreHarness) -> None:
        """Upserts from 24 concurrent tasks lose nothing; concurrent deletes and upserts of
        disjoint ids leave exactly the expected records."""
        h = vpa_store
        caps = h.capabilities
        rng = np.random.default_rng(3)
        tasks, batches, per_batch, dim = 24, 3, 5, 8
        with_int = MetadataType.INT in caps.metadata_types
        plan = [
            [
                [
                    Record(
                        f"t{t}-b{b}-r{r}",
                        rng.standard_normal(dim),
                        f"task {t}",
                        {"task": t} if with_int else {},
                    )
                    for r in range(per_batch)
                ]
                for b in range(batches)
            ]
            for t in range(tasks)
        ]
        with h.collection(dim) as name:
            oracle = Oracle(dim)

            async def writer(batches_of_task: list[list[Record]]) -> None:
                for batch in batches_of_task:
                    await h.store.upsert(name, batch)

            h.run(asyncio.gather(*(writer(p) for p in plan)))
            h.settle(name)
            for task_plan in plan:
                for batch in task_plan:
                    oracle.upsert(batch)
            _check_unchanged(h, name, oracle)

            extra = [Record(f"late-{i}", rng.standard_normal(dim), "late", {}) for i in range(40)]

            async def deleter(task_plan: list[list[Record]]) -> int:
                return await h.store.delete(name, ids=[r.id for b in task_plan for r in b])

            async def late_writer(records: list[Record]) -> None:
                await h.store.upsert(name, records)

            jobs = [deleter(p) for p in plan[::2]] + [late_writer(extra[i : i + 4]) for i in range(0, 40, 4)]
            results = h.run(asyncio.gather(*jobs))
            h.settle(name)
            for p in plan[::2]:
                oracle.delete(ids=[r.id for b in p for r in b])
            oracle.upsert(extra)
            removed = sum(results[: len(plan[::2])])
            if removed != len(plan[::2]) * batches * per_batch:
                fail(
                    f"concurrent deletes reported {removed} removals; "
                    f"{len(plan[::2]) * batches * per_batch} existed"
                )
            _check_unchanged(h, name, oracle)

    def test_event_loop_not_blocked(self, vpa_store: StoreHarness) -> None:
        """While the store upserts 5000 records, counts, filters, queries, gets and deletes, a
        5 ms ticker on the same event loop never stalls longer than MAX_LOOP_STALL: blocking
        vendor calls must run off the loop (asyncio.to_thread) or be async."""
        h = vpa_store
        caps = h.capabilities
        rng = np.random.default_rng(11)
        n, dim = 5000, 64
        vectors = rng.standard_normal((n, dim)).astype(np.float32)
        with_int = MetadataType.INT in caps.metadata_types
        records = [
            Record(f"e{i}", vectors[i], f"text {i}", {"i": i % 10} if with_int else {}) for i in range(n)
        ]
        spec = {"i": 3} if with_int and FilterOp.EQ in caps.filter_operators else None
        with h.collection(dim) as name:

            async def scenario() -> tuple[float, dict[str, float]]:
                loop = asyncio.get_running_loop()
                stalls: dict[str, float] = {}
                current = ["start"]
                stop = asyncio.Event()

                async def ticker() -> None:
                    last = loop.time()
                    while not stop.is_set():
                        await asyncio.sleep(0.005)
                        now = loop.time()
                        stalls[current[0]] = max(stalls.get(current[0], 0.0), now - last)
                        last = now

                task = asyncio.create_task(ticker())
                await asyncio.sleep(0.02)
                steps: list[tuple[str, Callable[[], Any]]] = [
                    ("upsert", lambda: h.store.upsert(name, records)),
                    (
                        "settle",
                        lambda: h.store.settle(name) if caps.eventually_consistent else asyncio.sleep(0),
                    ),
                    ("count", lambda: h.store.count(name)),
                    ("count(filter)", lambda: h.store.count(name, spec)),
                    ("query", lambda: h.store.query(name, vectors[1].tolist(), h.clamp_top_k(50), spec)),
                    ("get", lambda: h.store.get(name, [f"e{i}" for i in range(0, n, 5)])),
                    (
                        "delete",
                        lambda: h.store.delete(name, ids=[f"e{i}" for i in range(0, n, 2)], filter=spec),
                    ),
                ]
                started = time.perf_counter()
                for label, step in steps:
                    current[0] = label
                    await step()
                current[0] = "end"
                await asyncio.sleep(0.02)
                stop.set()
                await task
                stalls["total_seconds"] = time.perf_counter() - started
                return max(v for k, v in stalls.items() if k != "total_seconds"), stalls

            # A collection of the test process's whole heap stalls every thread, whichever store
            # runs; it is not what this clause measures, so the scenario runs without one.
            gc.collect()
            gc.disable()
            try:
                worst, stalls = h.run(scenario())
            finally:
                gc.enable()
            h.node.user_properties.append(("vpa_max_loop_stall_ms", round(worst * 1000, 1)))
            by_call = {k: round(v * 1000, 1) for k, v in stalls.items() if k != "total_seconds"}
            h.node.user_properties.append(("vpa_loop_stall_ms_by_call", by_call))
            if worst > MAX_LOOP_STALL:
                detail = ", ".join(
                    f"{k} {v * 1000:.0f} ms" for k, v in stalls.items() if k != "total_seconds"
                )
                fail(
                    f"the event loop stalled for {worst * 1000:.0f} ms (limit "
                    f"{MAX_LOOP_STALL * 1000:.0f} ms) "
                    f"while the store worked; worst stall per call: {detail}. Run blocking client calls "
                    "with asyncio.to_thread or use the vendor's async client"
                )


# A ContractViolation is an AssertionError: pytest shows its message as the failure.
_ = ContractViolation
_ = check_record

"""Chroma's declared bounds hold against the real engine, embedded and ``chroma run``.

Unguarded, a 10,000-value ``$in`` or a 5,000-child ``$or`` kills the process that runs the engine
(SIGSEGV: embedded, the app itself; or the ``chroma run`` server), and a record with 6,000
metadata keys makes compaction fail for good, so that every later write, read and drop of the
collection fails, across restarts. Each is now a `LimitExceeded` before any I/O: the embedded
case runs in a child process, so that a crash would show as its exit status, not kill pytest."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import httpx
import pytest
from vpa.errors import LimitExceeded
from vpa.models import Record
from vpa_chroma.store import ChromaStore

MAX_FILTER_TERMS = ChromaStore.capabilities.max_filter_terms
MAX_METADATA_KEYS = ChromaStore.capabilities.max_metadata_keys

#: Run by a child process: ``python -c SCRIPT <folder or host:port> <collection> <phase>``.
SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from vpa.errors import LimitExceeded
    from vpa.models import Record
    from vpa_chroma.store import ChromaStore

    WIDE = {
        "in10k": {"s": {"$in": [f"w{i}" for i in range(10_000)]}},
        "in10k_numbers": {"n": {"$in": list(range(10_000))}},
        "or5k": {"$or": [{"n": i} for i in range(5_000)]},
        "or5k_strings": {"$or": [{"s": f"w{i}"} for i in range(5_000)]},
    }

    async def main(where, name, phase):
        host, _, port = where.partition(":")
        store = ChromaStore(host=host, port=int(port)) if port else ChromaStore(path=where)
        try:
            if phase == "write":
                await store.create_collection(name, 2)
                await store.upsert(name, [Record(f"r{i}", [1.0, float(i)], "t", {"n": i, "s": f"v{i}"})
                                          for i in range(20)])
                for label, spec in WIDE.items():
                    for call in (lambda: store.count(name, spec),
                                 lambda: store.query(name, [1.0, 0.0], 5, spec),
                                 lambda: store.delete(name, filter=spec)):
                        try:
                            await call()
                        except LimitExceeded as exc:
                            assert exc.limit == "max_filter_terms", exc
                        else:
                            raise AssertionError(f"{label} was not refused")
                big = Record("big", [0.5, 0.5], "", {f"k{i}": i for i in range(6_000)})
                try:
                    await store.upsert(name, [Record("fresh", [0.1, 1.0], "", {}), big])
                except LimitExceeded as exc:
                    assert exc.limit == "max_metadata_keys", exc
                else:
                    raise AssertionError("the 6,000-key record was not refused")
                await store.upsert(name, [Record("after", [0.3, 0.5], "after", {"n": 100})])
            # both phases: the collection works (the second one in a new process)
            assert await store.count(name) == 21
            assert [r.id for r in await store.get(name, ["after", "big", "fresh"])] == ["after"]
            assert [h.id for h in await store.query(name, [0.3, 0.5], 1, {"n": 100})] == ["after"]
            if phase == "reopen":
                assert await store.drop_collection(name) is True
            print("ok")
        finally:
            await store.close()

    asyncio.run(main(*sys.argv[1:4]))
    """
)


def _child(where: str, phase: str, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, where, name, phase], capture_output=True, text=True, timeout=300
    )


def _run_both_phases(where: str) -> None:
    name = f"t{uuid.uuid4().hex[:12]}"
    for phase in ("write", "reopen"):  # reopen: a new process sees a working collection
        result = _child(where, phase, name)
        assert result.returncode == 0, f"{phase}: exit {result.returncode}\n{result.stderr[-3000:]}"
        assert result.stdout.strip().endswith("ok")


def test_embedded_engine_survives_wide_filters_and_many_keys(tmp_path):
    _run_both_phases(str(tmp_path / "chroma"))


def test_server_survives_wide_filters_and_many_keys(chroma_server):
    where = f"{chroma_server.host}:{chroma_server.port}"
    _run_both_phases(where)
    assert chroma_server.process.poll() is None, "the chroma run server died"
    heartbeat = httpx.get(f"http://{where}/api/v2/heartbeat", timeout=5)
    assert heartbeat.status_code == 200


async def test_the_declared_maxima_are_accepted(make_store):
    """Exactly at the bounds, both modes answer (the conformance suite checks every shape)."""
    store = make_store()
    name = f"t{uuid.uuid4().hex[:12]}"
    try:
        await store.create_collection(name, 2)
        keys = {f"k{i}": i for i in range(MAX_METADATA_KEYS)}
        await store.upsert(name, [Record("max", [1.0, 0.0], "", keys)])
        assert (await store.get(name, ["max"]))[0].metadata == keys
        spec = {"$not": {"$and": [{"k0": {"$gt": -i - 0.5}} for i in range(MAX_FILTER_TERMS)]}}
        assert await store.count(name, spec) == 0
        # scroll and update add the scroll key's range (or read the ids) to the same where
        assert (await store.scroll_page(name, spec, batch_size=1)).records == []
        assert await store.update(name, filter=spec, set={"x": 1}) == 0
        wider = {"$not": {"$and": [{"k0": {"$gt": -i}} for i in range(MAX_FILTER_TERMS + 1)]}}
        with pytest.raises(LimitExceeded):
            await store.count(name, wider)
    finally:
        await store.drop_collection(name)
        await store.close()

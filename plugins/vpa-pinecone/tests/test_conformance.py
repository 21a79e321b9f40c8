"""The VPA conformance suite against the Pinecone stand-in (always) and real Pinecone (when configured).

Against the stand-in, the official SDK talks over loopback sockets to the wire-level stand-in
started by the session fixture; writes become visible only after a short delay, so every read
of the suite goes through the plugin's ``settle()``. The stand-in searches exactly, so the
plugin is held to exact top-k there (a subclass declaring ``exact=True``; the plugin itself
declares ``exact=False`` because Pinecone serverless search is approximate).

Against real Pinecone, when ``VPA_PINECONE_API_KEY`` is set: the same suite, the plugin as
registered (approximate search), in namespaces with a prefix unique to the run — of the index
named by ``VPA_PINECONE_INDEX``, or of a new serverless index ``vpa-test-<random>`` created for
the run (``VPA_PINECONE_CLOUD``, ``VPA_PINECONE_REGION``, ``VPA_PINECONE_DIMENSION``) and
deleted afterwards. ``VPA_PINECONE_HOST`` points at another control plane. Without the key the
class is skipped, saying how to run it.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import attrs
import pytest
from conftest import API_KEY, INDEX_DIMENSION, REAL_KEY, REAL_SKIP
from vpa_conformance import StoreContract
from vpa_pinecone.lexical import companion_name
from vpa_pinecone.settings import PineconeSettings
from vpa_pinecone.store import PineconeStore


class ExactStandInPineconeStore(PineconeStore):
    """The plugin unchanged; only the declaration is stricter, because the stand-in is exact."""

    capabilities = attrs.evolve(PineconeStore.capabilities, exact=True, min_recall=1.0)


class TestPineconeStandInConformance(StoreContract):
    """The whole store contract, through the official SDK, against the stand-in."""

    @pytest.fixture
    def store(self, standin):
        return self._make(standin)

    @pytest.fixture
    def store_factory(self, standin):
        return lambda: self._make(standin)

    @staticmethod
    def _make(standin) -> PineconeStore:
        return ExactStandInPineconeStore(
            PineconeSettings(
                host=standin.url, index="vpa-conformance", dimension=INDEX_DIMENSION, settle_timeout=30.0
            ),
            api_key=API_KEY,
        )


class TestPineconeDeclaredCapabilities(StoreContract):
    """The plugin exactly as registered (approximate search declared), against the stand-in:
    only the clauses whose checks depend on the declaration."""

    @pytest.fixture
    def store(self, standin):
        return PineconeStore(
            PineconeSettings(host=standin.url, index="vpa-conformance", dimension=INDEX_DIMENSION),
            api_key=API_KEY,
        )

    # the other clauses are the same code and the same checks as above (exact is only stricter)
    for _name in [n for n in dir(StoreContract) if n.startswith("test_")]:
        if _name not in ("test_capabilities", "test_recall", "test_max_top_k"):
            locals()[_name] = None
    del _name


@pytest.fixture(scope="session")
def real_pinecone():
    """Options for stores on real Pinecone, unique to this run; everything is removed afterwards."""
    from pinecone import Pinecone

    run = uuid.uuid4().hex[:8]
    given_index = os.environ.get("VPA_PINECONE_INDEX")
    options = {
        "host": os.environ.get("VPA_PINECONE_HOST") or None,
        "index": given_index or f"vpa-test-{run}",
        "cloud": os.environ.get("VPA_PINECONE_CLOUD", "aws"),
        "region": os.environ.get("VPA_PINECONE_REGION", "us-east-1"),
        "dimension": int(os.environ.get("VPA_PINECONE_DIMENSION", "64")),
        "namespace_prefix": f"vpa-test-{run}-",
        "settle_timeout": 180.0,
    }
    try:
        yield options
    finally:

        async def drop_leftovers() -> None:
            store = PineconeStore(PineconeSettings(**options), api_key=REAL_KEY)
            try:
                for name in await store.list_collections():
                    await store.drop_collection(name)
                handle = await store._open_index(create=False)
                if handle is not None:
                    await store._clear_namespace(handle, store._catalog)
            finally:
                await store.close()

        asyncio.run(drop_leftovers())
        if not given_index:
            pc = Pinecone(api_key=REAL_KEY, host=options["host"])
            for index in (options["index"], companion_name(options["index"])):  # and the sparse one
                if pc.indexes.exists(index):
                    pc.indexes.delete(index, timeout=300)
            pc.close()


@pytest.mark.skipif(not REAL_KEY, reason=REAL_SKIP)
class TestPineconeRealServiceConformance(StoreContract):
    """The whole store contract against real Pinecone serverless (the plugin as registered)."""

    @pytest.fixture
    def store(self, real_pinecone):
        return PineconeStore(PineconeSettings(**real_pinecone), api_key=REAL_KEY)

    @pytest.fixture
    def store_factory(self, real_pinecone):
        return lambda: PineconeStore(PineconeSettings(**real_pinecone), api_key=REAL_KEY)

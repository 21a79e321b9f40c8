"""The VPA conformance suite against the Pinecone stand-in (always) and real Pinecone (when configured).

Against the stand-in, the official SDK talks over loopback sockets to the wire-level stand-in
started by the session fixture; writes become visible only after a short delay, so every read
of the suite goes through the plugin's ``settle()``. The stand-in searches exactly, so the
plugin is held to exact top-k there (a subclass declaring ``exact=True``; the plugin itself
declares ``exact=False`` because Pinecone serverless search is approximate).

Against real Pinecone: set ``VPA_PINECONE_API_KEY`` (see `test_real_service` in the README).
"""

from __future__ import annotations

import attrs
import pytest
from conftest import API_KEY, INDEX_DIMENSION
from vpa_conformance import StoreContract
from vpa_pinecone import CAPABILITIES, PineconeStore


class ExactStandInPineconeStore(PineconeStore):
    """The plugin unchanged; only the declaration is stricter, because the stand-in is exact."""

    capabilities = attrs.evolve(CAPABILITIES, exact=True, min_recall=1.0)


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
            api_key=API_KEY,
            host=standin.url,
            index="vpa-conformance",
            dimension=INDEX_DIMENSION,
            settle_timeout=30.0,
        )


class TestPineconeDeclaredCapabilities(StoreContract):
    """The plugin exactly as registered (approximate search declared), against the stand-in:
    only the clauses whose checks depend on the declaration."""

    @pytest.fixture
    def store(self, standin):
        return PineconeStore(
            api_key=API_KEY, host=standin.url, index="vpa-conformance", dimension=INDEX_DIMENSION
        )

    # the other clauses are the same code and the same checks as above (exact is only stricter)
    for _name in [n for n in dir(StoreContract) if n.startswith("test_")]:
        if _name not in ("test_capabilities", "test_recall", "test_max_top_k"):
            locals()[_name] = None
    del _name

"""The embedder contract: fixed dimension, deterministic, batch equals one by one, async and health."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from vpa.embedders.base import Embedder
from vpa.models import EmbedderFingerprint

from vpa_conformance import strategies as vst
from vpa_conformance.checks import fail
from vpa_conformance.components.common import (
    COMPONENT_EXAMPLES,
    _Counter,
    _CountsExamples,
)
from vpa_conformance.profiles import clause_settings

_SENTENCE_WORDS = [
    "vector",
    "store",
    "café",
    "naïve",
    "数据",
    "search",
    "the",
    "a",
    "RAG",
    "Ünïcode",
    "42",
    "🙂",
]


def _embedder_texts() -> st.SearchStrategy[str]:
    words = st.lists(st.sampled_from(_SENTENCE_WORDS), min_size=1, max_size=12).map(" ".join)
    return st.one_of(vst.texts(max_size=80), words)


class EmbedderContract(_CountsExamples):
    """Fixed dimension, deterministic, batch equals one-by-one, finite and non-zero vectors (a
    store refuses a zero vector), a fingerprint that names it."""

    #: max |difference| between a text embedded alone and in a batch
    BATCH_TOLERANCE = 1e-5

    @pytest.fixture
    def embedder(self) -> Embedder:
        pytest.fail("an EmbedderContract subclass must define an `embedder` fixture")

    def _embed(self, embedder: Embedder, texts: list[str]) -> np.ndarray:
        vectors = embedder.embed(texts)
        if not isinstance(vectors, np.ndarray):
            fail(f"embed must return a numpy array, got {type(vectors).__name__}")
        if vectors.shape != (len(texts), embedder.dimension):
            fail(
                f"embed of {len(texts)} texts returned shape {vectors.shape}; expected "
                f"({len(texts)}, {embedder.dimension})"
            )
        if vectors.dtype != np.float32:
            fail(f"embed must return float32, got {vectors.dtype}")
        if not np.isfinite(vectors).all():
            fail("embed returned NaN or infinite values")
        if len(texts) and not np.all(np.linalg.norm(vectors, axis=1) > 0):
            fail("embed returned an all-zero vector: a store refuses it (cosine is undefined)")
        return vectors

    def test_fingerprint(self, embedder: Embedder, vpa_examples: _Counter) -> None:
        """name, model and a positive dimension, and the fingerprint made of them."""
        vpa_examples.tick()
        if not isinstance(embedder.name, str) or not embedder.name:
            fail("an embedder needs a non-empty name (its registered name)")
        if not isinstance(embedder.model, str) or not embedder.model:
            fail("an embedder needs a non-empty model identifier")
        dim = embedder.dimension
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            fail(f"dimension must be a positive int, got {dim!r}")
        if embedder.fingerprint != EmbedderFingerprint(embedder.name, embedder.model, dim):
            fail(f"fingerprint {embedder.fingerprint!r} does not match name, model and dimension")

    def test_empty_batch(self, embedder: Embedder, vpa_examples: _Counter) -> None:
        """embed([]) is an empty (0, dimension) float32 array."""
        vpa_examples.tick()
        self._embed(embedder, [])

    @clause_settings(COMPONENT_EXAMPLES["embedder"])
    @given(texts=st.lists(_embedder_texts(), min_size=1, max_size=6))
    def test_shape_and_values(self, embedder: Embedder, vpa_examples: _Counter, texts: list[str]) -> None:
        """One finite, non-zero float32 row of the fixed dimension per text (unicode, empty)."""
        vpa_examples.tick()
        self._embed(embedder, texts)

    @clause_settings(COMPONENT_EXAMPLES["embedder"])
    @given(texts=st.lists(_embedder_texts(), min_size=1, max_size=6))
    def test_deterministic(self, embedder: Embedder, vpa_examples: _Counter, texts: list[str]) -> None:
        """The same texts give the same vectors, call after call."""
        vpa_examples.tick()
        first = self._embed(embedder, texts)
        second = self._embed(embedder, list(texts))
        if not np.allclose(first, second, rtol=0, atol=1e-6):
            fail("embedding the same texts twice gave different vectors")

    @clause_settings(COMPONENT_EXAMPLES["embedder"])
    @given(texts=st.lists(_embedder_texts(), min_size=2, max_size=4))
    def test_batch_equals_one_by_one(
        self, embedder: Embedder, vpa_examples: _Counter, texts: list[str]
    ) -> None:
        """A text's vector does not depend on the batch it is embedded in."""
        vpa_examples.tick()
        batch = self._embed(embedder, texts)
        for i, text in enumerate(texts):
            alone = self._embed(embedder, [text])[0]
            if not np.allclose(batch[i], alone, rtol=0, atol=self.BATCH_TOLERANCE):
                fail(
                    f"text {i} embedded in a batch differs from embedded alone by "
                    f"{np.abs(batch[i] - alone).max():.2e}"
                )

    def test_query_and_async(self, embedder: Embedder, vpa_examples: _Counter) -> None:
        """embed_query(t) equals embed([t])[0], and aembed equals embed."""
        vpa_examples.tick()
        texts = ["what is a vector store?", "", "caf\u00e9 e\u0301 \U0001f600"]
        batch = self._embed(embedder, texts)
        for i, text in enumerate(texts):
            query = np.asarray(embedder.embed_query(text), dtype=np.float32)
            if not np.allclose(query, batch[i], rtol=0, atol=self.BATCH_TOLERANCE):
                fail("embed_query(text) differs from embed([text])[0]")
        asynchronous = asyncio.run(embedder.aembed(texts))
        if not np.allclose(np.asarray(asynchronous), batch, rtol=0, atol=self.BATCH_TOLERANCE):
            fail("aembed(texts) differs from embed(texts)")

    def test_health(self, embedder: Embedder, vpa_examples: _Counter) -> None:
        """health() reports ok for a working embedder."""
        vpa_examples.tick()
        status = asyncio.run(embedder.health())
        if not status.ok:
            fail(f"health() is not ok: {status.detail}")


# --- chunker ---------------------------------------------------------------------------------

"""The embedder interface: texts → an (n, dimension) float32 matrix, deterministic."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence

import numpy as np

from vpa.models import EmbedderFingerprint, HealthStatus


class Embedder(abc.ABC):
    """Embeds texts. ``embed`` is synchronous CPU work; ``aembed`` runs it off the event loop."""

    #: The registered name (``VPA_EMBEDDER``).
    name: str = ""

    #: ``aembed`` embeds texts totalling at most this many characters on the event loop itself:
    #: for an embedder this cheap (a query through the hashing embedder takes 40-90 µs) the hop
    #: to a worker thread (about 0.1 ms) costs more than the work. 0: always use a worker thread.
    inline_chars: int = 0

    @property
    @abc.abstractmethod
    def model(self) -> str:
        """The model identifier that, with the name and dimension, fingerprints a collection."""

    @property
    @abc.abstractmethod
    def dimension(self) -> int: ...

    @abc.abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, float32, finite; the same text always gives the same row."""

    @property
    def fingerprint(self) -> EmbedderFingerprint:
        return EmbedderFingerprint(self.name, self.model, self.dimension)

    async def aembed(self, texts: Sequence[str]) -> np.ndarray:
        batch = list(texts)
        if self.inline_chars and sum(map(len, batch)) <= self.inline_chars:
            return self.embed(batch)
        return await asyncio.to_thread(self.embed, batch)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    async def health(self) -> HealthStatus:
        try:
            vector = await self.aembed(["health check"])
        except Exception as exc:  # health reports, it does not raise
            return HealthStatus(ok=False, detail=f"{type(exc).__name__}: {exc}")
        return HealthStatus(ok=vector.shape == (1, self.dimension), detail=self.fingerprint.describe())

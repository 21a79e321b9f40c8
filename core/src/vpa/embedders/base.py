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
        return await asyncio.to_thread(self.embed, list(texts))

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    async def health(self) -> HealthStatus:
        try:
            vector = await self.aembed(["health check"])
        except Exception as exc:  # health reports, it does not raise
            return HealthStatus(ok=False, detail=f"{type(exc).__name__}: {exc}")
        return HealthStatus(ok=vector.shape == (1, self.dimension), detail=self.fingerprint.describe())

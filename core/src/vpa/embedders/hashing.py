"""The `hashing` embedder: feature hashing of words and word pairs. No model, no downloads.

Deterministic across processes and machines (BLAKE2b, not Python's salted ``hash``), so it suits
tests, demos and CI. Texts that share words get similar vectors; it knows no synonyms.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from vpa.embedders.base import Embedder
from vpa.hookspecs import hookimpl

_TOKEN_RE = re.compile(r"\w+", re.UNICODE)
_EMPTY_TOKEN = "\x00empty"
#: Memoised features per embedder (a few MB: words and frequent word pairs).
BUCKET_CACHE_SIZE = 1 << 16


class HashingEmbedder(Embedder):
    name = "hashing"
    inline_chars = 256

    def __init__(self, dimension: int = 384) -> None:
        if dimension < 8:
            raise ValueError("the hashing embedder needs at least 8 dimensions")
        self._dimension = dimension
        #: Feature → (bucket, sign), memoised: BLAKE2b per feature was most of the cost.
        self._cached_bucket = functools.lru_cache(maxsize=BUCKET_CACHE_SIZE)(self._bucket)

    @property
    def model(self) -> str:
        return "blake2b-words-bigrams-v1"

    @property
    def dimension(self) -> int:
        return self._dimension

    def _features(self, text: str) -> Counter[str]:
        words = _TOKEN_RE.findall(text.casefold())
        features = Counter(words)
        features.update(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
        return features or Counter({_EMPTY_TOKEN: 1})

    def _bucket(self, feature: str) -> tuple[int, float]:
        digest = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")
        return digest % self._dimension, 1.0 if digest >> 63 else -1.0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        # One bincount per text over memoised buckets (words repeat across a corpus): about twice
        # as fast as adding features one by one, the same vectors to within float32 rounding.
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            features = self._features(text)
            buckets = [self._cached_bucket(f) for f in features]
            n = len(buckets)
            index = np.fromiter((b[0] for b in buckets), dtype=np.int64, count=n)
            sign = np.fromiter((b[1] for b in buckets), dtype=np.float64, count=n)
            counts = np.fromiter(features.values(), dtype=np.float64, count=n)
            vector = np.bincount(index, sign * (1.0 + np.log(counts)), minlength=self._dimension)
            norm = np.linalg.norm(vector)
            if norm == 0:  # every feature cancelled out: fall back to the empty-text vector
                index_, sign_ = self._bucket(_EMPTY_TOKEN)
                out[row, index_] = sign_
            else:
                out[row] = vector / norm
        return out


@hookimpl
def vpa_register_embedders(register: Any) -> None:
    register(
        "hashing",
        lambda config: HashingEmbedder(int(config.provider_options("hashing").get("dimension", 384))),
        description="feature hashing of words; deterministic, no model (tests and demos)",
    )

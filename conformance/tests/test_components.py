"""The embedder, chunker, cache and auth contracts against the built-in components."""

from __future__ import annotations

import pytest
from vpa.auth.api_keys import ApiKeyAuthenticator
from vpa.caches.lru import LRUCache
from vpa.chunkers.recursive import RecursiveChunker
from vpa.embedders.hashing import HashingEmbedder
from vpa_conformance import AuthContract, CacheContract, ChunkerContract, EmbedderContract, FakeClock


class TestHashingEmbedder(EmbedderContract):
    @pytest.fixture(params=[8, 384])
    def embedder(self, request):
        return HashingEmbedder(request.param)


@pytest.fixture(scope="module")
def sentence_transformer():
    from vpa.embedders.sentence_transformers import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"])  # load the model once for the module
    return embedder


class TestSentenceTransformerEmbedder(EmbedderContract):
    @pytest.fixture
    def embedder(self, sentence_transformer):
        return sentence_transformer


class TestRecursiveChunker(ChunkerContract):
    @pytest.fixture(params=[(1, 0), (7, 3), (50, 10), (200, 0), (1000, 200)], ids=lambda p: f"{p[0]}-{p[1]}")
    def chunker(self, request):
        return RecursiveChunker(*request.param)


class TestLRUCache(CacheContract):
    @pytest.fixture
    def cache_clock(self):
        return FakeClock()

    @pytest.fixture
    def cache_ttl(self):
        return 60.0

    @pytest.fixture(params=[1, 3, 16])
    def cache_maxsize(self, request):
        return request.param

    @pytest.fixture
    def cache(self, cache_clock, cache_ttl, cache_maxsize):
        return LRUCache(maxsize=cache_maxsize, ttl=cache_ttl, timer=cache_clock)


class TestLRUCacheRealClock(CacheContract):
    """Without a controllable clock: TTL is checked in real time (a short TTL), eviction not."""

    @pytest.fixture
    def cache_ttl(self):
        return 0.2

    @pytest.fixture
    def cache(self, cache_ttl):
        return LRUCache(maxsize=1024, ttl=cache_ttl)


class TestApiKeyAuthenticator(AuthContract):
    @pytest.fixture(params=["memory", "file"])
    def authenticator(self, request, tmp_path):
        return ApiKeyAuthenticator(None if request.param == "memory" else tmp_path / "keys.json")

"""The contracts of the other extension points: embedders, chunkers, caches, authenticators.

Each is a base class with one required fixture, like `StoreContract`::

    class TestMyEmbedder(EmbedderContract):
        @pytest.fixture
        def embedder(self):
            return MyEmbedder()

    class TestMyChunker(ChunkerContract):
        @pytest.fixture(params=[(50, 10), (1000, 200)])
        def chunker(self, request):
            return MyChunker(*request.param)

    class TestMyCache(CacheContract):
        @pytest.fixture
        def cache_clock(self):
            return FakeClock()                       # optional: lets the suite move time

        @pytest.fixture
        def cache(self, cache_clock):
            return MyCache(maxsize=8, ttl=60, timer=cache_clock)

        @pytest.fixture
        def cache_ttl(self):
            return 60.0                              # optional: enables the TTL clause

        @pytest.fixture
        def cache_maxsize(self):
            return 8                                 # optional: enables the eviction clause

    class TestMyAuth(AuthContract):
        @pytest.fixture
        def authenticator(self, tmp_path):
            return MyAuthenticator(tmp_path / "keys.json")

A clause whose optional fixture is not given is reported "not declared", never skipped.
"""

from vpa_conformance.components.auth import AuthContract
from vpa_conformance.components.cache import CacheContract, FakeClock
from vpa_conformance.components.chunker import ChunkerContract
from vpa_conformance.components.embedder import EmbedderContract

__all__ = ["AuthContract", "CacheContract", "ChunkerContract", "EmbedderContract", "FakeClock"]

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

from __future__ import annotations

import asyncio
import string
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from vpa.auth.base import ALLOWED, Action, Authenticator, Principal, Role
from vpa.caches.base import Cache, CacheStats
from vpa.chunkers.base import Chunker
from vpa.embedders.base import Embedder
from vpa.errors import AuthenticationError, PermissionDenied, ValidationError
from vpa.models import Chunk, EmbedderFingerprint

from vpa_conformance import strategies as vst
from vpa_conformance.checks import fail
from vpa_conformance.profiles import clause_settings

__all__ = ["AuthContract", "CacheContract", "ChunkerContract", "EmbedderContract", "FakeClock"]

#: Examples per clause in the ``ci`` profile.
COMPONENT_EXAMPLES = {"embedder": 10, "chunker": 40, "cache": 30, "auth": 15}


def _not_declared(request: pytest.FixtureRequest) -> None:
    request.node.user_properties.append(("vpa_status", "not declared"))


def _examples(request: pytest.FixtureRequest, count: int) -> None:
    request.node.user_properties.append(("vpa_examples", count))


class _Counter:
    """Counts hypothesis examples of one test function, for the report."""

    def __init__(self) -> None:
        self.examples = 0

    def tick(self) -> None:
        self.examples += 1


class _CountsExamples:
    @pytest.fixture
    def vpa_examples(self, request: pytest.FixtureRequest) -> Iterator[_Counter]:
        counter = _Counter()
        yield counter
        _examples(request, counter.examples)


# --- embedder --------------------------------------------------------------------------------

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

_CHUNK_WORDS = [
    "a",
    "word",
    "longerword",
    "ünïcode",
    "数据库",
    "🙂",
    "x" * 40,
    "end.",
    "stop!",
    "why?",
    "semi;",
    "co,",
]
_CHUNK_SEPARATORS = [" ", " ", " ", "\n", "\n\n", ". ", ", ", "\t", "  ", ""]


@st.composite
def documents(draw: st.DrawFn, max_words: int = 400) -> str:
    """Text with words, sentences, lines and paragraphs, unicode, and runs with no boundary."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(vst._CHARS, max_size=300))
    words = draw(st.lists(st.sampled_from(_CHUNK_WORDS), max_size=max_words))
    out = []
    for word in words:
        out.append(word)
        out.append(draw(st.sampled_from(_CHUNK_SEPARATORS)))
    return "".join(out)


class ChunkerContract(_CountsExamples):
    """Chunks cover the text, in order, each exactly ``text[start:end]``, at most ``chunk_size``
    long, consecutive ones overlapping by at most ``chunk_overlap`` characters."""

    @pytest.fixture
    def chunker(self) -> Chunker:
        pytest.fail("a ChunkerContract subclass must define a `chunker` fixture")

    def test_settings(self, chunker: Chunker, vpa_examples: _Counter) -> None:
        """chunk_size is a positive int and 0 <= chunk_overlap < chunk_size."""
        vpa_examples.tick()
        size, overlap = chunker.chunk_size, chunker.chunk_overlap
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            fail(f"chunk_size must be a positive int, got {size!r}")
        if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < size:
            fail(f"chunk_overlap must be an int in [0, chunk_size), got {overlap!r}")

    def test_empty_text(self, chunker: Chunker, vpa_examples: _Counter) -> None:
        """An empty text has no chunks."""
        vpa_examples.tick()
        if chunker.split("") != []:
            fail("split('') must return []")

    @staticmethod
    def check_chunks(chunker: Chunker, text: str, chunks: list[Chunk]) -> None:
        if not text:
            if chunks:
                fail("split('') must return []")
            return
        if not chunks:
            fail(f"split returned no chunks for a text of {len(text)} characters")
        previous: Chunk | None = None
        for i, chunk in enumerate(chunks):
            if not isinstance(chunk, Chunk):
                fail(f"split must return Chunk objects, got {type(chunk).__name__}")
            if chunk.index != i:
                fail(f"chunk {i} has index {chunk.index}")
            if not 0 <= chunk.start < chunk.end <= len(text):
                fail(
                    f"chunk {i} has offsets [{chunk.start}, {chunk.end}) outside the text of "
                    f"{len(text)} characters"
                )
            if chunk.text != text[chunk.start : chunk.end]:
                fail(f"chunk {i}'s text is not text[{chunk.start}:{chunk.end}]")
            if chunk.end - chunk.start > chunker.chunk_size:
                fail(
                    f"chunk {i} is {chunk.end - chunk.start} characters long; chunk_size is "
                    f"{chunker.chunk_size}"
                )
            if previous is None:
                if chunk.start != 0:
                    fail(f"the first chunk starts at {chunk.start}: characters [0, {chunk.start}) are lost")
            else:
                if chunk.start > previous.end:
                    fail(
                        f"characters [{previous.end}, {chunk.start}) between chunks {i - 1} and {i} are lost"
                    )
                if chunk.start <= previous.start or chunk.end <= previous.end:
                    fail(f"chunk {i} [{chunk.start}, {chunk.end}) does not advance past chunk {i - 1}")
                overlap = previous.end - chunk.start
                if overlap > chunker.chunk_overlap:
                    fail(
                        f"chunks {i - 1} and {i} overlap by {overlap} characters; chunk_overlap is "
                        f"{chunker.chunk_overlap}"
                    )
            previous = chunk
        assert previous is not None
        if previous.end != len(text):
            fail(f"the last chunk ends at {previous.end}: characters [{previous.end}, {len(text)}) are lost")

    @clause_settings(COMPONENT_EXAMPLES["chunker"])
    @given(text=documents())
    def test_chunks_cover_text(self, chunker: Chunker, vpa_examples: _Counter, text: str) -> None:
        """Chunks cover the text in order, with exact offsets, within chunk_size and
        chunk_overlap."""
        vpa_examples.tick()
        self.check_chunks(chunker, text, chunker.split(text))

    @clause_settings(COMPONENT_EXAMPLES["chunker"] // 2)
    @given(text=documents(max_words=100))
    def test_deterministic(self, chunker: Chunker, vpa_examples: _Counter, text: str) -> None:
        """Splitting the same text twice gives the same chunks."""
        vpa_examples.tick()
        if chunker.split(text) != chunker.split(text):
            fail("splitting the same text twice gave different chunks")


# --- cache -----------------------------------------------------------------------------------


class FakeClock:
    """A controllable monotonic clock: pass it as the cache's timer, move it with `advance`."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back")
        self.now += seconds


_NAMESPACES = st.sampled_from(["emb:hashing", "col:a", "col:b", "col:caf\u00e9"])
_KEYS = st.one_of(
    st.sampled_from(["q1", "q2", "q3", "", "k\u00fc"]), st.text(string.ascii_letters, min_size=1, max_size=6)
)
_VALUES = st.one_of(
    st.integers(),
    st.text(max_size=10),
    st.lists(st.floats(allow_nan=False), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
)


class CacheContract(_CountsExamples):
    """Values by (namespace, key): a set value is returned until it expires (TTL), is evicted
    under size pressure, or its namespace is invalidated or the cache cleared; a stale value is
    never returned; stats count hits and misses."""

    @pytest.fixture
    def cache(self) -> Cache:
        pytest.fail("a CacheContract subclass must define a `cache` fixture")

    @pytest.fixture
    def cache_clock(self) -> FakeClock | None:
        """Override with the FakeClock the cache's timer reads, to check TTL without sleeping."""
        return None

    @pytest.fixture
    def cache_ttl(self) -> float | None:
        """Override with the cache's time to live in seconds, to check expiry."""
        return None

    @pytest.fixture
    def cache_maxsize(self) -> int | None:
        """Override with the cache's capacity, to check eviction."""
        return None

    def test_set_get(self, cache: Cache, vpa_examples: _Counter) -> None:
        """A set value is returned; an absent key is None; the newest value wins; namespaces
        are separate."""
        vpa_examples.tick()
        if cache.get("ns", "absent") is not None:
            fail("get of an absent key must return None")
        cache.set("ns", "k", [1.0, 2.0])
        if cache.get("ns", "k") != [1.0, 2.0]:
            fail("get does not return the value just set")
        cache.set("ns", "k", "newer")
        if cache.get("ns", "k") != "newer":
            fail("get does not return the newest value")
        if cache.get("other", "k") is not None:
            fail("a key set in one namespace is visible in another")

    def test_invalidate_and_clear(self, cache: Cache, vpa_examples: _Counter) -> None:
        """invalidate(ns) forgets every key of ns and nothing else; clear forgets everything."""
        vpa_examples.tick()
        cache.set("a", "1", 1)
        cache.set("a", "2", 2)
        cache.set("b", "1", 3)
        cache.invalidate("a")
        if cache.get("a", "1") is not None or cache.get("a", "2") is not None:
            fail("invalidate(ns) left values of ns readable")
        if cache.get("b", "1") != 3:
            fail("invalidate of one namespace lost another namespace's values")
        cache.set("a", "1", 4)
        if cache.get("a", "1") != 4:
            fail("a value set after invalidate is not returned")
        cache.clear()
        if cache.get("a", "1") is not None or cache.get("b", "1") is not None:
            fail("clear left values readable")

    def test_stats(self, cache: Cache, vpa_examples: _Counter) -> None:
        """stats() counts hits and misses of get and reports a size within maxsize."""
        vpa_examples.tick()
        before = cache.stats()
        if not isinstance(before, CacheStats):
            fail(f"stats() must return CacheStats, got {type(before).__name__}")
        cache.set("s", "hit", 1)
        cache.get("s", "hit")
        cache.get("s", "hit")
        cache.get("s", "miss")
        after = cache.stats()
        if (after.hits - before.hits, after.misses - before.misses) != (2, 1):
            fail(
                f"after 2 hits and 1 miss, stats moved by {after.hits - before.hits} hits, "
                f"{after.misses - before.misses} misses"
            )
        if not 0 <= after.size <= after.maxsize:
            fail(f"stats size {after.size} is outside [0, maxsize={after.maxsize}]")

    def test_ttl(
        self,
        cache: Cache,
        cache_clock: FakeClock | None,
        cache_ttl: float | None,
        vpa_examples: _Counter,
        request: pytest.FixtureRequest,
    ) -> None:
        """A value is returned before its TTL and never after it."""
        if cache_ttl is None or (cache_clock is None and cache_ttl > 2.0):
            _not_declared(request)
            return
        vpa_examples.tick()

        def advance(seconds: float) -> None:
            if cache_clock is not None:
                cache_clock.advance(seconds)
            else:
                time.sleep(seconds)

        cache.set("t", "k", "v")
        advance(cache_ttl * 0.5)
        if cache.get("t", "k") != "v":
            fail("a value is gone before its TTL")
        cache.set("t", "fresh", "w")
        advance(cache_ttl * 0.6)
        if cache.get("t", "k") is not None:
            fail("a value is returned after its TTL")
        if cache.get("t", "fresh") != "w":
            fail("a value set later expired with an older one")
        advance(cache_ttl)
        if cache.get("t", "fresh") is not None:
            fail("a value is returned after its TTL")

    def test_eviction(
        self, cache: Cache, cache_maxsize: int | None, vpa_examples: _Counter, request: pytest.FixtureRequest
    ) -> None:
        """Past maxsize the cache evicts: its size stays within maxsize, the newest entry and a
        recently read one survive."""
        if cache_maxsize is None:
            _not_declared(request)
            return
        vpa_examples.tick()
        cache.set("e", "hot", "hot")
        for i in range(cache_maxsize * 2 + 3):
            cache.set("e", f"k{i}", i)
            if cache_maxsize >= 3 and cache.get("e", "hot") != "hot":
                fail(
                    f"the most recently read entry was evicted (after {i + 1} inserts, maxsize "
                    f"{cache_maxsize})"
                )
            if cache.get("e", f"k{i}") != i:
                fail("the newest entry was evicted at once")
            if cache.stats().size > cache_maxsize:
                fail(f"the cache holds {cache.stats().size} entries; maxsize is {cache_maxsize}")

    @clause_settings(COMPONENT_EXAMPLES["cache"])
    @given(
        ops=st.lists(
            st.one_of(
                st.tuples(st.just("set"), _NAMESPACES, _KEYS, _VALUES),
                st.tuples(st.just("get"), _NAMESPACES, _KEYS),
                st.tuples(st.just("invalidate"), _NAMESPACES),
                st.tuples(st.just("advance"), st.floats(0, 2)),
                st.tuples(st.just("clear")),
            ),
            max_size=40,
        )
    )
    def test_against_model(
        self,
        cache: Cache,
        cache_clock: FakeClock | None,
        cache_ttl: float | None,
        cache_maxsize: int | None,
        vpa_examples: _Counter,
        ops: list[tuple[Any, ...]],
    ) -> None:
        """Random set/get/invalidate/clear/time sequences: a get returns either nothing or the
        newest live value, and the value while it must still be there (no size pressure, not
        expired); hits and misses are counted."""
        vpa_examples.tick()
        cache.clear()
        clock = cache_clock if cache_clock is not None else time.monotonic
        live: dict[tuple[str, str], tuple[Any, float]] = {}  # value and when it was set
        inserted = 0  # entries the cache may hold, stale generations included
        start = cache.stats()
        hits = misses = 0
        ttl = cache_ttl
        for op in ops:
            kind = op[0]
            if kind == "set":
                _, ns, key, value = op
                live[(ns, key)] = (value, clock())
                inserted += 1
                cache.set(ns, key, value)
            elif kind == "get":
                _, ns, key = op
                got = cache.get(ns, key)
                entry = live.get((ns, key))
                age = clock() - entry[1] if entry is not None else 0.0
                slack = 1e-6 * (ttl or 0.0)
                expired = entry is not None and ttl is not None and age >= ttl + slack
                fresh = entry is not None and (ttl is None or age < ttl - slack)
                if got is None:
                    misses += 1
                    if fresh and cache_maxsize is not None and inserted <= cache_maxsize:
                        fail(f"get({ns!r}, {key!r}) lost a live value with no size pressure")
                else:
                    hits += 1
                    if entry is None:
                        fail(
                            f"get({ns!r}, {key!r}) returned {got!r} after it was invalidated, "
                            "cleared or never set"
                        )
                    if expired:
                        fail(f"get({ns!r}, {key!r}) returned a value older than the TTL")
                    if got != entry[0]:
                        fail(f"get({ns!r}, {key!r}) returned {got!r}; the newest value is {entry[0]!r}")
            elif kind == "invalidate":
                cache.invalidate(op[1])
                live = {k: v for k, v in live.items() if k[0] != op[1]}
            elif kind == "advance":
                if cache_clock is not None and ttl is not None:
                    cache_clock.advance(op[1] * ttl)
            else:
                cache.clear()
                live.clear()
                inserted = 0
        end = cache.stats()
        if (end.hits - start.hits, end.misses - start.misses) != (hits, misses):
            fail(
                f"stats counted {end.hits - start.hits} hits and {end.misses - start.misses} "
                f"misses; expected {hits} and {misses}"
            )


# --- auth ------------------------------------------------------------------------------------

_TENANTS = st.one_of(
    st.sampled_from(["acme", "globex", "t-1", "caf\u00e9"]),
    st.text(string.ascii_lowercase, min_size=1, max_size=8),
)
_ROLES = st.sampled_from([*Role, *(r.value for r in Role)])


class AuthContract(_CountsExamples):
    """API keys: a created key authenticates to its role and tenant; unknown, malformed and
    revoked keys are rejected; roles allow exactly their actions; no secret is kept or shown."""

    @pytest.fixture
    def authenticator(self) -> Authenticator:
        pytest.fail("an AuthContract subclass must define an `authenticator` fixture")

    @staticmethod
    def _check_principal(principal: Any, info: Any, role: Role, tenant: str) -> None:
        if not isinstance(principal, Principal):
            fail(f"authenticate must return a Principal, got {type(principal).__name__}")
        if (principal.key_id, principal.role, principal.tenant) != (info.key_id, role, tenant):
            fail(f"the key authenticates as {principal!r}; it was created for role {role}, tenant {tenant!r}")

    @clause_settings(COMPONENT_EXAMPLES["auth"])
    @given(keys=st.lists(st.tuples(_ROLES, _TENANTS, st.text(max_size=10)), min_size=1, max_size=4))
    def test_keys_authenticate(
        self, authenticator: Authenticator, vpa_examples: _Counter, keys: list[tuple[Any, str, str]]
    ) -> None:
        """Each created key authenticates to its own key id, role and tenant; the secret
        appears in no info, principal or listing."""
        vpa_examples.tick()
        created = []
        for role, tenant, name in keys:
            info, secret = authenticator.create_key(role, tenant, name)
            if not isinstance(secret, str) or len(secret) < 16:
                fail("create_key must return a secret string of at least 16 characters")
            if (info.role, info.tenant, info.name) != (Role(role), tenant, name):
                fail(f"create_key returned {info!r} for role {role}, tenant {tenant!r}")
            created.append((info, secret, Role(role), tenant))
        listing = repr(authenticator.list_keys())
        for info, secret, role, tenant in created:
            principal = authenticator.authenticate(secret)
            self._check_principal(principal, info, role, tenant)
            for shown in (repr(info), repr(principal), listing):
                if secret in shown or secret[-16:] in shown:
                    fail("the secret of a key appears in its info, principal or the key listing")
        listed = {i.key_id for i in authenticator.list_keys()}
        if not {info.key_id for info, *_ in created} <= listed:
            fail("list_keys does not list every created key")

    @clause_settings(COMPONENT_EXAMPLES["auth"])
    @given(
        garbage=st.one_of(
            st.none(),
            st.just(""),
            st.text(max_size=60),
            st.from_regex(r"vpa_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", fullmatch=True),
        ),
        cut=st.integers(1, 10),
        flip=st.integers(0, 1000),
    )
    def test_unknown_keys_rejected(
        self, authenticator: Authenticator, vpa_examples: _Counter, garbage: str | None, cut: int, flip: int
    ) -> None:
        """Missing, malformed, unknown, truncated, extended or altered keys raise
        AuthenticationError."""
        vpa_examples.tick()
        _, secret = authenticator.create_key(Role.READER, "t")
        position = flip % len(secret)
        altered = secret[:position] + ("A" if secret[position] != "A" else "B") + secret[position + 1 :]
        for bad in (
            garbage,
            secret[:-cut],
            secret + "x",
            altered,
            secret.upper() if secret.upper() != secret else None,
        ):
            if bad == secret:
                continue
            try:
                authenticator.authenticate(bad)
            except AuthenticationError:
                continue
            except Exception as exc:
                fail(f"authenticate({bad!r}) raised {type(exc).__name__}; expected AuthenticationError")
            fail(f"authenticate accepted a key that was never issued: {bad!r}")

    def test_revoke(self, authenticator: Authenticator, vpa_examples: _Counter) -> None:
        """A revoked key is rejected; revoke is True once, then False; other keys still work."""
        vpa_examples.tick()
        info, secret = authenticator.create_key(Role.WRITER, "acme", "to revoke")
        other_info, other = authenticator.create_key(Role.WRITER, "acme", "kept")
        if authenticator.revoke(info.key_id) is not True:
            fail("revoke of an active key must return True")
        try:
            authenticator.authenticate(secret)
        except AuthenticationError:
            pass
        else:
            fail("a revoked key still authenticates")
        if authenticator.revoke(info.key_id) is not False:
            fail("revoking an already revoked key must return False")
        if authenticator.revoke("no-such-key") is not False:
            fail("revoking an unknown key id must return False")
        self._check_principal(authenticator.authenticate(other), other_info, Role.WRITER, "acme")
        states = {i.key_id: i.revoked for i in authenticator.list_keys()}
        if states.get(info.key_id) is not True or states.get(other_info.key_id) is not False:
            fail("list_keys does not show which keys are revoked")

    def test_roles(self, authenticator: Authenticator, vpa_examples: _Counter) -> None:
        """reader may read; writer read and write; admin everything; else PermissionDenied."""
        vpa_examples.tick()
        for role in Role:
            _, secret = authenticator.create_key(role, "acme")
            principal = authenticator.authenticate(secret)
            for action in Action:
                allowed = action in ALLOWED[role]
                for spelled in (action, action.value):
                    try:
                        authenticator.authorize(principal, spelled)
                    except PermissionDenied:
                        if allowed:
                            fail(f"role {role} was refused {action}")
                    else:
                        if not allowed:
                            fail(f"role {role} was allowed {action}")

    def test_tenants(self, authenticator: Authenticator, vpa_examples: _Counter) -> None:
        """Keys of different tenants authenticate to their own tenant, never another's."""
        vpa_examples.tick()
        tenants = ["acme", "globex", "initech"]
        secrets = {t: authenticator.create_key(Role.ADMIN, t)[1] for t in tenants}
        for tenant, secret in secrets.items():
            if authenticator.authenticate(secret).tenant != tenant:
                fail(f"a key of tenant {tenant!r} authenticates to another tenant")

    def test_invalid_requests(self, authenticator: Authenticator, vpa_examples: _Counter) -> None:
        """An unknown role or an empty tenant raises ValidationError."""
        vpa_examples.tick()
        for role, tenant in (("superuser", "acme"), ("reader", "")):
            try:
                authenticator.create_key(role, tenant)
            except ValidationError:
                continue
            fail(f"create_key({role!r}, {tenant!r}) did not raise ValidationError")

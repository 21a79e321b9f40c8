"""The cache contract: get/set, invalidation, TTL (with `FakeClock`), eviction, stats, against a model."""

from __future__ import annotations

import string
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vpa.caches.base import Cache, CacheStats

from vpa_conformance.checks import fail
from vpa_conformance.components.common import (
    COMPONENT_EXAMPLES,
    _Counter,
    _CountsExamples,
    _not_declared,
)
from vpa_conformance.profiles import clause_settings


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

"""Embedders, chunker, cache, authenticator, logging: the built-in components."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpa.auth.api_keys import ApiKeyAuthenticator
from vpa.auth.base import Action, Role
from vpa.caches.lru import LRUCache
from vpa.chunkers.recursive import RecursiveChunker
from vpa.embedders.hashing import _EMPTY_TOKEN, HashingEmbedder
from vpa.errors import AuthenticationError, PermissionDenied, ValidationError
from vpa.log import configure_logging, get_logger

# --- embedders -----------------------------------------------------------------------------------


def test_hashing_embedder_is_deterministic_across_processes():
    texts = ["Photosynthesis turns light into sugar.", "", "ünïcödé ✓"]
    here = HashingEmbedder().embed(texts)
    code = "import json; from vpa.embedders.hashing import HashingEmbedder; " \
           f"print(json.dumps(HashingEmbedder().embed({texts!r}).tolist()))"
    there = np.array(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout))
    assert np.allclose(here, there)
    assert np.allclose(np.linalg.norm(here, axis=1), 1.0)


def test_hashing_embedder_batch_equals_one_by_one_and_similar_texts_are_close():
    embedder = HashingEmbedder(64)
    texts = ["the cat sat on the mat", "the cat sat on a mat", "interest rates rose"]
    batch = embedder.embed(texts)
    assert np.allclose(batch, np.stack([embedder.embed([t])[0] for t in texts]))
    assert batch[0] @ batch[1] > batch[0] @ batch[2]


def _hashing_by_definition(embedder: HashingEmbedder, text: str) -> np.ndarray:
    """The hashing embedder as its docstring defines it: each word and word pair adds
    sign * (1 + log count) to its bucket; the sum is normalised."""
    vector = np.zeros(embedder.dimension)
    for feature, count in embedder._features(text).items():
        index, sign = embedder._bucket(feature)
        vector[index] += sign * (1.0 + np.log(count))
    norm = np.linalg.norm(vector)
    if norm == 0:
        index, sign = embedder._bucket(_EMPTY_TOKEN)
        vector[index] = sign
        return vector
    return vector / norm


@given(st.lists(st.text(max_size=200), min_size=1, max_size=4))
def test_hashing_embedder_computes_its_definition(texts):
    # embed() takes shortcuts (memoised buckets, one bincount a text); the vectors must be the
    # definition's, and the same again once the feature cache is warm.
    embedder = HashingEmbedder(32)
    first = embedder.embed(texts)
    expected = np.stack([_hashing_by_definition(embedder, t) for t in texts])
    assert np.allclose(first, expected, atol=1e-6)
    assert np.array_equal(embedder.embed(texts), first)


@pytest.fixture(scope="module")
def minilm():
    from vpa.embedders.sentence_transformers import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


async def test_aembed_runs_short_queries_on_the_loop_and_batches_in_a_worker_thread():
    import threading

    class Spy(HashingEmbedder):
        threads: list[int] = []

        def embed(self, texts):
            self.threads.append(threading.get_ident())
            return super().embed(texts)

    spy = Spy(64)
    loop_thread = threading.get_ident()
    short = await spy.aembed(["a short query"])
    long = await spy.aembed(["word " * 100])
    assert spy.threads[0] == loop_thread  # 13 characters: cheaper than a hop to a thread
    assert spy.threads[1] != loop_thread  # 500 characters: off the event loop
    assert np.array_equal(short, spy.embed(["a short query"]))
    assert long.shape == (1, 64)


def test_sentence_transformers_loads_offline_and_ranks_meaning(minilm):
    vectors = minilm.embed(["A kitten is sleeping on the sofa.", "A young cat naps on the couch.", "Bond yields climbed."])
    assert vectors.shape == (3, 384) and minilm.dimension == 384
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert minilm.fingerprint.model == "all-MiniLM-L6-v2"


# --- chunker -------------------------------------------------------------------------------------

texts = st.text(alphabet=st.sampled_from("ab .\n!é"), max_size=400)


@given(texts, st.integers(5, 80), st.data())
def test_chunks_cover_the_text_with_exact_offsets(text, size, data):
    overlap = data.draw(st.integers(0, size - 1))
    chunks = RecursiveChunker(size, overlap).split(text)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    position = 0
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end]
        assert 0 < len(chunk.text) <= size
        assert chunk.start <= position  # no gap
        assert position - chunk.start <= overlap  # overlap bounded
        assert chunk.end > position  # progress
        position = chunk.end
    assert position == len(text)


def test_chunker_prefers_paragraph_and_sentence_boundaries():
    text = "First sentence here. Second one.\n\nNew paragraph starts. And ends."
    chunks = RecursiveChunker(40, 0).split(text)
    assert chunks[0].text.endswith("\n\n")
    assert all(c.text.rstrip().endswith((".", "here.")) for c in chunks)


def test_chunker_rejects_bad_settings():
    with pytest.raises(ValueError):
        RecursiveChunker(10, 10)


# --- cache ---------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cache_ttl_eviction_invalidation_and_stats():
    clock = Clock()
    cache = LRUCache(maxsize=2, ttl=10, timer=clock)
    cache.set("n", "a", 1)
    cache.set("n", "b", 2)
    assert cache.get("n", "a") == 1  # a is now most recently used
    cache.set("n", "c", 3)  # evicts b
    assert cache.get("n", "b") is None
    clock.now = 11
    assert cache.get("n", "a") is None  # expired
    cache.set("n", "d", 4)
    cache.set("other", "d", 5)
    cache.invalidate("n")
    assert cache.get("n", "d") is None and cache.get("other", "d") == 5
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (2, 3)


# --- auth ----------------------------------------------------------------------------------------


def test_keys_are_hashed_roles_and_revocation_enforced(tmp_path):
    path = tmp_path / "keys.json"
    auth = ApiKeyAuthenticator(path)
    info, key = auth.create_key("reader", "acme", "ci")
    assert key not in path.read_text() and key.split("_")[2] not in path.read_text()
    principal = ApiKeyAuthenticator(path).authenticate(key)  # a new process sees the key
    assert (principal.role, principal.tenant) == (Role.READER, "acme")
    auth.authorize(principal, Action.READ)
    with pytest.raises(PermissionDenied):
        auth.authorize(principal, Action.WRITE)
    for bad in (None, "", "nonsense", key[:-1] + ("A" if key[-1] != "A" else "B"), f"vpa_ffffffffffff_{key.split('_', 2)[2]}"):
        with pytest.raises(AuthenticationError):
            auth.authenticate(bad)
    assert auth.revoke(info.key_id) and not auth.revoke(info.key_id)
    with pytest.raises(AuthenticationError, match="revoked"):
        ApiKeyAuthenticator(path).authenticate(key)
    with pytest.raises(ValidationError):
        auth.create_key("superuser", "acme")


# --- logging -------------------------------------------------------------------------------------


def test_logs_never_print_keys_or_document_text():
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    get_logger("t").info("event", api_key="sk-secret-123", content="private document text", query="my query", n=3)
    line = json.loads(stream.getvalue())
    assert "sk-secret-123" not in stream.getvalue() and "private document" not in stream.getvalue()
    assert line["n"] == 3 and line["api_key"] == "[redacted]"

"""Benchmark data: a deterministic synthetic corpus, query texts, cached vectors, BEIR SciFact.

The synthetic corpus is what the store-centric figures use, so they can be reproduced on any
machine without a data set: documents of SciFact-like length (about 1,500 characters, two
chunks at VPA's default chunking) made of pseudo-words drawn from a Zipf distribution, with the
portable metadata types (str, int, float, bool, list of str). Document ``i`` depends only on
``i`` and the seed, so a smaller corpus is a prefix of a larger one.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from vpa.embedders.hashing import HashingEmbedder
from vpa.models import Document, Record

GENERATOR_VERSION = "synthetic-v1"
SEED = 20240611
VOCABULARY_SIZE = 8000
CATEGORIES = ("biology", "chemistry", "physics", "medicine", "ecology", "genetics", "neuroscience", "climate")
TAGS = tuple(f"tag{i:02d}" for i in range(24))
_SYLLABLES = (
    "ka",
    "lo",
    "mi",
    "ne",
    "ru",
    "sa",
    "ti",
    "vo",
    "ze",
    "pa",
    "do",
    "gi",
    "be",
    "fu",
    "ha",
    "jo",
    "ly",
    "mo",
    "nu",
    "qi",
    "re",
    "so",
    "ta",
    "wi",
    "xe",
    "yu",
    "cor",
    "pen",
    "tal",
    "dis",
)


@functools.cache
def vocabulary() -> tuple[list[str], np.ndarray]:
    """Pseudo-words and their cumulative Zipf (s = 1.07) probabilities."""
    rng = np.random.default_rng(SEED)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < VOCABULARY_SIZE:
        n = int(rng.integers(1, 5))
        word = "".join(_SYLLABLES[int(i)] for i in rng.integers(0, len(_SYLLABLES), n))
        if word not in seen:
            seen.add(word)
            words.append(word)
    weights = 1.0 / np.arange(1, VOCABULARY_SIZE + 1) ** 1.07
    return words, np.cumsum(weights / weights.sum())


def _words(rng: np.random.Generator, n: int) -> list[str]:
    words, cdf = vocabulary()
    return [words[i] for i in np.searchsorted(cdf, rng.random(n)).tolist()]


def _sentence(rng: np.random.Generator) -> str:
    ws = _words(rng, int(rng.integers(6, 21)))
    return ws[0].capitalize() + " " + " ".join(ws[1:]) + "."


def synthetic_document(i: int) -> Document:
    rng = np.random.default_rng([SEED, i])
    title = " ".join(_words(rng, int(rng.integers(4, 9)))).capitalize()
    paragraphs = []
    for _ in range(int(rng.integers(3, 6))):
        paragraphs.append(" ".join(_sentence(rng) for _ in range(int(rng.integers(3, 6)))))
    metadata = {
        "category": CATEGORIES[int(rng.integers(0, len(CATEGORIES)))],
        "year": int(rng.integers(2000, 2025)),
        "score": round(float(rng.random()), 4),
        "reviewed": bool(rng.random() < 0.5),
        "tags": sorted({TAGS[int(t)] for t in rng.integers(0, len(TAGS), int(rng.integers(1, 4)))}),
    }
    return Document(id=f"doc-{i:06d}", title=title, content="\n\n".join(paragraphs), metadata=metadata)


def synthetic_corpus(n: int) -> list[Document]:
    return [synthetic_document(i) for i in range(n)]


def synthetic_chunk(i: int) -> tuple[str, str, dict[str, Any]]:
    """(id, text, metadata) of chunk ``i`` of the precomputed search collections, shaped like the
    records the RAG layer writes (reserved ``vpa_`` keys plus user metadata)."""
    rng = np.random.default_rng([SEED + 1, i])
    text = " ".join(_sentence(rng) for _ in range(int(rng.integers(8, 12))))[:1000]
    doc = i // 2
    metadata = {
        "category": CATEGORIES[int(rng.integers(0, len(CATEGORIES)))],
        "year": int(rng.integers(2000, 2025)),
        "tags": [TAGS[int(rng.integers(0, len(TAGS)))]],
        "vpa_document_id": f"sdoc-{doc:06d}",
        "vpa_chunk_index": i % 2,
        "vpa_chunk_count": 2,
        "vpa_start": 0 if i % 2 == 0 else 800,
        "vpa_end": len(text) if i % 2 == 0 else 800 + len(text),
        "vpa_title": f"Synthetic document {doc}",
        "vpa_content_hash": hashlib.sha256(f"{SEED}:{doc}".encode()).hexdigest(),
    }
    return f"sdoc-{doc:06d}#{i % 2}", text, metadata


def synthetic_queries(n: int, salt: int = 0) -> list[str]:
    """``n`` distinct query texts of 3 to 9 pseudo-words (distinct, so none hits a cache)."""
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while len(out) < n:
        rng = np.random.default_rng([SEED + 2, salt, i])
        q = " ".join(_words(rng, int(rng.integers(3, 10))))
        i += 1
        if q not in seen:
            seen.add(q)
            out.append(q)
    return out


def cache_dir(state: Path) -> Path:
    """``<state>/bench-cache`` (the state folder is ``.vpa`` at the repository root by default)."""
    path = state / "bench-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def synthetic_vectors(state: Path, n: int, dimension: int = 384) -> np.ndarray:
    """Hashing vectors of the first ``n`` synthetic chunks (embedded as the RAG layer would:
    ``title + "\\n" + text``), cached under ``.vpa/bench-cache``; a larger cached set serves a
    smaller request (the chunks are a prefix)."""
    directory = cache_dir(state)
    model = HashingEmbedder(dimension).model
    pattern = f"{GENERATOR_VERSION}-{model}-{dimension}d-"
    best: Path | None = None
    for path in directory.glob(pattern + "*.npy"):
        size = int(path.stem.rsplit("-", 1)[1])
        if size >= n and (best is None or size < int(best.stem.rsplit("-", 1)[1])):
            best = path
    if best is not None:
        return np.load(best, mmap_mode="r")[:n]
    embedder = HashingEmbedder(dimension)
    texts = []
    for i in range(n):
        _, text, meta = synthetic_chunk(i)
        texts.append(f"{meta['vpa_title']}\n{text}")
    vectors = embedder.embed(texts)
    target = directory / f"{pattern}{n}.npy"
    tmp = target.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    os.replace(tmp, target)
    return vectors


def synthetic_records(vectors: np.ndarray, start: int, stop: int) -> list[Record]:
    out = []
    for i in range(start, stop):
        rid, text, meta = synthetic_chunk(i)
        out.append(Record(rid, vectors[i], text, meta))
    return out


# --- BEIR SciFact ------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_scifact(directory: Path) -> dict[str, Any]:
    corpus = []
    with (directory / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            corpus.append((str(d["_id"]), d.get("title", ""), d["text"]))
    queries = {}
    with (directory / "queries.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)
            queries[str(q["_id"])] = q["text"]
    qrels: dict[str, dict[str, int]] = collections.defaultdict(dict)
    with (directory / "qrels.tsv").open(encoding="utf-8", newline="") as fh:
        next(fh)
        for line in fh:
            parts = line.strip().split("\t")
            if len(parts) == 3:
                qrels[parts[0]][parts[1]] = int(parts[2])
    checksum = hashlib.sha256(
        "".join(file_sha256(directory / f) for f in ("corpus.jsonl", "queries.jsonl", "qrels.tsv")).encode()
    ).hexdigest()
    return {"corpus": corpus, "queries": queries, "qrels": dict(qrels), "checksum": checksum}


def ndcg_at(ranked: Sequence[str], relevant: dict[str, int], k: int) -> float:
    """nDCG@k with graded gains ``rel`` and discount ``log2(rank + 1)`` (trec_eval's ndcg_cut)."""
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: Sequence[str], relevant: dict[str, int], k: int) -> float:
    wanted = {d for d, g in relevant.items() if g > 0}
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0

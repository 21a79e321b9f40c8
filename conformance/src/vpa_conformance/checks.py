"""Assertions that compare a store's answers with the `Oracle`, with readable failure messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from vpa.filters import FilterLike
from vpa.models import Hit, Record, StoreCapabilities

from vpa_conformance.oracle import Oracle, same_metadata

#: |store score - reference cosine| allowed
SCORE_TOLERANCE = 1e-4
#: reference scores closer than this are ties: either record may take the last place of a top-k
TIE_TOLERANCE = 1e-5
#: max |got - written| per component, relative to the vector's norm
VECTOR_TOLERANCE = 1e-5


class ContractViolation(AssertionError):
    """A store broke a clause of the contract."""


def fail(message: str) -> None:
    raise ContractViolation(message)


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_record(got: Record, want: Record) -> None:
    """Same id, text and metadata (types included), and the vector within float32 tolerance."""
    if got.id != want.id:
        fail(f"get returned id {_short(got.id)} where {_short(want.id)} was expected")
    if not isinstance(got.text, str) or got.text != want.text:
        fail(f"record {_short(want.id)}: text {_short(got.text)} was written as {_short(want.text)}")
    if not same_metadata(got.metadata, want.metadata):
        fail(
            f"record {_short(want.id)}: metadata {_short(got.metadata, 400)} was written as "
            f"{_short(want.metadata, 400)} (values must keep their type: int, float, bool, str, list of str)"
        )
    got_vector = np.asarray(got.vector, dtype=np.float64).reshape(-1)
    want_vector = np.asarray(want.vector, dtype=np.float64).reshape(-1)
    if got_vector.shape != want_vector.shape:
        fail(
            f"record {_short(want.id)}: vector has {got_vector.shape[0]} components, not "
            f"{want_vector.shape[0]}"
        )
    error = float(np.max(np.abs(got_vector - want_vector))) if want_vector.size else 0.0
    if not np.isfinite(got_vector).all() or error > VECTOR_TOLERANCE * float(np.linalg.norm(want_vector)):
        fail(
            f"record {_short(want.id)}: vector differs from the one written by {error:.3g} "
            f"(allowed {VECTOR_TOLERANCE:g} x its norm {np.linalg.norm(want_vector):.3g}); a store that "
            "normalises vectors must keep what it needs to return them as written"
        )


def check_get(got: Sequence[Record], oracle: Oracle, ids: Sequence[str]) -> None:
    """``get(ids)``: the existing records, in the order asked, each once."""
    want = oracle.get(ids)
    got_ids = [r.id for r in got]
    want_ids = [r.id for r in want]
    if got_ids != want_ids:
        fail(f"get({_short(list(ids))}) returned ids {_short(got_ids)}; expected {_short(want_ids)}")
    for g, w in zip(got, want, strict=True):
        check_record(g, w)


def check_state(
    store_count: int, store_records: Sequence[Record], oracle: Oracle, asked: Sequence[str]
) -> None:
    if store_count != len(oracle.records):
        fail(f"count() is {store_count}; the collection should hold {len(oracle.records)} records")
    check_get(store_records, oracle, asked)


def check_hits(
    hits: Sequence[Hit],
    oracle: Oracle,
    vector: Sequence[float],
    top_k: int,
    filter: FilterLike,
    capabilities: StoreCapabilities,
) -> None:
    """Hits are matching records, best first, scored by cosine; an exact store returns exactly
    the reference top-k (ties within `TIE_TOLERANCE` may take either place)."""
    scores = oracle.scores(vector, filter)
    label = f"query(top_k={top_k}, filter={_short(filter, 300)})"
    if not isinstance(hits, list) or not all(isinstance(h, Hit) for h in hits):
        fail(f"{label} must return a list of Hit, got {_short(hits)}")
    if len(hits) > top_k:
        fail(f"{label} returned {len(hits)} hits, more than top_k")
    seen: set[str] = set()
    for position, hit in enumerate(hits):
        if hit.id in seen:
            fail(f"{label} returned id {_short(hit.id)} twice")
        seen.add(hit.id)
        if hit.id not in scores:
            kind = "does not match the filter" if hit.id in oracle.records else "does not exist"
            fail(f"{label} returned {_short(hit.id)}, which {kind}")
        reference = scores[hit.id]
        if not isinstance(hit.score, float):
            kind = type(hit.score).__name__
            fail(f"{label}: hit {_short(hit.id)} has a score of type {kind}; use a Python float")
        if not abs(hit.score - reference) <= SCORE_TOLERANCE:
            fail(
                f"{label}: hit {_short(hit.id)} has score {hit.score!r}; its cosine similarity is "
                f"{reference:.6f} (scores are cosine similarity, higher is closer)"
            )
        record = oracle.records[hit.id]
        if hit.text != record.text or not same_metadata(hit.metadata, record.metadata):
            fail(f"{label}: hit {_short(hit.id)} carries text or metadata other than what was written")
        if position and hit.score > hits[position - 1].score + TIE_TOLERANCE:
            fail(f"{label}: hits are not ordered best first ({hits[position - 1].score} then {hit.score})")
    expected = min(top_k, len(scores))
    if capabilities.exact:
        if len(hits) != expected:
            fail(f"{label} returned {len(hits)} hits; {expected} records match")
        if expected:
            ranking = sorted(scores.values(), reverse=True)
            kth = ranking[expected - 1]
            for hit in hits:
                if scores[hit.id] < kth - TIE_TOLERANCE:
                    fail(
                        f"{label}: {_short(hit.id)} (cosine {scores[hit.id]:.6f}) is not in the reference "
                        f"top {expected} (k-th best is {kth:.6f}); an exact store returns exactly the top-k"
                    )
            for record_id, score in scores.items():
                if score > kth + TIE_TOLERANCE and record_id not in seen:
                    fail(
                        f"{label}: missed {_short(record_id)} (cosine {score:.6f}), which is in the "
                        f"top {expected}"
                    )


def recall(
    hits: Sequence[Hit], oracle: Oracle, vector: Sequence[float], top_k: int, filter: FilterLike = None
) -> float:
    """Fraction of the reference top-k found (ties at the boundary count as found)."""
    reference = oracle.top_k(vector, top_k, filter)
    if not reference:
        return 1.0
    kth = reference[-1][1]
    scores = oracle.scores(vector, filter)
    found = sum(1 for h in hits if h.id in scores and scores[h.id] >= kth - TIE_TOLERANCE)
    return min(1.0, found / len(reference))

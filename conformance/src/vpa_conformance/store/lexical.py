"""Lexical and hybrid search (optional, declared by ``lexical_search``), against the oracle's BM25.

`vpa.lexical` defines VPA's BM25 once: the tokens (`vpa.lexical.tokenize`), Lucene's formula,
statistics over *every* record of the collection (a filter selects candidates, it does not narrow
N, the document frequencies or the average length), only records holding a query token. The
oracle (`Oracle.lexical`) computes it again from that definition, sharing only the tokenizer with
the core, so a store is held to the definition and not to the core's index.

- A store with ``lexical_exact`` must rank as the oracle does: the same scores (within a relative
  `SCORE_REL_TOL`) in the same order, the same records except among tied scores. Another (an
  engine with its own analyser) must return matching records best first, and reach
  ``lexical_min_recall`` of the oracle's top-k (`test_lexical_recall`, and pooled over each
  drawn example of `test_lexical_query`).
- ``hybrid_query`` is held to the properties of fusion (`vpa.lexical.fuse`): every hit matches the
  filter; a record first in both the store's dense and lexical rankings is first; a record that
  beats another in both rankings is not fused below it; ``alpha=1`` (linear) orders as dense
  search, ``alpha=0`` as lexical search. Where VPA fuses (not ``native_fusion``) and both halves
  are exact, the fused scores themselves are checked: ``sum 1 / (60 + rank)`` for RRF and the
  min-max-normalised weighted sum for linear fusion.
- Bad lexical input is refused with a typed error before any I/O.

A store that does not declare ``lexical_search`` has each clause reported *not declared*, after
checking that it refuses `lexical_query` and `hybrid_query` with `UnsupportedOperation` — never a
silent dense-only answer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from vpa.errors import (
    CollectionNotFound,
    DimensionMismatch,
    InvalidFilter,
    InvalidVector,
    UnsupportedOperation,
    ValidationError,
)
from vpa.filters import FilterLike
from vpa.lexical import MAX_QUERY_CHARS, MAX_QUERY_TERMS, tokenize
from vpa.models import FilterOp, Hit, MetadataType, Record, StoreCapabilities

from vpa_conformance import strategies as vst
from vpa_conformance.checks import SCORE_TOLERANCE, fail
from vpa_conformance.harness import StoreHarness, collection_name
from vpa_conformance.oracle import Oracle, same_metadata
from vpa_conformance.profiles import clause_settings
from vpa_conformance.store.common import (
    _backend_untouched,
    _check_unchanged,
    _fields,
    _fill,
    _has_filters,
    _raises,
    _raises_limit,
)

__all__ = [
    "LEXICAL_EXAMPLES",
    "RRF_K",
    "SCORE_REL_TOL",
    "LexicalClauses",
    "check_hybrid_hits",
    "check_lexical_hits",
    "hybrid",
    "lexical",
]

#: Examples per clause in the ``ci`` profile.
LEXICAL_EXAMPLES = {"lexical_query": 20, "lexical_filters": 20, "hybrid_query": 15}
#: BM25 scores agree when within this, relative (float64 sums in another order differ by ~1e-15).
SCORE_REL_TOL = 1e-6
#: Reciprocal rank fusion's constant as `vpa.lexical` defines it (written again, not imported).
RRF_K = 60
#: The most records a drawn example writes: few enough that every matching record is among the
#: candidates of both halves of a hybrid query (`vpa.lexical` fetches at least 40 each), so the
#: fused scores can be computed from the oracle's two complete rankings.
MAX_RECORDS = 30
#: Dense scores closer than this may be in either order in the store's dense ranking (each is
#: within `SCORE_TOLERANCE` of the oracle's cosine).
DENSE_TIE = 2 * SCORE_TOLERANCE
#: Fused scores closer than this are ties.
FUSED_TIE = 1e-9

#: The backend methods a lexical query refused "before any I/O" must not reach.
# --- calling the store ---------------------------------------------------------------------------


def lexical(h: StoreHarness, name: str, text: Any, top_k: Any = 10, filter: FilterLike = None) -> list[Hit]:
    return h.run(h.store.lexical_query(name, text, top_k=top_k, filter=filter))


def hybrid(
    h: StoreHarness,
    name: str,
    vector: Any,
    text: Any,
    top_k: Any = 10,
    filter: FilterLike = None,
    fusion: Any = "rrf",
    alpha: Any = 0.5,
) -> list[Hit]:
    return h.run(
        h.store.hybrid_query(name, vector, text, top_k=top_k, filter=filter, fusion=fusion, alpha=alpha)
    )


def _close(got: float, want: float) -> bool:
    return abs(got - want) <= SCORE_REL_TOL * max(abs(got), abs(want)) + 1e-12


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- checking lexical hits -----------------------------------------------------------------------


def _check_hit_list(hits: Any, oracle: Oracle, filter: FilterLike, top_k: int, label: str) -> None:
    """A list of Hits, at most top_k, each once, each an existing record that matches the filter,
    with a finite float score and the text and metadata written, best first."""
    if not isinstance(hits, list) or not all(isinstance(hit, Hit) for hit in hits):
        fail(f"{label} must return a list of Hit, got {_short(hits)}")
    if len(hits) > top_k:
        fail(f"{label} returned {len(hits)} hits, more than top_k")
    matching = {r.id for r in oracle.matching(filter)}
    seen: set[str] = set()
    for position, hit in enumerate(hits):
        if hit.id in seen:
            fail(f"{label} returned id {_short(hit.id)} twice")
        seen.add(hit.id)
        if hit.id not in matching:
            kind = "does not match the filter" if hit.id in oracle.records else "does not exist"
            fail(
                f"{label} returned {_short(hit.id)}, which {kind} (the filter is applied natively, to "
                "every hit)"
            )
        if not isinstance(hit.score, float) or not math.isfinite(hit.score):
            fail(f"{label}: hit {_short(hit.id)} has score {hit.score!r}; use a finite Python float")
        record = oracle.records[hit.id]
        if hit.text != record.text or not same_metadata(hit.metadata, record.metadata):
            fail(f"{label}: hit {_short(hit.id)} carries text or metadata other than what was written")
        if position and hit.score > hits[position - 1].score + SCORE_REL_TOL * abs(hit.score) + FUSED_TIE:
            fail(f"{label}: hits are not ordered best first ({hits[position - 1].score} then {hit.score})")


def check_lexical_hits(
    hits: Any, oracle: Oracle, text: str, top_k: int, filter: FilterLike, caps: StoreCapabilities
) -> tuple[int, int]:
    """``lexical_query(text, top_k, filter)`` against the oracle's BM25. An exact store: exactly
    the oracle's top-k scores in order (so its records, up to ties). Any store: matching records,
    best first. Returns (found, wanted) of the oracle's top-k, ties at the k-th place counting as
    found — the store's recall."""
    label = f"lexical_query({_short(text, 80)}, top_k={top_k}, filter={_short(filter, 200)})"
    _check_hit_list(hits, oracle, filter, top_k, label)
    scores = oracle.lexical_scores(text, filter)
    ranking = sorted(scores.values(), reverse=True)
    expected = min(top_k, len(ranking))
    filtered = (
        " (the statistics — N, document frequencies, average length — are over every record of the "
        "collection: a filter chooses which records may be returned, not the statistics)"
        if filter
        else ""
    )
    if caps.lexical_exact:
        for hit in hits:
            if hit.id not in scores:
                fail(f"{label} returned {_short(hit.id)}, whose text holds none of the query's tokens")
            if not hit.score > 0:
                fail(f"{label}: hit {_short(hit.id)} has score {hit.score!r}; BM25 scores are positive")
            if not _close(hit.score, scores[hit.id]):
                fail(
                    f"{label}: hit {_short(hit.id)} has BM25 {hit.score!r}; by VPA's BM25 it is "
                    f"{scores[hit.id]!r}{filtered}"
                )
        if len(hits) != expected:
            fail(
                f"{label} returned {len(hits)} hits; {len(ranking)} matching records hold a query token, "
                f"so {expected} were expected{filtered}"
            )
        for position, (hit, want) in enumerate(zip(hits, ranking, strict=False)):
            if not _close(hit.score, want):
                fail(
                    f"{label}: hit {position + 1} is {_short(hit.id)} with BM25 {hit.score:.9g}; the "
                    f"reference's hit {position + 1} scores {want:.9g} (an exact store returns exactly the "
                    "top-k)"
                )
    if not expected:
        return 0, 0
    kth = ranking[expected - 1]
    found = sum(1 for hit in hits if hit.id in scores and scores[hit.id] >= kth * (1 - SCORE_REL_TOL))
    return min(found, expected), expected


# --- checking hybrid hits ------------------------------------------------------------------------


def _rank_bounds(scores: dict[str, float], tie: Callable[[float], float]) -> dict[str, tuple[int, int]]:
    """Each id's possible ranks (from 1) in a ranking by ``scores``, where scores within
    ``tie(score)`` of each other may be in either order."""
    values = np.array(sorted(scores.values(), reverse=True))
    out = {}
    for key, score in scores.items():
        better = int(np.sum(values > score + tie(score)))
        not_worse = int(np.sum(values >= score - tie(score)))
        out[key] = (better + 1, max(better + 1, not_worse))
    return out


def _norm_bounds(scores: dict[str, float], error: float, floor: float) -> dict[str, tuple[float, float]]:
    """Each id's min-max normalised score as an interval, the scores being known within ``error``;
    [0, 1] when the range is below ``floor`` (the normalisation is then not determined by them)."""
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    spread = high - low
    if spread < floor:
        return {key: (0.0, 1.0) for key in scores}
    slack = 3 * error / spread
    return {
        key: (max(0.0, (s - low) / spread - slack), min(1.0, (s - low) / spread + slack))
        for key, s in scores.items()
    }


def _fused_bounds(
    dense: dict[str, float], lexical_scores: dict[str, float], fusion: str, alpha: float
) -> dict[str, tuple[float, float]]:
    """The fused score of every candidate as an interval, from the two complete rankings."""
    if fusion == "rrf":
        d_ranks = _rank_bounds(dense, lambda s: DENSE_TIE)
        l_ranks = _rank_bounds(lexical_scores, lambda s: SCORE_REL_TOL * abs(s) + 1e-12)
        out = {}
        for key, (lo, hi) in d_ranks.items():
            low, high = 1 / (RRF_K + hi), 1 / (RRF_K + lo)
            if key in l_ranks:
                llo, lhi = l_ranks[key]
                low, high = low + 1 / (RRF_K + lhi), high + 1 / (RRF_K + llo)
            out[key] = (low, high)
        return out
    big = max(lexical_scores.values(), default=0.0)
    d_norm = _norm_bounds(dense, SCORE_TOLERANCE, 1e-2)
    l_norm = _norm_bounds(lexical_scores, SCORE_REL_TOL * big, 1e-6 * max(big, 1e-12))
    out = {}
    for key, (lo, hi) in d_norm.items():
        llo, lhi = l_norm.get(key, (0.0, 0.0))
        out[key] = (alpha * lo + (1 - alpha) * llo, alpha * hi + (1 - alpha) * lhi)
    return out


def check_hybrid_hits(
    hits: Any,
    oracle: Oracle,
    vector: Sequence[float],
    text: str,
    top_k: int,
    filter: FilterLike,
    fusion: str,
    alpha: float,
    caps: StoreCapabilities,
    own: tuple[list[Hit], list[Hit]] | None = None,
) -> None:
    """``hybrid_query`` against the properties of fusion (see the module docstring). ``own`` is the
    store's own dense and lexical rankings for the same vector, text and filter (each of every
    matching record it returns): the reference for a store whose halves are not exact."""
    label = (
        f"hybrid_query(text={_short(text, 80)}, top_k={top_k}, filter={_short(filter, 200)}, "
        f"fusion={fusion!r}, alpha={alpha!r})"
    )
    _check_hit_list(hits, oracle, filter, top_k, label)
    exact = caps.exact and caps.lexical_exact
    if exact or own is None:
        dense = oracle.scores(vector, filter)
        lex = oracle.lexical_scores(text, filter)
    else:
        dense = {hit.id: hit.score for hit in own[0]}
        lex = {hit.id: hit.score for hit in own[1]}
    fused = {hit.id: hit.score for hit in hits}

    # A record first in both the store's rankings, strictly, is first fused.
    if own is not None and own[0] and own[1] and hits:
        d0, l0 = own[0], own[1]
        strict_dense = len(d0) == 1 or d0[0].score > d0[1].score + DENSE_TIE
        strict_lex = len(l0) == 1 or l0[0].score > l0[1].score * (1 + SCORE_REL_TOL) + 1e-12
        if d0[0].id == l0[0].id and strict_dense and strict_lex and hits[0].id != d0[0].id:
            fail(
                f"{label}: {_short(d0[0].id)} is first in both the dense and the lexical ranking, but the "
                f"fused ranking starts with {_short(hits[0].id)} (a record first in both is first fused)"
            )

    # alpha 1 (linear) orders as dense search, alpha 0 as lexical search (a tie in fused score may
    # be in either order; the oracle's lexical ranking is complete, so a record it lacks scores 0).
    if fusion == "linear" and alpha in (0.0, 1.0):
        ref, what = (dense, "dense (cosine)") if alpha == 1.0 else (lex, "lexical (BM25)")
        complete = alpha == 0.0 and (exact or own is None)
        for before, after in itertools.pairwise(hits):
            if before.score <= after.score + FUSED_TIE:
                continue
            if not complete and (before.id not in ref or after.id not in ref):
                continue
            a, b = ref.get(before.id, 0.0), ref.get(after.id, 0.0)
            slack = DENSE_TIE if alpha == 1.0 else SCORE_REL_TOL * max(abs(a), abs(b)) + 1e-12
            if a < b - slack:
                fail(
                    f"{label}: {_short(before.id)} is fused above {_short(after.id)}, but its {what} score "
                    f"{a:.6g} is below {b:.6g}; alpha={alpha:g} must order as {what.split()[0]} search does"
                )

    # Monotone: a record that beats another in both rankings is not fused below it (nor left out
    # for it, where both halves are exact).
    def beats(x: str, y: str) -> bool:
        lx, ly = lex.get(x, 0.0), lex.get(y, 0.0)
        return (
            x in dense
            and y in dense
            and dense[x] > dense[y] + DENSE_TIE
            and lx > ly * (1 + SCORE_REL_TOL) + 1e-12
        )

    if fusion == "rrf" or 0.0 < alpha < 1.0:
        for x in fused:
            for y in fused:
                if beats(x, y) and fused[x] < fused[y] - FUSED_TIE:
                    fail(
                        f"{label}: {_short(x)} ranks above {_short(y)} in both the dense and the lexical "
                        f"ranking but is fused below it ({fused[x]:.6g} < {fused[y]:.6g}); fusion must be "
                        "monotone in each input"
                    )
        if exact:
            for x in dense:
                beaten = next((y for y in fused if x not in fused and beats(x, y)), None)
                if beaten is not None:
                    fail(
                        f"{label}: {_short(x)} ranks above the hit {_short(beaten)} in both the dense and "
                        "the lexical ranking but is not returned"
                    )

    # Where VPA fuses two exact halves, the fused scores are the formula's.
    depth = min(40, caps.max_top_k or 40)
    if exact and not caps.native_fusion and len(dense) <= depth:
        bounds = _fused_bounds(dense, lex, fusion, alpha)
        formula = (
            "sum 1 / (60 + rank) over both rankings"
            if fusion == "rrf"
            else ("alpha * dense + (1 - alpha) * lexical, each min-max normalised")
        )
        for hit in hits:
            lo, hi = bounds[hit.id]
            if not lo - FUSED_TIE <= hit.score <= hi + FUSED_TIE:
                want = f"{lo:.9g}" if hi - lo < 1e-12 else f"between {lo:.9g} and {hi:.9g}"
                fail(f"{label}: hit {_short(hit.id)} has fused score {hit.score!r}; {formula} gives {want}")
        expected = min(top_k, len(bounds))
        if len(hits) != expected:
            fail(
                f"{label} returned {len(hits)} hits; {len(bounds)} records match, so {expected} were expected"
            )
        lowest = min(fused.values(), default=math.inf)
        for key, (lo, _hi) in bounds.items():
            if key not in fused and lo > lowest + FUSED_TIE:
                fail(
                    f"{label}: {_short(key)} (fused score at least {lo:.9g} by {formula}) is missing, but "
                    f"a hit scores {lowest:.9g}"
                )


# --- records and the refusal of a store without lexical search -----------------------------------


def _lexical_records(
    dim: int, caps: StoreCapabilities, *, max_size: int = MAX_RECORDS, schema: Any = None, min_size: int = 1
) -> st.SearchStrategy[list[Record]]:
    return vst.record_lists(
        dim,
        caps,
        min_size=min_size,
        max_size=max_size,
        schema=schema if schema is not None else {},
        text=vst.lexical_texts(),
    )


def _queries(records: Sequence[Record]) -> st.SearchStrategy[str]:
    """Drawn queries, and the texts of records that hold a word (a query that is a document)."""
    own = [r.text for r in records if tokenize(r.text) and len(r.text) <= MAX_QUERY_CHARS]
    return st.one_of(vst.lexical_queries(), st.sampled_from(own)) if own else vst.lexical_queries()


def _refuses_lexical(h: StoreHarness) -> None:
    """A store that does not declare lexical search refuses both queries with
    `UnsupportedOperation` (never a dense-only answer), and nothing changes."""
    h.not_declared()
    with h.collection(2) as name:
        oracle = Oracle(2)
        _fill(h, name, oracle, [Record("r0", [1.0, 0.0], "lexical search", {})])
        _raises(
            UnsupportedOperation,
            lambda: lexical(h, name, "lexical"),
            "lexical_query on a store that does not declare lexical_search",
        )
        for fusion in ("rrf", "linear"):
            _raises(
                UnsupportedOperation,
                lambda fusion=fusion: hybrid(h, name, [1.0, 0.0], "lexical", fusion=fusion),
                f"hybrid_query(fusion={fusion!r}) on a store that does not declare lexical_search",
            )
        _check_unchanged(h, name, oracle)


def _own_rankings(
    h: StoreHarness, name: str, vector: Sequence[float], text: str, filter: FilterLike, n: int
) -> tuple[list[Hit], list[Hit]]:
    k = h.clamp_top_k(max(n, 1))
    return h.query(name, vector, top_k=k, filter=filter), lexical(h, name, text, top_k=k, filter=filter)


class LexicalClauses:
    """Lexical and hybrid search. Mixed into `StoreContract`."""

    def test_lexical_declaration(self, vpa_store: StoreHarness) -> None:
        """A store declares lexical search coherently (lexical_min_recall in (0, 1]; native_fusion
        only with lexical_search); one that does not declare it refuses lexical_query and
        hybrid_query with UnsupportedOperation rather than answering."""
        h = vpa_store
        caps = h.capabilities
        h.examples += 1
        if not 0.0 < caps.lexical_min_recall <= 1.0:
            fail(f"lexical_min_recall must be in (0, 1], got {caps.lexical_min_recall}")
        if not caps.lexical_search:
            if caps.native_fusion:
                fail("native_fusion is declared without lexical_search: there is no lexical half to fuse")
            _refuses_lexical(h)

    @clause_settings(LEXICAL_EXAMPLES["lexical_query"])
    @given(data=st.data())
    def test_lexical_query(self, vpa_store: StoreHarness, data: st.DataObject) -> None:
        """lexical_query ranks by VPA's BM25 (statistics over the whole collection), best first,
        only records holding a query token; an exact store returns exactly the oracle's top-k
        scores (ties in either order), an approximate one its lexical_min_recall. The index follows
        every write: queried again after texts are rewritten, records deleted and new ones added."""
        h = vpa_store
        caps = h.capabilities
        if not caps.lexical_search:
            _refuses_lexical(h)
            return
        dim = data.draw(st.integers(2, 4), label="dimension")
        records = data.draw(_lexical_records(dim, caps), label="records")
        found = wanted = 0
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, records)
            for step in ("written", "rewritten"):
                for _ in range(data.draw(st.integers(1, 3), label=f"queries ({step})")):
                    text = data.draw(_queries(list(oracle.records.values()) or records), label="query")
                    top_k = h.clamp_top_k(data.draw(st.integers(1, len(records) + 3), label="top_k"))
                    got = check_lexical_hits(lexical(h, name, text, top_k), oracle, text, top_k, None, caps)
                    found, wanted = found + got[0], wanted + got[1]
                if step == "written":
                    ids = list(oracle.records)
                    doomed = data.draw(
                        st.lists(st.sampled_from(ids), max_size=len(ids) // 2, unique=True), label="delete"
                    )
                    if doomed:
                        removed, expected = h.delete(name, ids=doomed), oracle.delete(ids=doomed)
                        if removed != expected:
                            fail(f"delete(ids={_short(doomed)}) returned {removed}; expected {expected}")
                    kept = [i for i in ids if i not in doomed]
                    again = data.draw(
                        st.lists(st.sampled_from(kept), max_size=len(kept), unique=True)
                        if kept
                        else st.just([]),
                        label="rewrite",
                    )
                    fresh = data.draw(
                        _lexical_records(dim, caps, max_size=5, min_size=0), label="new records"
                    )
                    changed = [
                        Record(
                            i,
                            oracle.records[i].vector,
                            data.draw(vst.lexical_texts(), label="new text"),
                            oracle.records[i].metadata,
                        )
                        for i in again
                    ] + fresh
                    _fill(h, name, oracle, changed)
        if not caps.lexical_exact and wanted >= 10 and found / wanted + 1e-9 < caps.lexical_min_recall:
            fail(
                f"lexical recall over this example's queries is {found / wanted:.3f} of the reference top-k; "
                f"the store declares lexical_min_recall {caps.lexical_min_recall}"
            )

    @clause_settings(LEXICAL_EXAMPLES["lexical_filters"])
    @given(data=st.data())
    def test_lexical_filters(self, vpa_store: StoreHarness, data: st.DataObject) -> None:
        """A filtered lexical_query returns only matching records, filtered natively (the top-k of
        the matching records, not the matching part of an unfiltered top-k), scored with the
        statistics of the whole collection: a record scores the same with and without the filter,
        and as the oracle's BM25 over every record."""
        h = vpa_store
        caps = h.capabilities
        if not caps.lexical_search:
            _refuses_lexical(h)
            return
        if not _has_filters(caps):
            h.not_declared()
            return
        dim = data.draw(st.integers(2, 4), label="dimension")
        schema = data.draw(vst.metadata_schemas(caps), label="schema")
        records = data.draw(_lexical_records(dim, caps, schema=schema), label="records")
        pool = vst.field_values([r.metadata for r in records])
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, records)
            for _ in range(data.draw(st.integers(1, 3), label="queries")):
                text = data.draw(_queries(records), label="query")
                spec = data.draw(vst.filter_dicts(_fields(schema), pool, caps, max_leaves=4), label="filter")
                top_k = h.clamp_top_k(data.draw(st.integers(1, len(records) + 3), label="top_k"))
                hits = lexical(h, name, text, top_k, spec)
                check_lexical_hits(hits, oracle, text, top_k, spec, caps)
                whole = {hit.id: hit.score for hit in lexical(h, name, text, h.clamp_top_k(len(records)))}
                for hit in hits:
                    if hit.id in whole and not _close(hit.score, whole[hit.id]):
                        fail(
                            f"lexical_query({_short(text, 80)}, filter={_short(spec, 200)}): "
                            f"{_short(hit.id)} scores {hit.score!r} with the filter and {whole[hit.id]!r} "
                            "without it; the statistics are over every record of the collection, whatever "
                            "the filter"
                        )

    @clause_settings(LEXICAL_EXAMPLES["hybrid_query"])
    @given(data=st.data())
    def test_hybrid_query(self, vpa_store: StoreHarness, data: st.DataObject) -> None:
        """hybrid_query fuses dense and lexical search (RRF or linear): every hit matches the filter;
        a record first in both rankings is first; fusion is monotone in each ranking; linear with
        alpha 1 orders as dense search, alpha 0 as lexical search; where VPA fuses exact halves the
        scores are sum 1 / (60 + rank) (RRF) or the weighted min-max-normalised sum (linear)."""
        h = vpa_store
        caps = h.capabilities
        if not caps.lexical_search:
            _refuses_lexical(h)
            return
        dim = data.draw(st.integers(2, 6), label="dimension")
        filters = _has_filters(caps)
        schema = data.draw(vst.metadata_schemas(caps), label="schema") if filters else {}
        records = data.draw(_lexical_records(dim, caps, schema=schema), label="records")
        pool = vst.field_values([r.metadata for r in records])
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, records)
            for _ in range(data.draw(st.integers(1, 3), label="queries")):
                target = data.draw(st.sampled_from(records), label="target record")
                vector = data.draw(
                    st.one_of(st.just(list(map(float, target.vector))), vst.vectors(dim)), label="vector"
                )
                text = (
                    target.text
                    if tokenize(target.text) and data.draw(st.booleans(), label="target's text")
                    else None
                )
                text = text or data.draw(_queries(records), label="query")
                spec = (
                    data.draw(vst.filter_dicts(_fields(schema), pool, caps, max_leaves=3), label="filter")
                    if filters and data.draw(st.booleans(), label="filtered")
                    else None
                )
                fusion = data.draw(st.sampled_from(["rrf", "linear"]), label="fusion")
                alpha = (
                    data.draw(st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0, 1)), label="alpha")
                    if fusion == "linear"
                    else 0.5
                )
                top_k = h.clamp_top_k(data.draw(st.integers(1, len(records) + 3), label="top_k"))
                hits = hybrid(h, name, vector, text, top_k, spec, fusion, alpha)
                own = _own_rankings(h, name, vector, text, spec, len(records))
                check_hybrid_hits(hits, oracle, vector, text, top_k, spec, fusion, alpha, caps, own)

    def test_lexical_recall(self, vpa_store: StoreHarness) -> None:
        """On 300 texts of a 200-word vocabulary (word frequencies skewed as in prose), 20 lexical
        queries of top 10 (half filtered): an exact store returns the oracle's top-k, an
        approximate one reaches its declared lexical_min_recall on average."""
        h = vpa_store
        caps = h.capabilities
        if not caps.lexical_search:
            _refuses_lexical(h)
            return
        rng = np.random.default_rng(20260520)
        words = [f"w{i}" for i in range(200)]
        weights = 1.0 / np.arange(1, 201) ** 1.1
        weights /= weights.sum()
        use_int = MetadataType.INT in caps.metadata_types
        filtered = use_int and FilterOp.EQ in caps.filter_operators
        records = []
        for i in range(300):
            length = int(rng.integers(3, 40))
            text = " ".join(rng.choice(words, size=length, p=weights))
            vector = rng.standard_normal(4).astype(np.float32)
            records.append(Record(f"t{i:03d}", vector, text, {"bucket": i % 3} if use_int else {}))
        k = h.clamp_top_k(10)
        with h.collection(4) as name:
            oracle = Oracle(4)
            _fill(h, name, oracle, records)
            found = wanted = 0
            for q in range(20):
                text = " ".join(rng.choice(words[5:120], size=int(rng.integers(1, 4)), replace=False))
                spec = {"bucket": 1} if filtered and q % 2 else None
                got = check_lexical_hits(lexical(h, name, text, k, spec), oracle, text, k, spec, caps)
                found, wanted = found + got[0], wanted + got[1]
            score = found / wanted if wanted else 1.0
            if h.node is not None:
                h.node.user_properties.append(("vpa_lexical_recall", round(score, 4)))
            needed = 1.0 if caps.lexical_exact else caps.lexical_min_recall
            if score + 1e-9 < needed:
                fail(f"lexical recall@{k} is {score:.3f} of the reference top-k; the store declares {needed}")

    def test_lexical_bad_input(self, vpa_store: StoreHarness) -> None:
        """Bad lexical input is refused with its typed error before any I/O, and nothing changes: a
        query that is not a string or holds no word (ValidationError), one over 4,096 characters or
        256 distinct terms (LimitExceeded naming the bound; exactly at the bounds it is answered),
        a bad top_k or filter, an unknown fusion or an alpha outside [0, 1] (ValidationError), a bad
        vector; a missing collection is CollectionNotFound."""
        h = vpa_store
        caps = h.capabilities
        if not caps.lexical_search:
            _refuses_lexical(h)
            return
        h.examples += 1
        with h.collection(2) as name:
            oracle = Oracle(2)
            _fill(
                h,
                name,
                oracle,
                [Record("r0", [1.0, 0.0], "lexical search", {}), Record("r1", [0.0, 1.0], "dense", {})],
            )
            many = " ".join(f"t{i}" for i in range(MAX_QUERY_TERMS))
            at_terms = " ".join(["lexical", *(f"t{i}" for i in range(1, MAX_QUERY_TERMS))])
            at_chars = ("lexical " * MAX_QUERY_CHARS)[:MAX_QUERY_CHARS]
            # Exactly at the bounds: answered, and as the oracle answers.
            for text in (at_chars, at_terms):
                check_lexical_hits(lexical(h, name, text, 5), oracle, text, 5, None, caps)
            bad_texts: list[tuple[str, Any, type[Exception] | str]] = [
                ("an empty query", "", ValidationError),
                ("a query of spaces", "   \t\n", ValidationError),
                ("a query of punctuation only", "!!! ... \u2014 ?", ValidationError),
                ("a None query", None, ValidationError),
                ("a bytes query", b"lexical", ValidationError),
                ("an int query", 5, ValidationError),
                ("a list query", ["lexical"], ValidationError),
                (
                    "a query over 4,096 characters",
                    "lexical " * (MAX_QUERY_CHARS // 8) + "x",
                    "max_query_chars",
                ),
                ("a query of 257 distinct terms", many + " extra", "max_query_terms"),
            ]
            vector = [1.0, 0.0]
            with _backend_untouched(h.store, "a bad lexical query"):
                for what, text, error in bad_texts:
                    for kind, call in (
                        ("lexical_query", lambda text=text: lexical(h, name, text)),
                        ("hybrid_query", lambda text=text: hybrid(h, name, vector, text)),
                    ):
                        if isinstance(error, str):
                            _raises_limit(error, call, f"{kind} with {what}")
                        else:
                            _raises(error, call, f"{kind} with {what}")
                for top_k in (0, -1, True, 1.5, "3", None):
                    _raises(
                        ValidationError,
                        lambda k=top_k: lexical(h, name, "lexical", k),
                        f"lexical_query(top_k={top_k!r})",
                    )
                    _raises(
                        ValidationError,
                        lambda k=top_k: hybrid(h, name, vector, "lexical", k),
                        f"hybrid_query(top_k={top_k!r})",
                    )
                if caps.max_top_k is not None:
                    over = caps.max_top_k + 1
                    _raises(
                        ValidationError,
                        lambda: lexical(h, name, "lexical", over),
                        "lexical_query above max_top_k",
                    )
                for spec in vst.malformed_filters(caps)[:6]:
                    _raises(
                        InvalidFilter,
                        lambda s=spec: lexical(h, name, "lexical", 5, s),
                        f"lexical_query(filter={spec!r})",
                    )
                    _raises(
                        InvalidFilter,
                        lambda s=spec: hybrid(h, name, vector, "lexical", 5, s),
                        f"hybrid_query(filter={spec!r})",
                    )
                for fusion in ("dbsf", "RRF", "", None, 1):
                    _raises(
                        ValidationError,
                        lambda f=fusion: hybrid(h, name, vector, "lexical", fusion=f),
                        f"hybrid_query(fusion={fusion!r})",
                    )
                for alpha in (-0.1, 1.1, math.nan, math.inf, True, "0.5", None):
                    for fusion in ("linear", "rrf"):
                        _raises(
                            ValidationError,
                            lambda a=alpha, f=fusion: hybrid(h, name, vector, "lexical", fusion=f, alpha=a),
                            f"hybrid_query(fusion={fusion!r}, alpha={alpha!r})",
                        )
                _raises(
                    DimensionMismatch,
                    lambda: hybrid(h, name, [1.0, 0.0, 0.0], "lexical"),
                    "hybrid_query with a 3-d vector",
                )
                for bad_vector in ([0.0, 0.0], [math.nan, 1.0]):
                    _raises(
                        InvalidVector,
                        lambda v=bad_vector: hybrid(h, name, v, "lexical"),
                        f"hybrid_query({bad_vector!r})",
                    )
            _check_unchanged(h, name, oracle)
            missing = collection_name("m")
            _raises(
                CollectionNotFound,
                lambda: lexical(h, missing, "lexical"),
                "lexical_query on a missing collection",
            )
            _raises(
                CollectionNotFound,
                lambda: hybrid(h, missing, vector, "lexical"),
                "hybrid_query on a missing collection",
            )
            if missing in h.run(h.store.list_collections()):
                fail(f"a lexical query on the missing collection {missing!r} created it")

"""Clauses on bad input: typed errors before any I/O, nothing stored changed."""

from __future__ import annotations

import datetime as dt
import math

from hypothesis import given
from hypothesis import strategies as st
from vpa.errors import (
    DimensionMismatch,
    InvalidFilter,
    InvalidId,
    InvalidMetadata,
    InvalidVector,
    ValidationError,
)
from vpa.models import (
    Record,
    StoreCapabilities,
)

from vpa_conformance import strategies as vst
from vpa_conformance.checks import ContractViolation, fail
from vpa_conformance.harness import StoreHarness
from vpa_conformance.oracle import Oracle
from vpa_conformance.profiles import clause_settings
from vpa_conformance.store.common import (
    BASE_EXAMPLES,
    DIMENSIONS,
    _check_unchanged,
    _fill,
    _raises,
)


class BadInputClauses:
    """Clauses on bad input: typed errors before any I/O, nothing stored changed. Mixed into `StoreContract`."""

    # --- bad input -----------------------------------------------------------------------------

    @staticmethod
    def _bad_records(dim: int, caps: StoreCapabilities) -> list[tuple[str, Record, type[Exception]]]:
        good = [1.0] * dim
        if caps.contract_1_1:
            keys = [
                ("metadata key starting with $", Record("m", good, "", {"$a": 1}), InvalidMetadata),
                ("metadata key with NUL", Record("m", good, "", {"a\x00b": 1}), InvalidMetadata),
                ("metadata key too long", Record("m", good, "", {"k" * 129: 1}), InvalidMetadata),
            ]
        else:
            keys = [
                ("metadata key with dash", Record("m", good, "", {"a-b": 1}), InvalidMetadata),
                ("metadata key with digit first", Record("m", good, "", {"1a": 1}), InvalidMetadata),
                ("metadata key too long", Record("m", good, "", {"k" * 65: 1}), InvalidMetadata),
            ]
        naive = dt.datetime(2024, 5, 1, 12, 0)
        far = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
        return [
            *keys,
            ("naive datetime", Record("m", good, "", {"a": naive}), InvalidMetadata),
            ("datetime outside the portable range", Record("m", good, "", {"a": far}), InvalidMetadata),
            ("empty id", Record("", good, "", {}), InvalidId),
            ("id with NUL", Record("a\x00b", good, "", {}), InvalidId),
            ("id too long", Record("i" * 513, good, "", {}), InvalidId),
            ("non-str id", Record(123, good, "", {}), InvalidId),  # type: ignore[arg-type]
            ("short vector", Record("v", good[:-1], "", {}), DimensionMismatch),
            ("long vector", Record("v", [*good, 1.0], "", {}), DimensionMismatch),
            ("NaN in vector", Record("v", [math.nan, *good[1:]], "", {}), InvalidVector),
            ("inf in vector", Record("v", [*good[:-1], math.inf], "", {}), InvalidVector),
            ("-inf in vector", Record("v", [-math.inf, *good[1:]], "", {}), InvalidVector),
            ("zero vector", Record("v", [0.0] * dim, "", {}), InvalidVector),
            ("nested metadata", Record("m", good, "", {"a": {"b": 1}}), InvalidMetadata),
            ("empty metadata key", Record("m", good, "", {"": 1}), InvalidMetadata),
            ("int beyond 2**53", Record("m", good, "", {"a": 2**53 + 1}), InvalidMetadata),
            ("NaN metadata", Record("m", good, "", {"a": math.nan}), InvalidMetadata),
            ("inf metadata", Record("m", good, "", {"a": math.inf}), InvalidMetadata),
            ("mixed list", Record("m", good, "", {"a": ["x", 1]}), InvalidMetadata),
            ("list of ints", Record("m", good, "", {"a": [1, 2]}), InvalidMetadata),
            ("non-str text", Record("m", good, 5, {}), InvalidMetadata),  # type: ignore[arg-type]
        ]

    @clause_settings(BASE_EXAMPLES["bad_input"])
    @given(data=st.data())
    def test_bad_input(self, vpa_store: StoreHarness, data: st.DataObject) -> None:
        """Wrong dimension, NaN/inf, zero vectors, empty or bad ids, bad metadata, malformed
        filters, bad top_k: each raises its typed error, and the stored data is unchanged (a
        batch with one bad record writes nothing)."""
        h = vpa_store
        caps = h.capabilities
        dim = data.draw(DIMENSIONS, label="dimension")
        schema = data.draw(vst.metadata_schemas(caps), label="schema")
        records = data.draw(
            vst.record_lists(dim, caps, min_size=1, max_size=8, schema=schema), label="records"
        )
        bad_records = self._bad_records(dim, caps)
        good = [1.0] * dim
        with h.collection(dim) as name:
            oracle = Oracle(dim)
            _fill(h, name, oracle, records)
            attempts = data.draw(st.integers(2, 5), label="attempts")
            touched: list[str] = []
            for _ in range(attempts):
                kind = data.draw(st.sampled_from(["batch", "query", "filter", "ids"]), label="kind")
                if kind == "batch":
                    what, bad, error = data.draw(st.sampled_from(bad_records), label="bad record")
                    updates = data.draw(
                        st.lists(vst.records(dim, caps, schema=schema, id=None), max_size=4),
                        label="good records",
                    )
                    updates += [
                        data.draw(vst.records(dim, caps, schema=schema, id=r.id)) for r in records[:2]
                    ]
                    position = data.draw(st.integers(0, len(updates)), label="position")
                    batch = [*updates[:position], bad, *updates[position:]]
                    touched += [r.id for r in updates if isinstance(r.id, str)]
                    _raises(
                        error, lambda batch=batch: h.upsert(name, batch), f"upsert of a batch with {what}"
                    )
                elif kind == "query":
                    what, vector, error = data.draw(
                        st.sampled_from(
                            [
                                ("short query vector", good[:-1], DimensionMismatch),
                                ("long query vector", [*good, 1.0], DimensionMismatch),
                                ("empty query vector", [], DimensionMismatch),
                                ("NaN query vector", [math.nan, *good[1:]], InvalidVector),
                                ("inf query vector", [*good[:-1], math.inf], InvalidVector),
                                ("zero query vector", [0.0] * dim, InvalidVector),
                                ("nested query vector", [good], InvalidVector),
                            ]
                        ),
                        label="bad query",
                    )
                    _raises(error, lambda vector=vector: h.query(name, vector, top_k=3), what)
                elif kind == "filter":
                    spec = data.draw(st.sampled_from(vst.malformed_filters(caps)), label="malformed filter")
                    call = data.draw(
                        st.sampled_from(["count", "query", "delete", "delete_ids"]), label="call"
                    )
                    calls = {
                        "count": lambda spec=spec: h.count(name, spec),
                        "query": lambda spec=spec: h.query(name, good, 3, spec),
                        "delete": lambda spec=spec: h.delete(name, filter=spec),
                        "delete_ids": lambda spec=spec: h.delete(
                            name, ids=[r.id for r in records], filter=spec
                        ),
                    }
                    _raises(InvalidFilter, calls[call], f"{call} with malformed filter {spec!r}")
                else:
                    bad_ids = data.draw(
                        st.sampled_from(["abc", [""], ["ok", ""], ["a\x00"], [1], ["i" * 513]]),
                        label="bad ids",
                    )
                    call = data.draw(st.sampled_from(["get", "delete"]), label="call")
                    if call == "get":
                        _raises(InvalidId, lambda bad_ids=bad_ids: h.get(name, bad_ids), f"get({bad_ids!r})")
                    else:
                        _raises(
                            InvalidId,
                            lambda bad_ids=bad_ids: h.delete(name, ids=bad_ids),
                            f"delete(ids={bad_ids!r})",
                        )
            _check_unchanged(h, name, oracle, touched)

    def test_unencodable_strings(self, vpa_store: StoreHarness) -> None:
        """Strings that UTF-8 cannot encode (lone surrogates) in an id, the text, a metadata
        string or list, or a filter value raise a ValidationError before any write, and nothing
        changes."""
        h = vpa_store
        with h.collection(2) as name:
            oracle = Oracle(2)
            _fill(h, name, oracle, [Record("kept", [1.0, 0.0], "kept", {"s": "x"})])
            bad = [
                Record("id\ud800", [1.0, 1.0], "", {}),
                Record("t", [1.0, 1.0], "text \udcff", {}),
                Record("m", [1.0, 1.0], "", {"s": "\ud83d"}),
                Record("l", [1.0, 1.0], "", {"l": ["ok", "\udfff"]}),
            ]
            problems = []
            for record in bad:
                try:
                    h.upsert(name, [record])
                except ValidationError:
                    continue
                except Exception as exc:
                    problems.append(f"upsert of {record.id!r}: {type(exc).__name__}")
                    continue
                problems.append(f"upsert of {record.id!r} was accepted")
            for call, run in (
                ("count", lambda: h.count(name, {"s": "\ud800"})),
                ("delete", lambda: h.delete(name, filter={"s": "\ud800"})),
            ):
                try:
                    run()
                except ValidationError:
                    continue
                except Exception as exc:
                    problems.append(f"{call} with a lone surrogate in the filter: {type(exc).__name__}")
                    continue
                problems.append(f"{call} with a lone surrogate in the filter was accepted")
            try:
                _check_unchanged(h, name, oracle, ["t", "m", "l"])
            except ContractViolation as exc:
                problems.append(f"the collection changed: {exc}")
            if problems:
                fail(
                    "strings UTF-8 cannot encode must be refused with a ValidationError: "
                    + "; ".join(problems)
                )

"""Contract 1.1's data portability, end to end: what a store holds survives ``vpa export`` and
``vpa import`` (`vpa.portability`) through the reference memory store and back, exactly.

The snapshot functions use nothing but the public contract (``scroll`` with vectors, ``get``,
``upsert``, ``count``), so this clause holds a store to what they need of it together: a scroll
that lists every record once with its vector and its typed metadata, in pages of any size, and a
``get`` that agrees with it — a listing path that drops a page or decodes a type differently from
``get`` loses data in every backup, and no other clause compares the two across a whole copy. A
contract 1.0 store cannot be exported: it must refuse with `UnsupportedOperation`, and nothing is
written.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from vpa.errors import UnsupportedOperation
from vpa.models import EmbedderFingerprint, MetadataType, Record, StoreCapabilities
from vpa.portability import (
    ROWS_PER_FILE,
    ImportSummary,
    Snapshot,
    export_collection,
    import_snapshot,
)
from vpa.stores.memory import MemoryStore
from vpa.validation import record_bytes

from vpa_conformance import strategies as vst
from vpa_conformance.checks import ContractViolation, check_get, fail
from vpa_conformance.harness import StoreHarness, collection_name
from vpa_conformance.oracle import Oracle
from vpa_conformance.profiles import clause_settings
from vpa_conformance.store.common import DIMENSIONS, _fill, _raises

__all__ = ["ROUND_TRIP_EXAMPLES", "PortabilityClauses"]

#: Examples of the round trip in the ``ci`` profile: each creates two collections in the store
#: under test and a memory store on disk, so it is kept small (Chroma's suite is long already).
ROUND_TRIP_EXAMPLES = 6
#: The most records one example writes (half drawn freely, the rest `_typed_records`).
MAX_RECORDS = 30

WAY = "snapshot round trip (export, import into memory, export, import)"


#: One key per metadata type for `_typed_records` (portable names, one type each, so a store
#: without heterogeneous fields is not asked to change a key's type).
TYPED_KEYS = {
    MetadataType.STR: "typed_str",
    MetadataType.INT: "typed_int",
    MetadataType.FLOAT: "typed_float",
    MetadataType.BOOL: "typed_bool",
    MetadataType.STR_LIST: "typed_strs",
    MetadataType.EMPTY_LIST: "typed_empty",
    MetadataType.DATETIME: "typed_date",
}


@st.composite
def _typed_records(draw: st.DrawFn, dimension: int, caps: StoreCapabilities, taken: set[str]) -> list[Record]:
    """Records that carry every metadata type the store declares, each under its own key: two
    with one typed value each and one with them all, so every example moves every declared type
    through every step (the drawn records may hold few or none)."""
    keys = {t: k for t, k in TYPED_KEYS.items() if t in caps.metadata_types and k not in taken}
    out: list[Record] = []
    every: dict[str, Any] = {}
    for kind, key in sorted(keys.items(), key=lambda item: item[1]):
        for j in range(2):
            value = draw(vst.metadata_values(types=[kind]), label=key)
            every.setdefault(key, value)
            out.append(Record(f"{key}-{j}", draw(vst.vectors(dimension)), draw(vst.texts(20)), {key: value}))
    if every:
        out.append(Record("typed-all", draw(vst.vectors(dimension)), "", every))
    limit = caps.max_record_bytes
    return [r for r in out if limit is None or record_bytes(r) <= limit]


def _page_sizes(h: StoreHarness) -> st.SearchStrategy[int]:
    """Scroll pages small enough that a collection of a few records takes several (so a scroll
    that loses its last page, or repeats one, is seen), and the store's largest."""
    top = h.capabilities.max_page_size
    return st.sampled_from(sorted({1, 3, 7, min(top, 1000)}))


@contextlib.contextmanager
def _dropped_afterwards(h: StoreHarness, name: str) -> Iterator[str]:
    """A collection that an import creates, dropped when the example ends (also on failure)."""
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):  # keep the example's own failure
            h.run(h.store.drop_collection(name))


def _check_import(summary: ImportSummary, written: int, skipped: int, what: str) -> None:
    got = (summary.records, summary.written, summary.skipped, summary.replaced)
    want = (written + skipped, written, skipped, 0)
    if got != want:
        fail(
            f"{WAY}: {what}: records/written/skipped/replaced are {got}; expected {want} (a record already "
            "there unchanged is skipped, so an import run again writes nothing)"
        )


class PortabilityClauses:
    """Snapshots in and out of the store. Mixed into `StoreContract`."""

    @clause_settings(ROUND_TRIP_EXAMPLES)
    @given(data=st.data())
    def test_snapshot_round_trip(self, vpa_store: StoreHarness, data: st.DataObject) -> None:
        """Records exported to a snapshot, imported into the reference memory store, exported from
        it and imported into a new collection of the store come back exactly as written (typed
        metadata, vectors within float32 tolerance), every one, in the same count; importing the
        same snapshot again writes nothing and skips every record."""
        h = vpa_store
        caps = h.capabilities
        if not caps.contract_1_1:
            self._refuses_export(h)
            return
        dim = data.draw(DIMENSIONS, label="dimension")
        schema = data.draw(vst.metadata_schemas(caps), label="schema")
        records = data.draw(
            vst.record_lists(dim, caps, max_size=MAX_RECORDS // 2, schema=schema), label="records"
        )
        records += data.draw(_typed_records(dim, caps, set(schema)), label="typed records")
        fingerprint = data.draw(
            st.sampled_from([None, EmbedderFingerprint("conformance", "round-trip", dim)]),
            label="fingerprint",
        )
        page = data.draw(_page_sizes(h), label="export page size")
        rows_per_file = data.draw(st.sampled_from([1, 4, ROWS_PER_FILE]), label="records per Parquet file")
        batch = data.draw(st.sampled_from([1, 7, 1000]), label="import batch size")
        tar = data.draw(st.booleans(), label="snapshot as .tar")
        with contextlib.ExitStack() as stack:
            name = stack.enter_context(h.collection(dim, fingerprint))
            oracle = Oracle(dim)
            _fill(h, name, oracle, records)
            n = len(oracle.records)
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vpa-conformance-")))
            first = folder / ("first.tar" if tar else "first")
            summary = h.run(
                export_collection(h.store, name, first, batch_size=page, rows_per_file=rows_per_file)
            )
            self._check_snapshot(
                first, summary.records, n, dim, fingerprint, f"export of {name!r} (pages of {page})"
            )

            reference = MemoryStore(folder / "memory")  # a fresh data folder per example
            stack.callback(lambda: h.run(reference.close()))
            into_memory = h.run(import_snapshot(reference, first, collection="reference", batch_size=batch))
            _check_import(into_memory, n, 0, "import into the memory store")
            if (held := h.run(reference.count("reference"))) != n:
                fail(f"{WAY}: the memory store holds {held} records after importing {n}")
            second = folder / "second"
            again = h.run(export_collection(reference, "reference", second, rows_per_file=rows_per_file))
            self._check_snapshot(second, again.records, n, dim, fingerprint, "export from the memory store")

            target = stack.enter_context(_dropped_afterwards(h, collection_name("i")))
            imported = h.run(import_snapshot(h.store, second, collection=target, batch_size=batch))
            _check_import(imported, n, 0, f"import into a new collection {target!r}")
            h.settle(target)
            self._check_holds(h, target, oracle, dim, fingerprint)

            rerun = h.run(import_snapshot(h.store, second, collection=target, batch_size=batch))
            _check_import(rerun, 0, n, f"the same snapshot imported again into {target!r}")
            h.settle(target)
            self._check_holds(h, target, oracle, dim, fingerprint)

    @staticmethod
    def _check_snapshot(
        path: Path, reported: int, n: int, dim: int, fingerprint: EmbedderFingerprint | None, what: str
    ) -> None:
        with Snapshot(path) as snapshot:
            manifest = snapshot.manifest
            snapshot.verify()
            listed = sum(len(b) for b in snapshot.batches())
        if (reported, manifest.records, listed) != (n, n, n):
            fail(
                f"{WAY}: {what} reported {reported} records, its manifest {manifest.records}, its files "
                f"{listed}; the collection holds {n} (a scroll must list every record exactly once)"
            )
        if (manifest.dimension, manifest.fingerprint) != (dim, fingerprint):
            fail(
                f"{WAY}: {what} has dimension {manifest.dimension} and fingerprint {manifest.fingerprint!r}; "
                f"the collection has {dim} and {fingerprint!r}"
            )

    @staticmethod
    def _check_holds(
        h: StoreHarness, name: str, oracle: Oracle, dim: int, fingerprint: EmbedderFingerprint | None
    ) -> None:
        """The imported collection: its definition, its count and every record as first written."""
        info = h.run(h.store.open_collection(name))
        if (info.dimension, info.fingerprint) != (dim, fingerprint):
            fail(
                f"{WAY}: collection {name!r} was created with dimension {info.dimension} and fingerprint "
                f"{info.fingerprint!r}; the snapshot has {dim} and {fingerprint!r}"
            )
        held = h.count(name)
        if held != len(oracle.records):
            fail(f"{WAY}: count() of {name!r} is {held}; {len(oracle.records)} records were written")
        ids = list(oracle.records)
        try:
            check_get(h.get(name, ids), oracle, ids)
        except ContractViolation as exc:
            raise ContractViolation(f"{WAY}: a record did not come back as written: {exc}") from None

    @staticmethod
    def _refuses_export(h: StoreHarness) -> None:
        """A contract 1.0 store has no scroll: exporting it is `UnsupportedOperation`, and leaves
        no snapshot (nor a partial one) behind."""
        h.not_declared()
        with h.collection(2) as name, tempfile.TemporaryDirectory(prefix="vpa-conformance-") as tmp:
            h.upsert(name, [Record("r0", [1.0, 0.0], "t", {})])
            out = Path(tmp) / "snapshot"
            _raises(
                UnsupportedOperation,
                lambda: h.run(export_collection(h.store, name, out)),
                "export of a contract 1.0 store (it has no scroll)",
            )
            left: list[Any] = sorted(p.name for p in Path(tmp).iterdir())
            if left:
                fail(f"a refused export left {left!r} behind")

"""VPA's BM25 beside Chroma: an exact lexical index of each collection, in one SQLite file.

Chroma's open-source engine scores no words (its ``$contains`` document filter only matches), so
the embedded store keeps, beside its folder, the postings VPA's BM25 (`vpa.lexical`) needs:

- ``postings(cid, term, id, tf, dl)``: a record's term frequency, with its length (a query is one
  range scan per term, no join);
- ``docs(cid, id, len, terms)``: every record of the collection — one without words too, which
  counts in N — with its distinct terms (to remove its postings when it changes);
- ``collections(cid, uuid, name, built, docs, total)``: the collection totals (N and the sum of
  lengths), keyed by Chroma's collection id, so a collection dropped and re-created elsewhere
  under the same name is a new, unbuilt index;
- ``pending(cid, id, token)``: the intent journal (below); ``meta``: the schema and the BM25
  definition (`vpa.lexical.BM25_SPEC`), whose change empties the file (indexes are rebuilt).

Scores are computed from the postings with exactly `vpa.lexical.bm25_scores`'s arithmetic (same
terms order, same expression), so they are equal to it, not merely close.

**Consistency.** One rule makes the index follow Chroma whatever runs concurrently: *every change
to a record's index rows reads that record from Chroma inside the same SQLite write transaction*
(``BEGIN IMMEDIATE``). A writer journals its ids (committed, ``synchronous=FULL``) before it
writes Chroma, and re-reads and re-indexes them after, then clears its journal rows; the last
transaction that touches a record therefore saw Chroma after every write to it. A writer killed
between the two (kill -9, power loss) leaves its journal rows: the store re-reads those ids and
re-indexes them (present: its text; absent: removed) the first time it uses the collection's index
(`LexicalIndex.recover`). A build (a collection without an index: created before the index
existed, or whose index was lost) scrolls the collection a page per transaction the same way, and
is marked built only at its end; a build cut short starts again.

This module does no Chroma I/O of its own: the store passes the reads (``read(ids)`` →
``{id: text}`` for the ids that exist, ``page(after)`` → ``(records, next)``) into each
transaction. Every method blocks (SQLite); the store runs them in worker threads.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from vpa.lexical import BM25_SPEC, idf, tokenize

SCHEMA = "1"
#: Seconds a transaction waits for another connection's write lock before failing.
BUSY_SECONDS = 60.0
#: Ids a transaction re-reads from Chroma per call while recovering.
RECOVER_CHUNK = 500
#: Ids per ``IN (...)`` when reading their index rows.
ID_CHUNK = 500
#: The SQLite page cache of a connection (KiB): postings inserts touch many B-tree pages.
CACHE_KIB = 65_536

#: Test hook (durability tests only): when this variable names a file, a writer creates it once its
#: Chroma write is done and before the index follows, then blocks — the test kills it there.
FAULT_PAUSE_ENV = "VPA_CHROMA_LEXICAL_PAUSE_FILE"

#: This process's writers' tokens start with this (journal rows of another process, or of an earlier
#: process with the same pid, are never mistaken for ours).
_PROCESS = uuid.uuid4().hex[:12]
#: Journal tokens of writes under way in this process (any store instance): recovery leaves them.
_INFLIGHT: set[str] = set()
_INFLIGHT_LOCK = threading.Lock()

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections (
    cid INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    built INTEGER NOT NULL DEFAULT 0, docs INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS docs (
    cid INTEGER NOT NULL, id TEXT NOT NULL, len INTEGER NOT NULL, terms TEXT NOT NULL,
    PRIMARY KEY (cid, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS postings (
    cid INTEGER NOT NULL, term TEXT NOT NULL, id TEXT NOT NULL, tf INTEGER NOT NULL, dl INTEGER NOT NULL,
    PRIMARY KEY (cid, term, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    cid INTEGER NOT NULL, id TEXT NOT NULL, token TEXT NOT NULL,
    PRIMARY KEY (cid, id, token)
) WITHOUT ROWID;
"""


def index_file(chroma_path: Path) -> Path:
    """Where the index of the Chroma folder ``chroma_path`` lives: beside it, in
    ``<folder>.lexical/bm25.sqlite3`` (Chroma's own folder holds only what Chroma writes)."""
    return chroma_path.parent / f"{chroma_path.name}.lexical" / "bm25.sqlite3"


def fault_pause() -> None:
    """The durability tests' kill point (`FAULT_PAUSE_ENV`); nothing when the variable is unset."""
    marker = os.environ.get(FAULT_PAUSE_ENV)
    if not marker:
        return
    Path(marker).write_text(str(os.getpid()))
    threading.Event().wait()  # until killed


class _Txn:
    """One write transaction on one collection's index: records replaced, totals kept."""

    def __init__(self, db: sqlite3.Connection, cid: int) -> None:
        self.db, self.cid = db, cid
        self.docs, self.total = db.execute(
            "SELECT docs, total FROM collections WHERE cid = ?", (cid,)
        ).fetchone()

    def put(self, records: Sequence[tuple[str, str | None]]) -> None:
        """The records as Chroma holds them now: ``(id, text)`` (``""`` without one), text None if
        the record is absent. Each record's old rows go, its new ones come; the statements are
        batched and sorted by key (B-tree inserts in order: about twice as fast as record by
        record)."""
        latest = dict(records)  # an id given twice: its last state
        ids = list(latest)
        old: dict[str, tuple[int, str]] = {}
        for start in range(0, len(ids), ID_CHUNK):
            part = ids[start : start + ID_CHUNK]
            marks = ",".join("?" * len(part))
            query = f"SELECT id, len, terms FROM docs WHERE cid = ? AND id IN ({marks})"
            old.update((i, (n, t)) for i, n, t in self.db.execute(query, (self.cid, *part)))
        if old:
            self.db.executemany(
                "DELETE FROM postings WHERE cid = ? AND term = ? AND id = ?",
                sorted((self.cid, t, i) for i, (_, terms) in old.items() for t in terms.split(" ") if t),
            )
            self.db.executemany(
                "DELETE FROM docs WHERE cid = ? AND id = ?", [(self.cid, i) for i in sorted(old)]
            )
            self.docs -= len(old)
            self.total -= sum(n for n, _ in old.values())
        docs, postings = [], []
        for record_id, text in latest.items():
            if text is None:
                continue
            counts = Counter(tokenize(text))
            length = sum(counts.values())
            # tokens are runs of word characters: a space never occurs in one
            docs.append((self.cid, record_id, length, " ".join(counts)))
            postings.extend((self.cid, t, record_id, tf, length) for t, tf in counts.items())
            self.docs += 1
            self.total += length
        docs.sort()
        postings.sort()
        self.db.executemany("INSERT INTO docs (cid, id, len, terms) VALUES (?, ?, ?, ?)", docs)
        self.db.executemany("INSERT INTO postings (cid, term, id, tf, dl) VALUES (?, ?, ?, ?, ?)", postings)

    def follow(self, ids: Sequence[str], read: Callable[[Sequence[str]], Mapping[str, str]]) -> None:
        """Re-read ``ids`` from Chroma (inside this transaction) and index what it holds."""
        found = read(ids)
        self.put([(i, found.get(i)) for i in dict.fromkeys(ids)])

    def close(self) -> None:
        self.db.execute(
            "UPDATE collections SET docs = ?, total = ? WHERE cid = ?", (self.docs, self.total, self.cid)
        )


class LexicalIndex:
    """The BM25 postings of every collection of one Chroma folder (see the module docstring)."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self._ready = False
        self._lock = threading.Lock()

    # --- connections -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own for each operation (they run in whichever worker thread):
        autocommit, so transactions are exactly the explicit ``BEGIN``s below."""
        self._open()
        db = sqlite3.connect(self.file, timeout=BUSY_SECONDS, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            yield db
        finally:
            db.close()

    def _open(self) -> None:
        """Create the file and its tables on first use; a file of another schema or BM25
        definition is emptied (every index is then rebuilt from Chroma when next used)."""
        with self._lock:
            if self._ready:
                return
            self.file.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.file, timeout=BUSY_SECONDS, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.executescript(_TABLES)
                db.execute("BEGIN IMMEDIATE")
                wanted = {"schema": SCHEMA, "bm25": BM25_SPEC.describe()}
                have = dict(db.execute("SELECT key, value FROM meta").fetchall())
                if have != wanted:
                    for table in ("postings", "docs", "pending", "collections", "meta"):
                        db.execute(f"DELETE FROM {table}")
                    db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", list(wanted.items()))
                db.execute("COMMIT")
            finally:
                db.close()
            self._ready = True

    @contextlib.contextmanager
    def _write(self, key: str, name: str) -> Iterator[_Txn]:
        """A write transaction on collection ``key`` (Chroma's collection id), its row created
        (unbuilt) if missing; committed when the block ends, rolled back on an error."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                txn = _Txn(db, self._cid(db, key, name))
                yield txn
                txn.close()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    @staticmethod
    def _cid(db: sqlite3.Connection, key: str, name: str) -> int:
        row = db.execute("SELECT cid FROM collections WHERE uuid = ?", (key,)).fetchone()
        if row is not None:
            return int(row[0])
        return int(
            db.execute("INSERT INTO collections (uuid, name) VALUES (?, ?)", (key, name)).lastrowid or 0
        )

    # --- collections -----------------------------------------------------------------------------

    def state(self, key: str) -> tuple[bool, int] | None:
        """``(built, records indexed)`` of a collection's index, None if it has none."""
        with self._connect() as db:
            row = db.execute("SELECT built, docs FROM collections WHERE uuid = ?", (key,)).fetchone()
        return None if row is None else (bool(row[0]), int(row[1]))

    def created(self, key: str, name: str) -> None:
        """A collection just created (empty): its index is built, with nothing in it."""
        with self._write(key, name) as txn:
            txn.db.execute("UPDATE collections SET built = 1 WHERE cid = ?", (txn.cid,))

    def forget(self, name: str) -> None:
        """Remove every index of collections called ``name`` (before and after a drop)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                cids = [r[0] for r in db.execute("SELECT cid FROM collections WHERE name = ?", (name,))]
                for cid in cids:
                    for table in ("postings", "docs", "pending", "collections"):
                        db.execute(f"DELETE FROM {table} WHERE cid = ?", (cid,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def build(
        self, key: str, name: str, page: Callable[[str | None], tuple[Sequence[tuple[str, str]], str | None]]
    ) -> int:
        """Index the whole collection from scratch: its rows emptied and marked unbuilt, then a
        transaction per ``page(after)`` (``(id, text)`` pairs and the position after them, read
        from Chroma inside it), then marked built. Other collections' indexes (another uuid under
        the same name: a collection dropped elsewhere) are removed. Returns the records indexed."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                stale = [
                    r[0]
                    for r in db.execute(
                        "SELECT cid FROM collections WHERE name = ? AND uuid != ?", (name, key)
                    )
                ]
                cid = self._cid(db, key, name)
                for c in [*stale, cid]:
                    for table in ("postings", "docs", "pending"):
                        db.execute(f"DELETE FROM {table} WHERE cid = ?", (c,))
                for c in stale:
                    db.execute("DELETE FROM collections WHERE cid = ?", (c,))
                db.execute("UPDATE collections SET built = 0, docs = 0, total = 0 WHERE cid = ?", (cid,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        after: str | None = None
        while True:
            with self._write(key, name) as txn:
                rows, after = page(after)
                txn.put(rows)
                if after is None:
                    txn.db.execute("UPDATE collections SET built = 1 WHERE cid = ?", (txn.cid,))
                    return txn.docs

    # --- the journal -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def writing(
        self, key: str, name: str, ids: Sequence[str], read: Callable[[Sequence[str]], Mapping[str, str]]
    ) -> Iterator[None]:
        """Around a Chroma write of ``ids``: journal them (committed) first; after the write, or
        after it failed, re-read them and index what Chroma holds, and clear the journal. If that
        last step fails the journal stays, for `recover`."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            yield
            return
        token = f"{_PROCESS}:{uuid.uuid4().hex[:12]}"
        with _INFLIGHT_LOCK:
            _INFLIGHT.add(token)
        try:
            with self._write(key, name) as txn:
                txn.db.executemany(
                    "INSERT OR IGNORE INTO pending (cid, id, token) VALUES (?, ?, ?)",
                    [(txn.cid, i, token) for i in ids],
                )
            try:
                yield
            except BaseException:
                # the write failed, perhaps half done: follow what Chroma holds if we can (else
                # the journal stays for `recover`), and report the write's own error
                with contextlib.suppress(Exception):
                    self._follow(key, name, ids, token, read)
                raise
            fault_pause()
            self._follow(key, name, ids, token, read)
        finally:
            with _INFLIGHT_LOCK:
                _INFLIGHT.discard(token)

    def _follow(
        self,
        key: str,
        name: str,
        ids: Sequence[str],
        token: str,
        read: Callable[[Sequence[str]], Mapping[str, str]],
    ) -> None:
        with self._write(key, name) as txn:
            txn.follow(ids, read)
            txn.db.execute("DELETE FROM pending WHERE cid = ? AND token = ?", (txn.cid, token))

    def recover(self, key: str, name: str, read: Callable[[Sequence[str]], Mapping[str, str]]) -> int:
        """Re-index the ids journalled by writers that are gone (killed, or failed to follow):
        every journal row but those of writes under way in this process. Returns how many ids."""
        recovered = 0
        while True:
            with self._write(key, name) as txn:
                with _INFLIGHT_LOCK:
                    live = set(_INFLIGHT)
                rows = txn.db.execute("SELECT id, token FROM pending WHERE cid = ?", (txn.cid,)).fetchall()
                dead = [(i, t) for i, t in rows if t not in live][:RECOVER_CHUNK]
                if not dead:
                    return recovered
                ids = list(dict.fromkeys(i for i, _ in dead))
                txn.follow(ids, read)
                txn.db.executemany(
                    "DELETE FROM pending WHERE cid = ? AND id = ? AND token = ?",
                    [(txn.cid, i, t) for i, t in dead],
                )
                recovered += len(ids)

    # --- queries ---------------------------------------------------------------------------------

    def scores(self, key: str, terms: Iterable[str]) -> list[tuple[str, float]]:
        """BM25 of every record holding at least one of ``terms`` (distinct, in the query's order),
        best first (equal scores by id): `vpa.lexical.bm25_scores`'s arithmetic over the postings,
        read in one snapshot."""
        spec = BM25_SPEC
        k1, b = spec.k1, spec.b
        with self._connect() as db:
            db.execute("BEGIN")
            try:
                row = db.execute("SELECT cid, docs, total FROM collections WHERE uuid = ?", (key,)).fetchone()
                if row is None or not row[1]:
                    return []
                cid, n, total = int(row[0]), int(row[1]), int(row[2])
                avgdl = (total / n) or 1.0
                out: dict[str, float] = {}
                for term in dict.fromkeys(terms):
                    postings = db.execute(
                        "SELECT id, tf, dl FROM postings WHERE cid = ? AND term = ?", (cid, term)
                    ).fetchall()
                    if not postings:
                        continue
                    weight = idf(n, len(postings))
                    for record_id, tf, dl in postings:
                        # exactly bm25_scores' expression (and order of terms): equal, not merely close
                        out[record_id] = out.get(record_id, 0.0) + weight * tf * (k1 + 1) / (
                            tf + k1 * (1 - b + b * dl / avgdl)
                        )
            finally:
                db.execute("COMMIT")
        return sorted(out.items(), key=lambda item: (-item[1], item[0]))


def documents_of(result: Mapping[str, Any]) -> dict[str, str]:
    """``{id: text}`` of a Chroma ``get(include=["documents"])`` result (no document: ``""``)."""
    return {i: (doc or "") for i, doc in zip(result["ids"], result["documents"], strict=True)}

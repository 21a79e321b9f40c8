"""The `milvus` store: VPA's store contract on the official ``pymilvus`` ``MilvusClient``.

Two modes, one code path:

- **Milvus Lite** — ``uri`` is a local ``.db`` path (default ``<VPA_DATA_DIR>/milvus/vpa.db``).
  Milvus Lite runs in a child process (lite.py) so that its pure-Python engine does not compete
  with the app's event loop for the GIL; the store talks to it over gRPC on 127.0.0.1. One
  process uses a ``.db`` at a time; the child stops when the last store on that path is closed.
- **server** — ``uri`` is ``http(s)://host:port`` of Milvus standalone or distributed, with an
  optional token (``user:password`` or an API key).

Each VPA collection is one Milvus collection with the fixed schema of codec.py, its definition
in a collection property. Collections are created with consistency level Strong and every read
asks for Strong as well: a write is visible to the next read, so the store is not eventually
consistent.

pymilvus is synchronous; every call runs in a worker thread (`run_vendor`), bounded by the
configured timeout so that an unreachable server ends in `StoreUnavailable`/`StoreTimeout`
instead of pymilvus's minutes of retries.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from vpa.config import not_applicable
from vpa.errors import ConfigError, StoreError, UnsupportedOperation
from vpa.filters import Node
from vpa.models import CollectionInfo, Hit, Record, StoreCapabilities, contract_1_1
from vpa.stores.base import VectorStore, batched

from vpa_milvus import codec, errors, lite
from vpa_milvus.codec import ID_FIELD, VECTOR_FIELD, milvus_name
from vpa_milvus.filters import id_after, id_in, to_native
from vpa_milvus.settings import MilvusSettings, is_lite, redact_uri, store_uri

#: Milvus's limit on ``limit`` (top-k) per search.
MAX_TOP_K = 16_384
#: A VPA term becomes up to four predicates on the JSON field (``exists`` and a comparison, for
#: the int and the float key of a number; an ``$in`` is one ``or`` per value), evaluated row by
#: row: Milvus Lite took about 15 ms a term per 1,000 rows (a 1,024-term ``$or`` 15 s, a
#: 4,096-term ``$not`` of an ``$and`` past the client's deadline). A quarter of the default
#: keeps one search near a second per 1,000 rows.
MAX_FILTER_TERMS = 256
#: Metadata is one JSON field (64 KiB, which ``max_record_bytes`` already bounds); a key costs no
#: more than its bytes there, so more keys than the default fit (1,024 measured to round-trip).
MAX_METADATA_KEYS = 1024
#: Rough bytes per upsert request; Milvus's default gRPC receive limit is 64 MiB.
REQUEST_BYTES = 16 * 1024 * 1024
#: Ids per ``id in [...]`` expression (get, delete): keeps expressions and responses small.
IDS_PER_CALL = 1000
#: Milvus Lite searches freshly written (unflushed, growing-segment) rows by brute force, slowly:
#: 143 ms a top-10 query over 5,000 unflushed 384-d rows, 8 ms once flushed (the flush took
#: 0.47 s). So in Lite mode the first search after this many written rows flushes first.
#: Servers seal and index segments on their own.
LITE_FLUSH_AFTER_ROWS = 512
#: Records per scroll page (one ``query`` of one row more; Milvus caps offset + limit at 16,384,
#: and a page of vectors must stay well within the 64 MiB gRPC message).
MAX_PAGE_SIZE = 1000
#: Records an update reads and rewrites per request (one ``query`` and one ``upsert``).
UPDATE_BATCH = 256
#: Milvus Lite 3.2 scores a BM25 search of its unflushed rows with statistics of the rows that
#: match the filter (it builds their index with the filter as its mask), and of flushed segments
#: with the statistics of the whole segment (the filter only masks the results). So a filtered
#: lexical search would score a record differently from an unfiltered one while its row is
#: unflushed; a lexical or hybrid search therefore flushes first whenever a row was written.
LEXICAL_FLUSH_AFTER_ROWS = 1
#: The first Milvus server release with the BM25 function (full-text search).
LEXICAL_SERVER_VERSION = (2, 5)
#: What this store guarantees of VPA's BM25 top-k (recall@k of `vpa.lexical`'s ranking): the
#: tokens are VPA's own (`codec.lexical_form`), the formula Lucene's with VPA's k1 and b, but
#: Milvus Lite keeps the statistics (N, document frequencies, average length) per segment — the
#: unflushed rows and each flushed segment apart, replaced and deleted rows still counted in a
#: flushed segment's — and scores in float32. Measured: see the README (Lexical search).
LEXICAL_MIN_RECALL = 0.8


def without_lexical(caps: StoreCapabilities) -> StoreCapabilities:
    """``caps`` without lexical search (a server older than 2.5, not yet asked, or lexical=false)."""
    return attrs.evolve(
        caps, lexical_search=False, lexical_exact=True, lexical_min_recall=1.0, native_fusion=False
    )


class MilvusStore(VectorStore):
    """A VPA store on Milvus (Lite or server) through ``pymilvus.MilvusClient``."""

    capabilities = contract_1_1(
        exact=True,  # FLAT index: brute-force cosine, the exact top-k, at any top_k, ties included
        max_batch_size=1000,  # rows per upsert request (further split to max_request_bytes)
        max_request_bytes=REQUEST_BYTES,
        max_top_k=MAX_TOP_K,
        persistent=True,
        eventually_consistent=False,  # consistency level Strong on every read
        heterogeneous_fields=True,  # one JSON field, typed keys: any type per key per record
        max_record_bytes=codec.TEXT_MAX_BYTES,  # VARCHAR text and the JSON field are 64 KiB each
        max_filter_terms=MAX_FILTER_TERMS,
        max_metadata_keys=MAX_METADATA_KEYS,
        max_page_size=MAX_PAGE_SIZE,  # a scroll page is one query: limit well under Milvus's 16,384
        scroll_filters=True,  # keyset pages by id, the filter in the same native expression
        native_update=False,  # Milvus updates no JSON field in place: read-modify-write (_update)
        # The default mode, Milvus Lite, has the BM25 function: lexical search by Milvus's BM25
        # on VPA's tokens (LEXICAL_MIN_RECALL of VPA's top-k), RRF fused by hybrid_search.
        lexical_search=True,
        lexical_exact=False,
        lexical_min_recall=LEXICAL_MIN_RECALL,
        native_fusion=True,
    )
    settings_class = MilvusSettings
    provider = "milvus"
    translate_error = staticmethod(errors.translate_error)

    @classmethod
    def declare(cls, settings: MilvusSettings) -> StoreCapabilities:
        """Milvus Lite has the BM25 function: lexical search is declared unless ``lexical=false``.
        A server's version is only known once connected, so a server store declares it up front
        only with ``lexical=true`` (and `_check_server` refuses a server older than 2.5); by
        default it is declared once a call has found the server to be 2.5 or later."""
        lite_mode = settings.uri is None or is_lite(settings.uri)
        if settings.lexical is True or (settings.lexical is None and lite_mode):
            return cls.capabilities
        return without_lexical(cls.capabilities)

    def __init__(self, uri: str, *, token: str | None = None, **options: Any) -> None:
        """A store on ``uri`` (a ``.db`` path: Milvus Lite; else a server); ``options`` are the
        other fields of `MilvusSettings`. No I/O here: the first call connects."""
        settings = MilvusSettings(uri=str(uri), **options)
        super().__init__(capabilities=self.declare(settings))
        self.settings = settings
        self.uri = str(uri)
        self.lite = is_lite(self.uri)
        self.timeout = float(settings.timeout)
        self._token = token
        self._client: Any = None
        self._lite_path: str | None = None
        #: Lite mode: rows written per collection since its last flush (see LITE_FLUSH_AFTER_ROWS).
        self._unflushed: dict[str, int] = {}
        #: Whether each Milvus collection opened or created has the BM25 field (`codec.has_lexical`).
        self._lexical: dict[str, bool] = {}
        #: Whether new collections get the BM25 field: Lite unless lexical=false; a server once its
        #: version is known (`_check_server`).
        self._engine_lexical = self.lite and settings.lexical is not False
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"MilvusStore({'lite' if self.lite else 'server'}, {redact_uri(self.uri)!r})"

    @classmethod
    def _resolve_settings(cls, settings: MilvusSettings, config: Any) -> MilvusSettings:
        """The URI the store will use (`store_uri`), so that `declared` knows Lite from a server."""
        return attrs.evolve(settings, uri=store_uri(settings, config))

    @classmethod
    def from_config(cls, config: Any) -> MilvusStore:
        """Milvus Lite under VPA_DATA_DIR, the server at VPA_VECTOR_DB_HOST/PORT, or ``uri``."""
        settings = cls.settings_from(config)
        not_applicable(config, "connection_pool_size",
                       "pymilvus multiplexes every call on one gRPC channel; there is no pool to size")
        options = attrs.asdict(settings)
        options.pop("uri")
        return cls(store_uri(settings, config), token=config.api_key, **options)

    # --- the client (called in worker threads) ---------------------------------------------------

    def _connected(self) -> Any:
        with self._lock:
            if self._closed:
                raise StoreError("this Milvus store is closed")
            if self._client is None:
                from pymilvus import MilvusClient

                if self.lite:
                    path = str(Path(self.uri).expanduser().resolve())
                    uri = lite.acquire(path, timeout=max(self.timeout, 60.0))
                    try:
                        self._client = MilvusClient(uri=uri, timeout=self.timeout)
                    except BaseException:
                        lite.release(path)
                        raise
                    self._lite_path = path
                else:
                    client = MilvusClient(
                        uri=self.uri,
                        token=self._token or "",
                        db_name=self.settings.db_name,
                        timeout=self.timeout,
                    )
                    try:
                        self._check_server(client)
                    except BaseException:
                        client.close()
                        raise
                    self._client = client
            return self._client

    def _check_server(self, client: Any) -> None:
        """A server's version decides lexical search: BM25 came with Milvus 2.5. Below it the store
        does not declare it (``lexical=true`` is then a `ConfigError`); from it, unless
        ``lexical=false``, it declares it from now on and new collections get the BM25 field."""
        wanted = self.settings.lexical
        if wanted is False:
            return
        version = str(client.get_server_version(timeout=self.timeout))
        found = re.search(r"(\d+)\.(\d+)", version)
        supported = found is not None and (int(found[1]), int(found[2])) >= LEXICAL_SERVER_VERSION
        if not supported:
            if wanted:
                raise ConfigError(
                    f"providers.milvus.lexical is true, but the Milvus server at {redact_uri(self.uri)} is "
                    f"{version or 'of an unknown version'}: its BM25 function needs Milvus 2.5 or later "
                    "(upgrade the server, or leave lexical unset)"
                )
            return
        self._engine_lexical = True
        if not self.capabilities.lexical_search:
            caps = type(self).capabilities
            self.refine_capabilities(
                lexical_search=True,
                lexical_exact=caps.lexical_exact,
                lexical_min_recall=caps.lexical_min_recall,
                native_fusion=caps.native_fusion,
            )

    def _disconnect(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
            lite_path, self._lite_path = self._lite_path, None
        try:
            if client is not None:
                client.close()
        finally:
            if lite_path is not None:
                lite.release(lite_path)

    def _ensure_loaded(self, client: Any, mname: str) -> None:
        from pymilvus.client.types import LoadState

        state = client.get_load_state(mname, timeout=self.timeout).get("state")
        if state != LoadState.Loaded:
            replicas = self.settings.replica_number
            kwargs = {"replica_number": replicas} if replicas else {}
            client.load_collection(mname, timeout=self.timeout, **kwargs)

    async def _close(self) -> None:
        await self.run_vendor("closing the store", self._disconnect)

    async def _health(self) -> str:
        await self.run_vendor(
            "health check", lambda: self._connected().list_collections(timeout=self.timeout)
        )
        return f"{'Milvus Lite' if self.lite else 'Milvus server'} at {redact_uri(self.uri)}"

    # --- collections -----------------------------------------------------------------------------

    async def _describe_collection(self, name: str) -> CollectionInfo | None:
        mname = milvus_name(name)

        def describe() -> CollectionInfo | None:
            client = self._connected()
            if not client.has_collection(mname, timeout=self.timeout):
                return None
            description = client.describe_collection(mname, timeout=self.timeout)
            info = codec.info_from_description(name, description)
            self._lexical[mname] = codec.has_lexical(description)
            self._ensure_loaded(client, mname)
            return info

        return await self.run_vendor(f"opening collection {name!r}", describe)

    async def _create_collection(self, info: CollectionInfo) -> None:
        mname = milvus_name(info.name)

        def create() -> None:
            client = self._connected()
            shards = self.settings.shards_num
            lexical = self._engine_lexical  # known once connected (a server's version)
            try:
                client.create_collection(
                    mname,
                    schema=codec.schema(info.dimension, lexical=lexical),
                    properties=codec.properties(info),
                    description=f"VPA collection {info.name}",
                    consistency_level="Strong",
                    timeout=self.timeout,
                    **({"num_shards": int(shards)} if shards else {}),
                )
            except Exception as exc:
                if "already exist" not in str(exc).lower():
                    raise
                # A concurrent creator won the race; fall through and make sure it is usable.
                description = client.describe_collection(mname)
                existing = codec.info_from_description(info.name, description)
                if existing.dimension != info.dimension:
                    raise
                lexical = codec.has_lexical(description)
            self._lexical[mname] = lexical
            try:
                # Milvus Lite builds FLAT at once; pymilvus's sync wait would sleep 0.5 s per collection.
                client.create_index(
                    mname,
                    codec.vector_index(lexical=lexical, lite=self.lite),
                    timeout=self.timeout,
                    sync=not self.lite,
                )
            except Exception as exc:
                if "already exist" not in str(exc).lower():
                    raise
            self._ensure_loaded(client, mname)

        await self.run_vendor(f"creating collection {info.name!r}", create)

    async def _list_collections(self) -> list[str]:
        def names() -> list[str]:
            client = self._connected()
            out = []
            for mname in client.list_collections(timeout=self.timeout):
                name = codec.vpa_name(mname)
                if name is None:
                    continue
                try:  # only VPA's collections: a shared server may hold other apps' too
                    props = client.describe_collection(mname, timeout=self.timeout).get("properties") or {}
                except Exception as exc:
                    if "not" in str(exc).lower() and "exist" in str(exc).lower():
                        continue  # dropped meanwhile
                    raise
                if codec.is_vpa_collection(props):
                    out.append(name)
            return out

        return await self.run_vendor("listing collections", names)

    async def _drop_collection(self, name: str) -> bool:
        mname = milvus_name(name)

        def drop() -> bool:
            client = self._connected()
            self._unflushed.pop(mname, None)
            self._lexical.pop(mname, None)
            if not client.has_collection(mname, timeout=self.timeout):
                return False
            client.drop_collection(mname, timeout=self.timeout)
            return True

        return await self.run_vendor(f"dropping collection {name!r}", drop)

    # --- records ---------------------------------------------------------------------------------

    def request_bytes(self, info: CollectionInfo, record: Record) -> int:
        """The default bound, plus room for each stored key's type prefix (``i_``, ``sx_``, ...) and
        escapes (`codec.typed_key`; a datetime's integer is no longer than its ``$date`` form)."""
        extra = sum(12 + len(codec.typed_key(codec.STR, key)) - len(key) for key in record.metadata)
        return super().request_bytes(info, record) + extra

    async def _upsert(self, info: CollectionInfo, records: list[Record]) -> None:
        mname = milvus_name(info.name)

        await self.run_vendor(
            f"upserting into {info.name!r}", lambda: self._write(mname, records), collection=info.name
        )

    def _write(self, mname: str, records: list[Record]) -> None:
        """Upsert one batch (worker thread), counting rows to flush in Lite mode. A collection
        with the BM25 field gets each text's `codec.lexical_form` beside it (the function derives
        the sparse vector from it, in the same write)."""
        client = self._connected()
        lexical = self._has_lexical(client, mname)
        client.upsert(mname, [codec.to_row(r, lexical) for r in records], timeout=self.timeout)
        if self.lite:
            self._unflushed[mname] = self._unflushed.get(mname, 0) + len(records)

    def _has_lexical(self, client: Any, mname: str) -> bool:
        """Whether collection ``mname`` has the BM25 field (worker thread; known from opening or
        creating it, else described again)."""
        known = self._lexical.get(mname)
        if known is None:
            description = client.describe_collection(mname, timeout=self.timeout)
            known = self._lexical[mname] = codec.has_lexical(description)
        return known

    def _flush_if_due(self, client: Any, mname: str, after: int = LITE_FLUSH_AFTER_ROWS) -> None:
        """Milvus Lite: flush a collection with ``after`` or more rows written since its last
        flush, before a read that scans it. A dense search or a scroll page waits for
        `LITE_FLUSH_AFTER_ROWS` (Lite reads unflushed rows by brute force, slowly); a lexical
        search for one row (`LEXICAL_FLUSH_AFTER_ROWS`, see there)."""
        if self.lite and self._unflushed.get(mname, 0) >= after:
            self._unflushed[mname] = 0
            client.flush(mname, timeout=self.timeout)

    async def _query(
        self, info: CollectionInfo, vector: np.ndarray, top_k: int, node: Node | None
    ) -> list[Hit]:
        mname = milvus_name(info.name)
        expression = to_native(node)

        def search() -> list[Hit]:
            client = self._connected()
            self._flush_if_due(client, mname)
            result = client.search(
                mname,
                data=[vector.tolist()],
                filter=expression,
                limit=top_k,
                output_fields=codec.HIT_FIELDS,
                search_params={"metric_type": "COSINE", "params": {}},
                anns_field=VECTOR_FIELD,
                consistency_level="Strong",
                timeout=self.timeout,
            )
            hits = [codec.hit_from_result(hit) for hit in (result[0] if result else [])]
            hits.sort(key=lambda h: -h.score)
            return hits

        return await self.run_vendor(f"searching {info.name!r}", search, collection=info.name)

    # --- lexical and hybrid search -----------------------------------------------------------------

    def _lexical_collection(self, client: Any, name: str, mname: str) -> None:
        """Refuse (`UnsupportedOperation`, naming the fix) a collection without the BM25 field —
        one created before vpa-milvus 0.3.2, with ``lexical=false`` or on a server older than
        2.5: it cannot answer by words, and a dense-only answer would be a silent downgrade."""
        if not self._has_lexical(client, mname):
            raise UnsupportedOperation(
                f"collection {name!r} has no BM25 field (it was created before vpa-milvus 0.3.2, with "
                "lexical=false, or on a Milvus server older than 2.5), so it cannot answer lexical or "
                f"hybrid search: copy it into a new collection, which gets the field (vpa migrate --from "
                f"milvus:{name} --to milvus:{name}_v2, no re-embedding), or re-create it and ingest again"
            )

    def _lexical_request(self, terms: list[str], limit: int, expression: str) -> dict[str, Any]:
        return {
            "data": [codec.lexical_query_form(terms)],
            "anns_field": codec.LEXICAL_FIELD,
            "limit": limit,
            "expression": expression,
            # VPA's k1 and b are the index's (codec.vector_index); the metric is the field's.
            "params": {"metric_type": "BM25", "params": {}},
        }

    async def _lexical_query(
        self, info: CollectionInfo, text: str, terms: list[str], top_k: int, node: Node | None
    ) -> list[Hit]:
        """Milvus's BM25 search on the sparse field: the query is VPA's distinct tokens of
        ``text`` (`codec.lexical_query_form`), the filter the same native expression as a dense
        search's, so the engine filters (the statistics stay the collection's)."""
        mname = milvus_name(info.name)
        request = self._lexical_request(terms, top_k, to_native(node))

        def search() -> list[Hit]:
            client = self._connected()
            self._lexical_collection(client, info.name, mname)
            self._flush_if_due(client, mname, LEXICAL_FLUSH_AFTER_ROWS)
            result = client.search(
                mname,
                data=request["data"],
                filter=request["expression"],
                limit=top_k,
                output_fields=codec.HIT_FIELDS,
                search_params=request["params"],
                anns_field=request["anns_field"],
                consistency_level="Strong",
                timeout=self.timeout,
            )
            hits = [codec.scored_hit(hit) for hit in (result[0] if result else [])]
            hits.sort(key=lambda h: -h.score)
            return hits

        return await self.run_vendor(f"searching {info.name!r} by words", search, collection=info.name)

    async def _hybrid_query(
        self,
        info: CollectionInfo,
        vector: np.ndarray,
        text: str,
        terms: list[str],
        top_k: int,
        node: Node | None,
        fusion: str,
        alpha: float,
    ) -> list[Hit]:
        """RRF: one ``hybrid_search`` — the dense and the BM25 request, each with the filter and
        `vpa.lexical.candidates_for` hits, fused by ``RRFRanker(60)``, whose score is VPA's
        ``sum 1 / (60 + rank)`` over the two rankings (rank from 1). Linear fusion is VPA's
        (the base class, from the same two searches): Milvus's ``WeightedRanker`` normalises each
        score by an arctangent, not by the min-max of VPA's ``alpha`` fusion, so it would rank
        differently for the same alpha."""
        if fusion != "rrf":
            return await super()._hybrid_query(info, vector, text, terms, top_k, node, fusion, alpha)
        from pymilvus import AnnSearchRequest, RRFRanker
        from vpa.lexical import RRF_K, candidates_for

        mname = milvus_name(info.name)
        expression = to_native(node)
        depth = candidates_for(top_k, self.capabilities.max_top_k)
        lexical = self._lexical_request(terms, depth, expression)

        def search() -> list[Hit]:
            client = self._connected()
            self._lexical_collection(client, info.name, mname)
            self._flush_if_due(client, mname, LEXICAL_FLUSH_AFTER_ROWS)
            requests = [
                AnnSearchRequest(
                    data=[vector.tolist()],
                    anns_field=VECTOR_FIELD,
                    param={"metric_type": "COSINE", "params": {}},
                    limit=depth,
                    expr=expression or None,
                ),
                AnnSearchRequest(
                    data=lexical["data"],
                    anns_field=lexical["anns_field"],
                    param=lexical["params"],
                    limit=depth,
                    expr=expression or None,
                ),
            ]
            result = client.hybrid_search(
                mname,
                requests,
                ranker=RRFRanker(RRF_K),
                limit=top_k,
                output_fields=codec.HIT_FIELDS,
                consistency_level="Strong",
                timeout=self.timeout,
            )
            hits = [codec.scored_hit(hit) for hit in (result[0] if result else [])]
            hits.sort(key=lambda h: -h.score)
            return hits

        return await self.run_vendor(f"hybrid search of {info.name!r}", search, collection=info.name)

    async def _get(self, info: CollectionInfo, ids: list[str]) -> list[Record]:
        mname = milvus_name(info.name)

        def get() -> list[Record]:
            client = self._connected()
            out = []
            for start in range(0, len(ids), IDS_PER_CALL):
                chunk = ids[start : start + IDS_PER_CALL]
                rows = client.query(
                    mname,
                    filter=id_in(chunk),
                    output_fields=codec.RECORD_FIELDS,
                    limit=len(chunk),
                    consistency_level="Strong",
                    timeout=self.timeout,
                )
                out.extend(codec.records_from_rows(rows))
            return out

        return await self.run_vendor(f"reading from {info.name!r}", get, collection=info.name)

    async def _delete(self, info: CollectionInfo, ids: list[str] | None, node: Node | None) -> int:
        """Milvus reports the ids it was *sent*, so the matching ids are read first (Strong), then
        deleted by id *and* the filter: a record rewritten meanwhile to no longer match stays."""
        mname = milvus_name(info.name)
        expression = to_native(node)

        def condition(some: list[str]) -> str:
            return id_in(some) if not expression else f"({id_in(some)}) and ({expression})"

        def delete() -> int:
            client = self._connected()

            def remove(where: str, limit: int) -> int:
                rows = client.query(
                    mname,
                    filter=where,
                    output_fields=[ID_FIELD],
                    limit=limit,
                    consistency_level="Strong",
                    timeout=self.timeout,
                )
                found = [row[ID_FIELD] for row in rows]
                if found:
                    client.delete(mname, filter=condition(found), timeout=self.timeout)
                return len(found)

            removed = 0
            if ids is not None:
                for start in range(0, len(ids), IDS_PER_CALL):
                    chunk = ids[start : start + IDS_PER_CALL]
                    removed += remove(condition(chunk), len(chunk))
                return removed
            while True:  # by filter alone: page through the matches (Strong reads see our deletes)
                found = remove(expression, IDS_PER_CALL)
                removed += found
                if found < IDS_PER_CALL:
                    return removed

        return await self.run_vendor(f"deleting from {info.name!r}", delete, collection=info.name)

    async def _count(self, info: CollectionInfo, node: Node | None) -> int:
        mname = milvus_name(info.name)
        expression = to_native(node)

        def count() -> int:
            rows = self._connected().query(
                mname,
                filter=expression,
                output_fields=["count(*)"],
                consistency_level="Strong",
                timeout=self.timeout,
            )
            return int(rows[0]["count(*)"]) if rows else 0

        return await self.run_vendor(f"counting {info.name!r}", count, collection=info.name)

    # --- contract 1.1 ----------------------------------------------------------------------------

    def _rows(
        self, mname: str, where: str, limit: int, fields: list[str], *, ordered: bool
    ) -> list[dict[str, Any]]:
        """At most ``limit`` rows matching ``where`` (worker thread). ``ordered``: the *smallest*
        ``limit`` ids that match, in ascending id order — what the ``iterator`` flag asks for (the
        flag pymilvus' ``query_iterator`` sends, whose ``pk > last`` cursor relies on the same
        order: Milvus Lite sorts the matches by primary key before the limit, a server orders each
        segment's matches by key and merges segments by key). Without the flag a limited
        query returns any ``limit`` matches (Milvus Lite: in storage order). With the flag pymilvus
        sends no guarantee timestamp of its own: the server reads at the collection's consistency
        level, which the store creates as Strong. A page that comes back out of order is a
        `StoreError`, never a silently skipped record."""
        extra = {"iterator": "True"} if ordered else {}
        rows = self._connected().query(
            mname,
            filter=where,
            output_fields=fields,
            limit=limit,
            consistency_level="Strong",
            timeout=self.timeout,
            **extra,
        )
        if ordered and any(a >= b for a, b in itertools.pairwise(codec.row_ids(rows))):
            raise StoreError(
                "Milvus returned a keyset page out of primary-key order; scroll and update need a "
                "Milvus whose iterator queries are ordered by primary key (Milvus Lite 3.2+, a server "
                "with pymilvus' query_iterator support)"
            )
        return rows

    async def _scroll(
        self, info: CollectionInfo, node: Node | None, limit: int, after: str | None, with_vectors: bool
    ) -> tuple[list[Record], str | None]:
        """Keyset pagination on the primary key, as pymilvus' ``query_iterator`` does, with a
        position that is only data (the last id of the page): ``id > "<last id>" and
        (<filter>)``, the first ``limit`` ids in order, the filter evaluated by Milvus. Each page is
        one Strong read, so a record that exists for the whole scroll is on exactly one page
        whatever is written or deleted meanwhile, and the position resumes in any process. A page
        reads one row more than it returns: the next position is None as soon as nothing matching
        is left, with no empty last page to ask for."""
        mname = milvus_name(info.name)
        where = id_after(after, to_native(node))
        fields = codec.RECORD_FIELDS if with_vectors else codec.RECORD_FIELDS_NO_VECTOR

        def page() -> tuple[list[Record], str | None]:
            self._flush_if_due(self._connected(), mname)
            rows = self._rows(mname, where, limit + 1, fields, ordered=True)
            following = codec.row_ids(rows)[limit - 1] if len(rows) > limit else None
            # Converted whole, column by column (`codec.records_from_rows`); slicing the rows
            # first would have pymilvus decode each row's vector and JSON on its own.
            return codec.records_from_rows(rows)[:limit], following

        return await self.run_vendor(f"scrolling {info.name!r}", page, collection=info.name)

    async def _update(
        self,
        info: CollectionInfo,
        ids: list[str] | None,
        node: Node | None,
        set: dict[str, Any],  # the contract's name
        unset: list[str],
    ) -> int:
        """A read-modify-write: Milvus has no in-place update of a JSON field (an upsert, partial
        or not, replaces the whole field, so ``native_update`` is false). The matching records are
        read with their vectors — ``id in [...] and (<filter>)`` for ids, keyset pages of the
        filter otherwise (each page after the last id rewritten, so a rewritten record is never
        read twice) — ``set``/``unset`` merged into their metadata, the merged records checked
        against every declared bound as an upsert is, and written back with the vector (the float32
        values read) and text they had, ``UPDATE_BATCH`` at a time. One read instead of the base
        class's two (ids, then records); a concurrent upsert of the same record between the read
        and the write may be overwritten, and a record that a batch would take past a declared
        bound raises `LimitExceeded` with the batches before it written."""
        mname = milvus_name(info.name)
        expression = to_native(node)

        def matching() -> Iterator[list[dict[str, Any]]]:
            if ids is not None:
                for part in batched(ids, UPDATE_BATCH):
                    where = id_in(part) if not expression else f"({id_in(part)}) and ({expression})"
                    yield self._rows(mname, where, len(part), codec.RECORD_FIELDS, ordered=False)
                return
            last: str | None = None
            while True:
                where = id_after(last, expression)
                rows = self._rows(mname, where, UPDATE_BATCH, codec.RECORD_FIELDS, ordered=True)
                yield rows
                if len(rows) < UPDATE_BATCH:
                    return
                last = codec.row_ids(rows)[-1]

        def update() -> int:
            changed = 0
            for rows in matching():
                merged = []
                for record in codec.records_from_rows(rows):
                    metadata = {k: v for k, v in record.metadata.items() if k not in unset}
                    metadata.update(set)
                    merged.append(Record(record.id, record.vector, record.text, metadata))
                if not merged:
                    continue
                batch = self._validate(info, merged)  # every declared bound, before the write
                for piece in self.split_batch(info, batch):
                    self._write(mname, piece)
                changed += len(batch)
            return changed

        return await self.run_vendor(f"updating {info.name!r}", update, collection=info.name)

"""The stand-in's in-memory model of Pinecone serverless indexes.

One `IndexState` per index. Writes are appended to a per-namespace log and given a log sequence
number (LSN), as Pinecone does; they become visible to reads only ``lag`` seconds after they were
committed, in log order, which is how the stand-in reproduces Pinecone's eventual consistency.
Every read (query, fetch, fetch by metadata, list, stats) sees the same reconciled state and
reports the highest reconciled LSN of the namespace, so a client can tell when its writes landed.

Limits and error texts follow Pinecone's documentation ("Limits", "Understanding metadata"):
1,000 vectors and 2 MB per upsert request, 40 KB of metadata per vector, dimension up to 20,000,
``top_k`` up to 10,000 (1,000 when values or metadata are included), 1,000 ids per fetch or
delete request, IDs of 1-512 ASCII characters. Metadata numbers are stored as float64, so an
integer comes back as a float; ``null`` metadata values are stripped on write.

Paging ("List record IDs", "Fetch by metadata"): ``list`` returns ids in sorted order, at most
100 a page, and a token naming the last id returned (``skip_past``, as Pinecone's tokens do), so
the next page starts after it whatever was written or deleted meanwhile; ``fetch_by_metadata``
pages the same way (its token's form is not documented: keyset by id is the stand-in's
assumption). Updates ("Update records"): by id, or by metadata filter (at most 100,000 records a
request, ``dryRun`` only counts); ``setMetadata`` adds or replaces keys and never removes one;
the merged metadata must still fit in 40 KB.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .filters import FilterError, Predicate, compile_filter

MAX_UPSERT_VECTORS = 1000
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_METADATA_BYTES = 40 * 1024
MAX_TOP_K = 10_000
MAX_TOP_K_WITH_DATA = 1000
MAX_IDS_PER_REQUEST = 1000
MAX_ID_LENGTH = 512
MAX_DIMENSION = 20_000
MAX_LIST_LIMIT = 100
MAX_FETCH_BY_METADATA_LIMIT = 10_000
MAX_UPDATE_RECORDS = 100_000
#: Pinecone's limit of non-zero values in one sparse vector (docs: "Limits", sparse indexes).
MAX_SPARSE_VALUES = 2048
MAX_SPARSE_INDEX = 2**32 - 1
DEFAULT_NAMESPACE = "__default__"


class ApiFailure(Exception):
    """An error the stand-in answers with an HTTP status and Pinecone's error body."""

    CODES = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "FORBIDDEN",
        404: "NOT_FOUND",
        409: "ALREADY_EXISTS",
        413: "OUT_OF_RANGE",
    }

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        return {
            "error": {"code": self.CODES.get(self.status, "UNKNOWN"), "message": self.message},
            "status": self.status,
        }


def bad_request(message: str) -> ApiFailure:
    return ApiFailure(400, message)


def _filter(spec: Any) -> Predicate:
    try:
        return compile_filter(spec)
    except FilterError as exc:
        raise bad_request(f"Invalid filter: {exc}") from None


def check_vector_id(value: Any, where: str = "id") -> str:
    if not isinstance(value, str) or not value:
        raise bad_request(f"Invalid {where}: vector IDs must be non-empty strings")
    if len(value) > MAX_ID_LENGTH:
        raise bad_request(f"Invalid {where}: ID length {len(value)} exceeds the maximum of {MAX_ID_LENGTH}")
    if not value.isascii() or "\x00" in value:
        raise bad_request(f"Invalid {where}: vector IDs must be ASCII and must not contain NUL")
    return value


def normalise_metadata(vector_id: str, metadata: Any) -> dict[str, Any]:
    """Validate metadata as Pinecone does; numbers become float64, nulls are stripped."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise bad_request(f"Metadata of vector {vector_id!r} must be a JSON object")
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if value is None:
            continue  # Pinecone strips null values rather than refusing them
        if isinstance(value, (bool, str)):
            out[key] = value
        elif isinstance(value, int | float):
            out[key] = float(value)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = list(value)
        else:
            raise bad_request(
                f"Metadata value for field {key!r} of vector {vector_id!r} must be a string, number, "
                "boolean or list of strings"
            )
    size = len(json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise bad_request(
            f"Metadata size is {size} bytes, which exceeds the limit of {MAX_METADATA_BYTES} bytes per vector"
        )
    return out


class Stored:
    __slots__ = ("metadata", "seq", "sparse", "values")

    def __init__(
        self, values: np.ndarray, metadata: dict[str, Any], seq: int, sparse: dict[int, float] | None = None
    ) -> None:
        self.values = values
        self.metadata = metadata
        self.seq = seq
        self.sparse = sparse

    def as_json(self, vector_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {"id": vector_id, "values": self.values.tolist()}
        if self.sparse is not None:
            out["sparseValues"] = {"indices": list(self.sparse), "values": list(self.sparse.values())}
        if self.metadata:
            out["metadata"] = self.metadata
        return out


class Namespace:
    def __init__(self) -> None:
        self.records: dict[str, Stored] = {}
        self.committed_lsn = 0
        self.visible_lsn = 0


class IndexState:
    """One serverless index: its definition, its namespaces and its write log."""

    def __init__(
        self,
        name: str,
        dimension: int | None,
        metric: str,
        cloud: str,
        region: str,
        tags: dict[str, str] | None,
        deletion_protection: str,
        lag: float,
    ) -> None:
        self.name = name
        self.dimension = dimension
        self.metric = metric
        self.cloud = cloud
        self.region = region
        self.tags = tags
        self.deletion_protection = deletion_protection
        self.lag = lag
        #: A sparse index (``vector_type="sparse"``: schema field ``_sparse_values``) has no
        #: dimension, holds only sparse vectors and scores queries by dot product.
        self.sparse = dimension is None
        self.host = ""
        self.deleted = False
        #: answer reads of a namespace that does not exist with 404 (deletes always do)
        self.strict_namespaces = False
        self.described = False  # the create response says Initializing, the first describe Ready
        self.namespaces: dict[str, Namespace] = {}
        self.log: deque[tuple[float, str, int, Callable[[Namespace], None]]] = deque()
        self.lock = threading.RLock()
        self.seq = itertools.count()

    # --- control plane view --------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        ready = self.described
        return {
            "name": self.name,
            "host": self.host,
            "status": {"ready": ready, "state": "Ready" if ready else "Initializing"},
            "schema": {
                "fields": (
                    {"_sparse_values": {"type": "sparse_vector"}}
                    if self.sparse
                    else {
                        "_values": {
                            "type": "dense_vector",
                            "dimension": self.dimension,
                            "metric": self.metric,
                        }
                    }
                )
            },
            "deployment": {"deployment_type": "managed", "cloud": self.cloud, "region": self.region},
            "deletion_protection": self.deletion_protection,
            "read_capacity": {"mode": "OnDemand", "status": {"state": "Ready"}},
            "tags": self.tags,
        }

    # --- the log -------------------------------------------------------------------------------

    def _namespace(self, name: str) -> Namespace:
        ns = self.namespaces.get(name)
        if ns is None:
            ns = self.namespaces[name] = Namespace()
        return ns

    def _commit(self, namespace: str, apply: Callable[[Namespace], None]) -> int:
        with self.lock:
            ns = self._namespace(namespace)
            ns.committed_lsn += 1
            self.log.append((time.monotonic() + self.lag, namespace, ns.committed_lsn, apply))
            lsn = ns.committed_lsn
        self.reconcile()
        return lsn

    def reconcile(self) -> None:
        """Apply, in log order, every write whose visibility delay has passed."""
        now = time.monotonic()
        with self.lock:
            while self.log and self.log[0][0] <= now:
                _, namespace, lsn, apply = self.log.popleft()
                ns = self._namespace(namespace)
                apply(ns)
                ns.visible_lsn = lsn

    def _read(self, namespace: str, strict: bool = False) -> Namespace | None:
        self.reconcile()
        ns = self.namespaces.get(namespace)
        if strict and not _exists(ns):
            raise ApiFailure(404, f"Namespace {namespace} not found")
        return ns

    def visible_lsn(self, namespace: str) -> int:
        ns = self._read(namespace)
        return ns.visible_lsn if ns is not None else 0

    # --- writes --------------------------------------------------------------------------------

    def upsert(self, namespace: str, vectors: Any) -> tuple[int, int]:
        if not isinstance(vectors, list):
            raise bad_request("vectors must be an array")
        if len(vectors) > MAX_UPSERT_VECTORS:
            raise bad_request(
                f"Batch size {len(vectors)} exceeds the maximum of {MAX_UPSERT_VECTORS} vectors "
                "per upsert request"
            )
        prepared: list[tuple[str, np.ndarray, dict[str, Any]]] = []
        for item in vectors:
            if not isinstance(item, dict):
                raise bad_request("each vector must be a JSON object")
            vector_id = check_vector_id(item.get("id"))
            sparse = None
            if self.sparse:
                if item.get("values"):
                    raise bad_request("Dense values are not supported by a sparse index")
                values = np.zeros(0, dtype=np.float32)
                sparse = check_sparse(item.get("sparseValues"), f"vector {vector_id!r}")
            elif item.get("sparseValues") is not None:
                raise bad_request("Sparse values are not supported by a dense index with the cosine metric")
            else:
                values = self.check_values(item.get("values"), f"vector {vector_id!r}")
            prepared.append((vector_id, values, normalise_metadata(vector_id, item.get("metadata")), sparse))

        def apply(ns: Namespace) -> None:
            for vector_id, values, metadata, sparse in prepared:
                old = ns.records.get(vector_id)
                seq = old.seq if old is not None else next(self.seq)
                ns.records[vector_id] = Stored(values, metadata, seq, sparse)

        return len(prepared), self._commit(namespace, apply)

    def check_values(self, values: Any, where: str) -> np.ndarray:
        if not isinstance(values, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        ):
            raise bad_request(f"Values of {where} must be an array of numbers")
        if len(values) != self.dimension:
            raise bad_request(
                f"Vector dimension {len(values)} does not match the dimension of the index {self.dimension}"
            )
        array = np.asarray(values, dtype=np.float32)
        if not np.isfinite(array).all():
            raise bad_request(f"Values of {where} must be finite")
        if not array.any():
            raise bad_request("Dense vectors must contain at least one non-zero value")
        return array

    def delete(self, namespace: str, body: Mapping[str, Any]) -> int:
        if body.get("filter") is not None:
            if not body["filter"]:
                raise bad_request("Delete with empty metadata filter is not allowed")
            predicate = _filter(body["filter"])

            def apply(ns: Namespace) -> None:
                for vector_id in [i for i, r in ns.records.items() if predicate(r.metadata)]:
                    del ns.records[vector_id]

        elif body.get("deleteAll"):

            def apply(ns: Namespace) -> None:
                ns.records.clear()

        elif body.get("ids") is not None:
            ids = body["ids"]
            if not isinstance(ids, list) or not ids:
                raise bad_request("ids must be a non-empty array")
            if len(ids) > MAX_IDS_PER_REQUEST:
                raise bad_request(f"Cannot delete more than {MAX_IDS_PER_REQUEST} ids in one request")
            for vector_id in ids:
                check_vector_id(vector_id, "ids")

            def apply(ns: Namespace) -> None:
                for vector_id in ids:
                    ns.records.pop(vector_id, None)

        else:
            raise bad_request("Must specify one of ids, deleteAll or filter")
        with self.lock:  # a namespace exists only while it holds records (or writes are pending)
            self._read(namespace, strict=True)
            return self._commit(namespace, apply)

    def update(self, body: Mapping[str, Any]) -> tuple[dict[str, Any], int | None]:
        """``POST /vectors/update``: one record by ``id`` (values and/or metadata), or every record
        matching ``filter`` (metadata only). ``setMetadata`` is merged into the stored metadata:
        the keys it names are added or replaced, every other key stays — no key can be removed.
        A by-filter update is matched against the visible records when it arrives (its
        ``matchedRecords``; at most `MAX_UPDATE_RECORDS`) and applied to them, in log order, when
        it becomes visible; ``dryRun`` only counts. A by-id update of an id that does not exist
        changes nothing and is not an error; it reports no count."""
        namespace = _namespace_of(body)
        vector_id, spec = body.get("id"), body.get("filter")
        if (vector_id is None) == (spec is None):
            raise bad_request("Exactly one of id or filter must be provided")
        values = body.get("values")
        if body.get("sparseValues") is not None:
            raise bad_request("Sparse values are not supported by a dense index with the cosine metric")
        set_metadata = body.get("setMetadata")
        if spec is not None:
            if not spec:
                raise bad_request("Update with empty metadata filter is not allowed")
            if values is not None:
                raise bad_request("Vector values cannot be updated by metadata filter")
            predicate = _filter(spec)
        else:
            check_vector_id(vector_id)
        if set_metadata is None and values is None:
            raise bad_request("Must specify values or setMetadata to update")
        changes = normalise_metadata(vector_id or "update", set_metadata)
        array = self.check_values(values, f"vector {vector_id!r}") if values is not None else None
        with self.lock:
            ns = self._read(namespace)
            records = ns.records if ns is not None else {}
            if spec is not None:
                targets = [i for i, r in sorted(records.items()) if predicate(r.metadata)]
                targets = targets[:MAX_UPDATE_RECORDS]
            else:
                targets = [vector_id]
            for target in targets:  # the merged metadata must fit, as on upsert (all or nothing)
                if target in records:
                    normalise_metadata(target, {**records[target].metadata, **changes})
            response: dict[str, Any] = {} if spec is None else {"matchedRecords": len(targets)}
            if body.get("dryRun") and spec is not None:
                return response, None

            def apply(ns: Namespace) -> None:
                for target in targets:
                    old = ns.records.get(target)
                    if old is not None:
                        values = array if array is not None else old.values
                        ns.records[target] = Stored(values, {**old.metadata, **changes}, old.seq, old.sparse)

            return response, self._commit(namespace, apply)

    def delete_namespace(self, namespace: str) -> None:
        with self.lock:
            self._read(namespace, strict=True)
        self._commit(namespace, lambda ns: ns.records.clear())

    # --- reads ---------------------------------------------------------------------------------

    def query(self, body: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        namespace = _namespace_of(body)
        top_k = body.get("topK")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise bad_request(f"topK must be an integer between 1 and {MAX_TOP_K}")
        include_values = bool(body.get("includeValues"))
        include_metadata = bool(body.get("includeMetadata"))
        if (include_values or include_metadata) and top_k > MAX_TOP_K_WITH_DATA:
            raise bad_request(
                f"top_k must be at most {MAX_TOP_K_WITH_DATA} when includeValues or includeMetadata is true"
            )
        if body.get("sparseVector") is not None and not self.sparse:
            raise bad_request("Sparse vectors are not supported by a dense index with the cosine metric")
        if self.sparse:
            if body.get("vector") is not None or body.get("id") is not None:
                raise bad_request("A sparse index is queried with sparseVector only")
            return self._sparse_query(namespace, body, top_k, include_values, include_metadata)
        predicate = _filter(body["filter"]) if body.get("filter") is not None else None
        with self.lock:
            ns = self._read(namespace, strict=self.strict_namespaces)
            if body.get("vector") is not None:
                if body.get("id") is not None:
                    raise bad_request("Cannot provide both vector and id")
                query = self.check_values(body["vector"], "the query vector")
            elif body.get("id") is not None:
                stored = ns.records.get(body["id"]) if ns is not None else None
                if stored is None:
                    raise bad_request(f"Vector with id {body['id']!r} not found in namespace {namespace!r}")
                query = stored.values
            else:
                raise bad_request("Either vector or id must be provided")
            rows = [
                (vid, r)
                for vid, r in (ns.records.items() if ns is not None else [])
                if predicate is None or predicate(r.metadata)
            ]
            lsn = ns.visible_lsn if ns is not None else 0
        matches = []
        if rows:
            matrix = np.stack([r.values for _, r in rows]).astype(np.float64)
            q = query.astype(np.float64)
            scores = self._scores(matrix, q)
            order = sorted(range(len(rows)), key=lambda i: (-scores[i], rows[i][1].seq))[:top_k]
            for i in order:
                vector_id, stored = rows[i]
                match: dict[str, Any] = {"id": vector_id, "score": float(scores[i])}
                if include_values:
                    match["values"] = stored.values.tolist()
                if include_metadata and stored.metadata:
                    match["metadata"] = stored.metadata
                matches.append(match)
        response = {
            "matches": matches,
            "namespace": namespace,
            "usage": {"readUnits": max(1, len(rows) // 1000)},
        }
        return response, lsn

    def _sparse_query(
        self,
        namespace: str,
        body: Mapping[str, Any],
        top_k: int,
        include_values: bool,
        include_metadata: bool,
    ) -> tuple[dict[str, Any], int]:
        """A sparse index's query: the dot product of the query's and each record's sparse values;
        only records that share a term with the query (a positive score) are matches."""
        query = check_sparse(body.get("sparseVector"), "the query's sparseVector")
        predicate = _filter(body["filter"]) if body.get("filter") is not None else None
        with self.lock:
            ns = self._read(namespace, strict=self.strict_namespaces)
            scored = []
            for vid, r in ns.records.items() if ns is not None else []:
                if predicate is not None and not predicate(r.metadata):
                    continue
                score = sum(value * r.sparse.get(index, 0.0) for index, value in query.items())
                if score > 0:
                    scored.append((score, r.seq, vid, r))
            lsn = ns.visible_lsn if ns is not None else 0
        scored.sort(key=lambda item: (-item[0], item[1]))
        matches = []
        for score, _, vid, r in scored[:top_k]:
            match: dict[str, Any] = {"id": vid, "score": float(score)}
            if include_values:
                match["sparseValues"] = r.as_json(vid)["sparseValues"]
            if include_metadata and r.metadata:
                match["metadata"] = r.metadata
            matches.append(match)
        return {"matches": matches, "namespace": namespace, "usage": {"readUnits": 1}}, lsn

    def _scores(self, matrix: np.ndarray, q: np.ndarray) -> list[float]:
        if self.metric == "cosine":
            norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(q)
            return np.clip(matrix @ q / norms, -1.0, 1.0).tolist()
        if self.metric == "dotproduct":
            return (matrix @ q).tolist()
        return (-np.linalg.norm(matrix - q, axis=1)).tolist()  # euclidean: reported as distance order

    def fetch(self, namespace: str, ids: list[str]) -> dict[str, Any]:
        if not ids:
            raise bad_request("ids must contain at least one id")
        if len(ids) > MAX_IDS_PER_REQUEST:
            raise bad_request(f"Cannot fetch more than {MAX_IDS_PER_REQUEST} ids in one request")
        with self.lock:
            ns = self._read(namespace, strict=self.strict_namespaces)
            found = {i: ns.records[i].as_json(i) for i in ids if ns is not None and i in ns.records}
        return {"vectors": found, "namespace": namespace, "usage": {"readUnits": 1}}

    def fetch_by_metadata(self, body: Mapping[str, Any]) -> dict[str, Any]:
        namespace = _namespace_of(body)
        if not body.get("filter"):
            raise bad_request("Empty filter provided for fetch by metadata request")
        predicate = _filter(body["filter"])
        limit = body.get("limit", 100)
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= MAX_FETCH_BY_METADATA_LIMIT
        ):
            raise bad_request(f"limit must be between 1 and {MAX_FETCH_BY_METADATA_LIMIT}")
        after = _decode_token(body.get("paginationToken"), None)
        with self.lock:
            ns = self._read(namespace, strict=self.strict_namespaces)
            ids = sorted(
                i for i, r in (ns.records.items() if ns is not None else []) if predicate(r.metadata)
            )
            ids = [i for i in ids if after is None or i > after]
            page = ids[:limit]
            vectors = {i: ns.records[i].as_json(i) for i in page} if ns is not None else {}
        out: dict[str, Any] = {"vectors": vectors, "namespace": namespace, "usage": {"readUnits": 1}}
        if len(ids) > limit:
            out["pagination"] = {"next": _encode_token(page[-1], None)}
        return out

    def list_ids(self, namespace: str, prefix: str, limit: int, token: str | None) -> dict[str, Any]:
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise bad_request(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        after = _decode_token(token, prefix)
        with self.lock:
            ns = self._read(namespace, strict=self.strict_namespaces)
            ids = sorted(i for i in (ns.records if ns is not None else ()) if i.startswith(prefix))
        ids = [i for i in ids if after is None or i > after]
        page = ids[:limit]
        out: dict[str, Any] = {
            "vectors": [{"id": i} for i in page],
            "namespace": namespace,
            "usage": {"readUnits": 1},
        }
        if len(ids) > limit:
            out["pagination"] = {"next": _encode_token(page[-1], prefix)}
        return out

    def stats(self, body: Mapping[str, Any]) -> dict[str, Any]:
        predicate = _filter(body["filter"]) if body.get("filter") is not None else None
        self.reconcile()
        with self.lock:
            namespaces = {}
            for name, ns in self.namespaces.items():
                count = sum(1 for r in ns.records.values() if predicate is None or predicate(r.metadata))
                if count:
                    namespaces[name or DEFAULT_NAMESPACE] = {"vectorCount": count}
        return {
            "namespaces": namespaces,
            **({} if self.sparse else {"dimension": self.dimension}),
            "indexFullness": 0.0,
            "totalVectorCount": sum(n["vectorCount"] for n in namespaces.values()),
            "metric": self.metric,
            "vectorType": "sparse" if self.sparse else "dense",
        }


def check_sparse(spec: Any, where: str) -> dict[int, float]:
    """Sparse values as Pinecone checks them: indices unique unsigned 32-bit integers, values
    finite, the same count of each, from 1 to `MAX_SPARSE_VALUES`."""
    if not isinstance(spec, dict):
        raise bad_request(f"{where}: sparse values must be an object with indices and values")
    indices, values = spec.get("indices"), spec.get("values")
    if not isinstance(indices, list) or not isinstance(values, list) or len(indices) != len(values):
        raise bad_request(f"{where}: sparse indices and values must be arrays of the same length")
    if not 1 <= len(indices) <= MAX_SPARSE_VALUES:
        raise bad_request(f"{where}: a sparse vector holds 1 to {MAX_SPARSE_VALUES} non-zero values")
    out: dict[int, float] = {}
    for index, value in zip(indices, values, strict=True):
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_SPARSE_INDEX:
            raise bad_request(f"{where}: sparse indices must be unsigned 32-bit integers")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise bad_request(f"{where}: sparse values must be finite numbers")
        if index in out:
            raise bad_request(f"{where}: duplicate sparse index {index}")
        out[index] = float(value)
    return out


def _exists(ns: Namespace | None) -> bool:
    return ns is not None and (bool(ns.records) or ns.committed_lsn > ns.visible_lsn)


def _namespace_of(body: Mapping[str, Any]) -> str:
    namespace = body.get("namespace") or ""
    if not isinstance(namespace, str):
        raise bad_request("namespace must be a string")
    return namespace


def _encode_token(last_id: str, prefix: str | None) -> str:
    """A pagination token as Pinecone's ``list`` hands them out: base64 of a JSON object naming
    the last id returned (``skip_past``) and, for ``list``, the prefix. The next page is every
    id after ``skip_past`` in sorted order, whatever was written or deleted in between."""
    body: dict[str, Any] = {"skip_past": last_id}
    if prefix is not None:
        body["prefix"] = prefix
    return base64.b64encode(json.dumps(body, separators=(",", ":")).encode("ascii")).decode("ascii")


def _decode_token(token: Any, prefix: str | None) -> str | None:
    if token is None:
        return None
    try:
        body = json.loads(base64.b64decode(str(token).encode("ascii"), validate=True))
        after = body["skip_past"]
        if not isinstance(after, str) or body.get("prefix") != prefix:
            raise ValueError("not this listing's token")
    except Exception:
        raise bad_request("Invalid pagination token") from None
    return after

"""VPA records ↔ Qdrant points, and a VPA collection's definition in Qdrant.

- One unnamed dense vector per point, ``Distance.COSINE``, and in a collection made for lexical
  search (vpa-qdrant 0.3.2 on) the sparse vector ``vpa_bm25`` of its text's BM25 terms
  (`vpa_qdrant.lexical`), written in the same point, so a point's two vectors never disagree.
  Vectors are sent already scaled to unit length (computed in float64, see `unit_vectors`), as
  Qdrant would store them anyway; the original Euclidean norm is kept in the payload and
  `to_record` multiplies it back, so a vector comes back as written, within float32 rounding.
- Point ids are ``uuid5(VPA_NAMESPACE, record id)`` (`point_id`: Qdrant ids must be UUIDs or
  integers); the VPA id itself is kept in the payload.
- Payload ``{"_vpa_id": id, "_vpa_text": text, "_vpa_norm": norm, "m": {user metadata}}``: user
  keys live under ``m`` so they never collide with ours, and filters address ``m.<stored key>``.
- Keys (`encode_key`, `key_path`): Qdrant reads a filter's key as a JSON path (``a.b`` nested,
  ``a[0]``/``a[]`` arrays, ``"..."`` a quoted segment, which ends at the next ``"`` and cannot
  hold a ``\\``). A metadata key is stored under ``m`` as it is, and addressed as one segment:
  bare if it is a plain identifier (``[A-Za-z_][A-Za-z0-9_]*``), else quoted (``m."og:title"``,
  ``m."page.number"``, ``m."a[0]"``). A key that holds ``"`` or ``\\``, or starts with ``b64-``,
  is stored as ``b64-`` + its UTF-8 in unpadded URL-safe base64 (letters, digits, ``-``, ``_``),
  so a stored key starting with ``b64-`` is always an encoded one and `decode_key` gives back the
  exact key. No key can address another key, a nested value or an array element.
- Values (`encode_value`): str, int, float, bool and non-empty lists of str as they are; a
  datetime as ``{"_vpa_datetime_us": <int µs since the epoch>}`` (exact, ordered by ``Range``,
  matched exactly by ``MatchValue`` on ``m.<key>._vpa_datetime_us``, never equal to a number or a
  string); an empty list as ``{"_vpa_empty_list": true}``, because Qdrant's ``IsEmpty`` is true
  for ``[]`` as for a missing key and VPA's ``$exists`` is true for a present empty list. No
  metadata value is an object, so the tags are unambiguous. A ``null`` reads as absent.
- The collection's definition (`vpa.stores.definition`: dimension, metric, embedder fingerprint)
  is kept in the collection's own metadata under ``vpa_definition`` (Qdrant ≥ 1.16), so a new
  process describes the collection without any side table. Collections made by vpa-qdrant 0.1
  (``metadata["vpa"] = {"format": 1, "info": {...}}``) are read too. Beside it, ``vpa_lexical``
  (`vpa_qdrant.lexical.LexicalLayout`) says how the points hold their terms; a collection
  without it has no sparse vector.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from qdrant_client import models
from vpa.errors import InvalidCollection
from vpa.models import CollectionInfo, Hit, Record
from vpa.stores.definition import DEFINITION_KEY, dump_definition, load_definition
from vpa.typedjson import from_micros, to_micros

from vpa_qdrant import lexical
from vpa_qdrant.lexical import LexicalLayout
from vpa_qdrant.settings import QdrantSettings

#: Namespace of the deterministic point ids: ``uuid5(VPA_NAMESPACE, record_id)``.
VPA_NAMESPACE = uuid.UUID("6f3c2a1e-9b8d-5c4e-a7f0-3d2b1c0e9f8a")
ID_KEY = "_vpa_id"
TEXT_KEY = "_vpa_text"
NORM_KEY = "_vpa_norm"
#: The payload key that holds the user's metadata.
METADATA_KEY = "m"
#: Where vpa-qdrant 0.1 kept the collection's definition.
LEGACY_KEY = "vpa"
#: A key addressed in a filter as a bare path segment; any other is quoted or encoded.
PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Stored keys that start with this are `encode_key`'s base64 form.
ENCODED_PREFIX = "b64-"
#: The tagged objects that stand for a datetime and for an empty list.
DATETIME_TAG = "_vpa_datetime_us"
EMPTY_LIST_TAG = "_vpa_empty_list"


def encode_key(key: str) -> str:
    """The payload key (under ``m``) of a metadata key: the key itself, unless it holds ``"`` or
    ``\\`` (which a quoted JSON path segment cannot) or starts with `ENCODED_PREFIX`."""
    if '"' in key or "\\" in key or key.startswith(ENCODED_PREFIX):
        return ENCODED_PREFIX + base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii").rstrip("=")
    return key


def decode_key(stored: str) -> str:
    """The metadata key a payload key under ``m`` stands for (`encode_key` reversed)."""
    if not stored.startswith(ENCODED_PREFIX):
        return stored
    text = stored[len(ENCODED_PREFIX) :]
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")


def key_path(key: str) -> str:
    """The JSON path of a metadata key's value in the payload: ``m.<segment>``, one segment."""
    stored = encode_key(key)
    return f"{METADATA_KEY}.{stored}" if PLAIN_KEY.fullmatch(stored) else f'{METADATA_KEY}."{stored}"'


def encode_value(value: Any) -> Any:
    """A metadata value as a payload value (datetimes and empty lists tagged, see above)."""
    if isinstance(value, dt.datetime):
        return {DATETIME_TAG: to_micros(value)}
    if isinstance(value, list | tuple):
        return list(value) if value else {EMPTY_LIST_TAG: True}
    return value


def decode_value(value: Any) -> Any:
    """A payload value as a metadata value (`encode_value` reversed; a 0.2 ``[]`` is ``[]``)."""
    if isinstance(value, Mapping):
        if DATETIME_TAG in value:
            return from_micros(int(value[DATETIME_TAG]))
        if EMPTY_LIST_TAG in value:
            return []
    return value


def encode_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {encode_key(k): encode_value(v) for k, v in metadata.items()}


def decode_metadata(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """The user's metadata from the payload's ``m`` (a null value is an absent key)."""
    return {decode_key(k): decode_value(v) for k, v in (stored or {}).items() if v is not None}


def point_id(record_id: str) -> str:
    """The Qdrant point id of a VPA record id: a deterministic UUID."""
    return str(uuid.uuid5(VPA_NAMESPACE, record_id))


def unit_vectors(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to unit length (float32) and their norms, computed in float64.

    Qdrant normalises cosine vectors itself, but in float32 and only when the norm exceeds
    float32's epsilon: a vector of norm 1e-8 would be stored as is (and score wrongly), one of
    norm 1e20 would overflow. Sending unit vectors sidesteps both; the norm goes to the payload.
    """
    wide = matrix.astype(np.float64)
    norms = np.linalg.norm(wide, axis=1)
    return (wide / norms[:, np.newaxis]).astype(np.float32), norms


def to_points(records: Sequence[Record], layout: LexicalLayout | None = None) -> list[models.PointStruct]:
    """The points of ``records``; with a ``layout`` each also holds its sparse BM25 vector."""
    units, norms = unit_vectors(np.stack([r.vector for r in records]))

    def vector(i: int, record: Record) -> Any:
        if layout is None:
            return units[i].tolist()
        return {"": units[i].tolist(), layout.vector: lexical.document_vector(record.text, layout.avg_len)}

    return [
        models.PointStruct(
            id=point_id(record.id),
            vector=vector(i, record),
            payload={
                ID_KEY: record.id,
                TEXT_KEY: record.text,
                NORM_KEY: float(norms[i]),
                METADATA_KEY: encode_metadata(record.metadata),
            },
        )
        for i, record in enumerate(records)
    ]


def query_vector(vector: Any) -> list[float]:
    return unit_vectors(np.asarray(vector)[np.newaxis, :])[0][0].tolist()


def to_record(point: Any) -> Record:
    """A point read with its payload; without its vector (``with_vectors=False``) the record's
    vector is empty."""
    payload = point.payload or {}
    metadata = decode_metadata(payload.get(METADATA_KEY))
    dense = point.vector
    if isinstance(dense, Mapping):  # named vectors: the unnamed dense one beside the sparse one
        dense = dense.get("")
    if dense is None:
        return Record(payload[ID_KEY], (), payload.get(TEXT_KEY, ""), metadata)
    vector = np.asarray(dense, dtype=np.float64)
    norm = payload.get(NORM_KEY)
    if norm is not None:
        vector = vector * float(norm)
    return Record(payload[ID_KEY], vector.astype(np.float32), payload.get(TEXT_KEY, ""), metadata)


def to_hit(point: Any) -> Hit:
    payload = point.payload or {}
    score = min(1.0, max(-1.0, float(point.score)))
    return Hit(payload[ID_KEY], score, payload.get(TEXT_KEY, ""), decode_metadata(payload.get(METADATA_KEY)))


def to_scored_hit(point: Any) -> Hit:
    """A lexical or fused hit: the engine's score as it is (BM25, or the RRF sum), not a cosine."""
    payload = point.payload or {}
    metadata = decode_metadata(payload.get(METADATA_KEY))
    return Hit(payload[ID_KEY], float(point.score), payload.get(TEXT_KEY, ""), metadata)


def metadata_changes(set: Mapping[str, Any], unset: Sequence[str]) -> dict[str, Any]:
    """An update as the payload merged into ``m`` by ``set_payload(key="m")``: set keys with their
    values, unset keys with ``null`` — Qdrant's payload merge removes a key set to ``null`` (and a
    ``null`` left behind would read as absent anyway)."""
    return {**encode_metadata(set), **{encode_key(k): None for k in unset}}


# --- the collection ------------------------------------------------------------------------------


def collection_config(info: CollectionInfo, settings: QdrantSettings) -> dict[str, Any]:
    """``create_collection``'s arguments for ``info``: the vector, the definition in the
    collection's metadata, and in server mode the sharding and HNSW options that are set."""
    config: dict[str, Any] = {
        "vectors_config": models.VectorParams(
            size=info.dimension, distance=models.Distance.COSINE, on_disk=settings.on_disk
        ),
        # The sparse BM25 terms, with Qdrant applying the IDF over the collection (vpa_qdrant.lexical).
        "sparse_vectors_config": {
            lexical.SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)
        },
        "metadata": {
            DEFINITION_KEY: dump_definition(info),
            lexical.METADATA_KEY: lexical.LexicalLayout().to_metadata(),
        },
    }
    if settings.mode == "server":
        for option in ("shard_number", "replication_factor", "write_consistency_factor", "on_disk_payload"):
            if getattr(settings, option) is not None:
                config[option] = getattr(settings, option)
        if settings.hnsw_m is not None or settings.hnsw_ef_construct is not None:
            config["hnsw_config"] = models.HnswConfigDiff(
                m=settings.hnsw_m, ef_construct=settings.hnsw_ef_construct
            )
    return config


def read_definition(name: str, metadata: Mapping[str, Any] | None) -> CollectionInfo:
    """The `CollectionInfo` kept in a Qdrant collection's metadata; `InvalidCollection` if the
    collection was not made by VPA."""
    metadata = metadata or {}
    if DEFINITION_KEY in metadata:
        return load_definition(name, metadata[DEFINITION_KEY])
    legacy = metadata.get(LEGACY_KEY)
    if isinstance(legacy, Mapping) and "info" in legacy:
        return _legacy_definition(name, legacy["info"])
    raise InvalidCollection(
        f"Qdrant collection {name!r} exists but was not created by VPA (it has no VPA metadata); "
        "use another collection name"
    )


def _legacy_definition(name: str, info: Any) -> CollectionInfo:
    """vpa-qdrant 0.1's ``{"format": 1, "info": <CollectionInfo as JSON>}``, read as format 1."""
    if not isinstance(info, Mapping):
        raise InvalidCollection(f"collection {name!r} has an unreadable VPA definition ({info!r})")
    fields = {key: info[key] for key in ("dimension", "metric", "fingerprint") if key in info}
    return load_definition(name, {"vpa": 1, **fields})

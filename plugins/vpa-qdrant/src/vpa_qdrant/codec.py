"""VPA records ↔ Qdrant points, and a VPA collection's definition in Qdrant.

- One unnamed dense vector per point, ``Distance.COSINE``. Vectors are sent already scaled to
  unit length (computed in float64, see `unit_vectors`), as Qdrant would store them anyway; the
  original Euclidean norm is kept in the payload and `to_record` multiplies it back, so a vector
  comes back as written, within float32 rounding.
- Point ids are ``uuid5(VPA_NAMESPACE, record id)`` (`point_id`: Qdrant ids must be UUIDs or
  integers); the VPA id itself is kept in the payload.
- Payload ``{"_vpa_id": id, "_vpa_text": text, "_vpa_norm": norm, "m": {user metadata}}``: user
  keys live under ``m`` so they never collide with ours, and filters address ``m.<field>``.
- The collection's definition (`vpa.stores.definition`: dimension, metric, embedder fingerprint)
  is kept in the collection's own metadata under ``vpa_definition`` (Qdrant ≥ 1.16), so a new
  process describes the collection without any side table. Collections made by vpa-qdrant 0.1
  (``metadata["vpa"] = {"format": 1, "info": {...}}``) are read too.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from qdrant_client import models
from vpa.errors import InvalidCollection
from vpa.models import CollectionInfo, Hit, Record
from vpa.stores.definition import DEFINITION_KEY, dump_definition, load_definition

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


def to_points(records: Sequence[Record]) -> list[models.PointStruct]:
    units, norms = unit_vectors(np.stack([r.vector for r in records]))
    return [
        models.PointStruct(
            id=point_id(record.id),
            vector=units[i].tolist(),
            payload={
                ID_KEY: record.id,
                TEXT_KEY: record.text,
                NORM_KEY: float(norms[i]),
                METADATA_KEY: dict(record.metadata),
            },
        )
        for i, record in enumerate(records)
    ]


def query_vector(vector: Any) -> list[float]:
    return unit_vectors(np.asarray(vector)[np.newaxis, :])[0][0].tolist()


def to_record(point: Any) -> Record:
    payload = point.payload or {}
    vector = np.asarray(point.vector, dtype=np.float64)
    norm = payload.get(NORM_KEY)
    if norm is not None:
        vector = vector * float(norm)
    return Record(
        payload[ID_KEY], vector.astype(np.float32), payload.get(TEXT_KEY, ""), payload.get(METADATA_KEY, {})
    )


def to_hit(point: Any) -> Hit:
    payload = point.payload or {}
    score = min(1.0, max(-1.0, float(point.score)))
    return Hit(payload[ID_KEY], score, payload.get(TEXT_KEY, ""), payload.get(METADATA_KEY, {}))


# --- the collection ------------------------------------------------------------------------------


def collection_config(info: CollectionInfo, settings: QdrantSettings) -> dict[str, Any]:
    """``create_collection``'s arguments for ``info``: the vector, the definition in the
    collection's metadata, and in server mode the sharding and HNSW options that are set."""
    config: dict[str, Any] = {
        "vectors_config": models.VectorParams(
            size=info.dimension, distance=models.Distance.COSINE, on_disk=settings.on_disk
        ),
        "metadata": {DEFINITION_KEY: dump_definition(info)},
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

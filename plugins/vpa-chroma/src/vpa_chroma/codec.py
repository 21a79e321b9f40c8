"""VPA records ↔ Chroma rows, collection names, and the collection definition.

How records are stored, and why (every rule measured on the Chroma engine this plugin pins):

- **Floats are stored as ordered integers.** Chroma writes float metadata through a lossy
  decimal conversion (about a quarter of random doubles come back one or more ulps off, -0.0
  comes back 0.0), and compares float operands against int fields after truncating them
  (``$eq 1.5`` matches the int 1). Chroma's int64 values, though, are exact. So a float field
  ``f`` is stored under ``vpa:float:f`` as the int64 `float_key`, a bijection from finite doubles
  to integers that preserves order (``-0.0`` and ``0.0`` share 0, as they are equal); ints stay
  under ``f``. `vpa_chroma.filters` turns every numeric comparison into exact int comparisons.
- Chroma refuses empty lists as values: an empty list is not stored (VPA evaluates an empty list
  exactly like a missing field) and its name goes into `EMPTY_LIST_KEY` so ``get`` restores it.
- `NUMERIC_KEY` lists a record's int/float fields, so that ``not (x > v)`` — true on a missing
  field or a string — can be written ``x <= v or field not in NUMERIC_KEY``.
- Chroma's upsert *merges* metadata into an existing record, so `encode_metadata` deletes (sends
  None for) the keys the stored record has and the new one lacks.

The bookkeeping keys contain ``:``, which no VPA metadata key can contain, so they never collide
with user fields; they are turned back into the record's metadata on every read.

A collection carries VPA's definition (`vpa.stores.definition`) under `DEFINITION_KEY` in its
Chroma metadata; collections created by vpa-chroma 0.1 carry it as ``vpa:dimension``,
``vpa:metric`` and ``vpa:embedder_*`` keys instead, which `definition_from` still reads.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from vpa.errors import InvalidCollection
from vpa.models import CollectionInfo, Hit, Record
from vpa.stores.definition import DEFINITION_KEY, dump_definition, load_definition

#: Per record: the names of its int/float fields (absent when there are none).
NUMERIC_KEY = "vpa:numeric"
#: Per record: the names of its fields whose value is an empty list (absent when there are none).
EMPTY_LIST_KEY = "vpa:empty_lists"
#: A float field ``f`` is stored as ``FLOAT_PREFIX + f``: its `float_key`.
FLOAT_PREFIX = "vpa:float:"
RESERVED_KEYS = (NUMERIC_KEY, EMPTY_LIST_KEY)

_SIGN = 1 << 63
_MAGNITUDE = _SIGN - 1

#: Chroma names need 3+ characters ending in a letter or digit; VPA names may be shorter or end
#: in '_' or '-'. Those get this suffix: VPA names never contain '.', so the mapping is one-to-one.
NAME_SUFFIX = ".vpa"

#: vpa-chroma 0.1 kept the definition as one collection-metadata key per field, this one first.
LEGACY_DIMENSION = "vpa:dimension"


def float_key(value: float) -> int:
    """An int64 with the order of the doubles: ``a < b`` iff ``float_key(a) < float_key(b)``."""
    bits = struct.unpack("<q", struct.pack("<d", float(value)))[0]
    return bits if bits >= 0 else -(bits & _MAGNITUDE)


def key_float(key: int) -> float:
    """The inverse of `float_key` (``-0.0`` comes back as ``0.0``)."""
    bits = key if key >= 0 else (-key) | _SIGN
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- names ---------------------------------------------------------------------------------------


def chroma_name(name: str) -> str:
    """The Chroma collection name for a (validated) VPA collection name."""
    return name if len(name) >= 3 and name[-1].isalnum() else name + NAME_SUFFIX


def vpa_name(name: str) -> str:
    return name[: -len(NAME_SUFFIX)] if name.endswith(NAME_SUFFIX) else name


# --- the collection definition -------------------------------------------------------------------


def collection_metadata(info: CollectionInfo) -> dict[str, Any]:
    """The Chroma collection metadata that carries ``info``."""
    return {DEFINITION_KEY: dump_definition(info)}


def is_vpa_collection(metadata: Mapping[str, Any] | None) -> bool:
    """Whether a Chroma collection was created by VPA (0.2 or 0.1 definition)."""
    meta = metadata or {}
    return DEFINITION_KEY in meta or _is_int(meta.get(LEGACY_DIMENSION))


def definition_from(name: str, metadata: Mapping[str, Any] | None) -> CollectionInfo:
    """The `CollectionInfo` a Chroma collection's metadata carries (`InvalidCollection` if none)."""
    meta = metadata or {}
    if DEFINITION_KEY in meta:
        return load_definition(name, meta[DEFINITION_KEY])
    if _is_int(meta.get(LEGACY_DIMENSION)):
        return _legacy_definition(name, meta)
    raise InvalidCollection(
        f"the Chroma collection {chroma_name(name)!r} was not created by VPA "
        f"(its metadata has no {DEFINITION_KEY!r})"
    )


def _legacy_definition(name: str, meta: Mapping[str, Any]) -> CollectionInfo:
    """0.1's ``vpa:dimension``, ``vpa:metric`` and ``vpa:embedder_*`` keys, read as a definition."""
    fingerprint = None
    if "vpa:embedder_name" in meta:
        fingerprint = {
            "name": meta["vpa:embedder_name"],
            "model": meta.get("vpa:embedder_model", ""),
            "dimension": meta.get("vpa:embedder_dimension", meta[LEGACY_DIMENSION]),
        }
    definition = {"vpa": 1, "dimension": meta[LEGACY_DIMENSION], "metric": meta.get("vpa:metric", "cosine")}
    return load_definition(name, {**definition, "fingerprint": fingerprint})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- record metadata -----------------------------------------------------------------------------


def encode_metadata(
    metadata: Mapping[str, Any], previous_keys: frozenset[str] = frozenset()
) -> dict[str, Any] | None:
    """The Chroma metadata for a VPA record, with the bookkeeping keys.

    ``previous_keys`` are the keys the stored record has; those absent from the new metadata are
    sent as None (delete the key), so Chroma's merging upsert becomes a replacement.
    """
    out: dict[str, Any] = {}
    numeric: list[str] = []
    empty: list[str] = []
    for key, value in metadata.items():
        if isinstance(value, list | tuple):
            if not value:
                empty.append(key)
                continue
            out[key] = list(value)
        elif isinstance(value, float):
            out[FLOAT_PREFIX + key] = float_key(value)
            numeric.append(key)
        else:
            out[key] = value
            if is_number(value):
                numeric.append(key)
    if numeric:
        out[NUMERIC_KEY] = numeric
    if empty:
        out[EMPTY_LIST_KEY] = empty
    for key in previous_keys:
        if key not in out:
            out[key] = None
    return out or None


def decode_metadata(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """The VPA metadata of a stored Chroma record (bookkeeping keys removed, empty lists restored)."""
    if not stored:
        return {}
    out: dict[str, Any] = {}
    for key, value in stored.items():
        if key in RESERVED_KEYS:
            continue
        if key.startswith(FLOAT_PREFIX):
            out[key[len(FLOAT_PREFIX) :]] = key_float(value)
        else:
            out[key] = list(value) if isinstance(value, list | tuple) else value
    for key in stored.get(EMPTY_LIST_KEY) or ():
        out[key] = []
    return out


# --- rows ----------------------------------------------------------------------------------------


def stored_keys(result: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """The metadata keys of each record in a ``get(include=["metadatas"])`` result."""
    return {i: frozenset(m or ()) for i, m in zip(result["ids"], result["metadatas"] or [], strict=False)}


def upsert_columns(rows: Sequence[tuple[Record, dict[str, Any] | None]]) -> dict[str, Any]:
    """The keyword arguments of ``collection.upsert`` for records with their encoded metadata."""
    return {
        "ids": [r.id for r, _ in rows],
        "embeddings": np.stack([r.vector for r, _ in rows]),
        "documents": [r.text for r, _ in rows],
        "metadatas": [m for _, m in rows],
    }


def records_from(result: Mapping[str, Any]) -> list[Record]:
    """The records of a ``get(include=["embeddings", "documents", "metadatas"])`` result."""
    return [
        Record(id=i, vector=vec, text=doc or "", metadata=decode_metadata(meta))
        for i, vec, doc, meta in zip(
            result["ids"], result["embeddings"], result["documents"], result["metadatas"], strict=True
        )
    ]


def hits_from(result: Mapping[str, Any]) -> list[Hit]:
    """The hits of a one-vector ``query`` result; the score is ``1 - cosine distance``."""
    ids = result["ids"][0]
    documents = (result.get("documents") or [[None] * len(ids)])[0]
    metadatas = (result.get("metadatas") or [[None] * len(ids)])[0]
    distances = (result.get("distances") or [[None] * len(ids)])[0]
    return [
        Hit(
            id=i,
            score=float(min(1.0, max(-1.0, 1.0 - float(d)))),
            text=doc or "",
            metadata=decode_metadata(meta),
        )
        for i, doc, meta, d in zip(ids, documents, metadatas, distances, strict=True)
    ]


def orphan_fixes(
    written: Mapping[str, Mapping[str, Any] | None], result: Mapping[str, Any]
) -> tuple[list[str], list[dict[str, None]]]:
    """The updates that remove list metadata new records inherited from a dropped collection
    (chroma-core/chroma#7594): every key of a stored record in ``result`` we did not write."""
    ids: list[str] = []
    fixes: list[dict[str, None]] = []
    for i, stored in zip(result["ids"], result["metadatas"] or [], strict=False):
        sent = {k for k, v in (written.get(i) or {}).items() if v is not None}
        extra = set(stored or ()) - sent
        if extra:
            ids.append(i)
            fixes.append(dict.fromkeys(sorted(extra)))
    return ids, fixes

"""VPA records ↔ Chroma rows, collection names, and the collection definition.

How a record's metadata is stored (format 3, vpa-chroma 0.3; every rule measured on the Chroma
engine this plugin pins):

- **Names.** A user key ``k`` is stored under its own name, except when Chroma would refuse it
  (``#...``), drop it on read (``chroma:...``) or it starts with ``~``: those are stored as
  ``~`` + ``k``. Every bookkeeping key starts with ``~`` followed by a letter other than ``c``
  (``~t:``, ``~f:``, ``~d:``, ``~seq``), so it can never be a stored user key.
- **A type tag per key.** ``~t:<k>`` holds the type of ``k``'s value as a small int (`TAGS`):
  ``$exists`` is a native comparison on it (``$gte 1`` for present; ``$nin`` of every tag for
  absent, true on a record without the tag), and so are "is a number" and "is a datetime", which
  exact negation needs (``not (x > v)`` is ``x <= v`` or ``x`` is not a number).
- **Floats are stored as ordered integers.** Chroma writes float metadata through a lossy
  decimal conversion (about a quarter of random doubles come back one or more ulps off, -0.0
  comes back 0.0), and compares float operands against int fields after truncating them
  (``$eq 1.5`` matches the int 1). Chroma's int64 values, though, are exact. So a float field
  ``k`` is stored under ``~f:<k>`` as the int64 `float_key`, a bijection from finite doubles
  to integers that preserves order (``-0.0`` and ``0.0`` share 0, as they are equal); ints stay
  under ``k``. `vpa_chroma.filters` turns every numeric comparison into exact int comparisons.
- **Datetimes** are stored under ``~d:<k>`` as exact int microseconds since the epoch (VPA's
  range, ±2**53, is well inside int64), so they order natively and never equal a number or a
  string (those live under other names); they come back as UTC datetimes.
- Chroma refuses empty lists as values: an empty list is only its tag (VPA evaluates an empty
  list like a missing field, except for ``$exists``).
- **``~seq``**, an int64 given to a record when it is first written and kept by every later
  upsert and update, is what `scroll` pages by (see `vpa_chroma.store`).

Every key of a value (its name, ``~f:``, ``~d:`` and ``~t:``) is written together, and a write of
one type deletes (sends None for) the others, so an update is a native merge that needs no read
(`update_delta`). Chroma's upsert *merges* metadata into an existing record, so `encode_metadata`
also deletes the keys the stored record has and the new one lacks.

Records written by vpa-chroma 0.2 (format 2: no ``~seq``, floats under ``vpa:float:<k>``, the
``vpa:numeric`` and ``vpa:empty_lists`` lists) are still read (`decode_metadata` tells them by
the missing ``~seq``); the store rewrites them in format 3 when it opens their collection.

A collection carries VPA's definition (`vpa.stores.definition`) under `DEFINITION_KEY` in its
Chroma metadata; collections created by vpa-chroma 0.1 carry it as ``vpa:dimension``,
``vpa:metric`` and ``vpa:embedder_*`` keys instead, which `definition_from` still reads.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from vpa.errors import InvalidCollection, InvalidCursor
from vpa.models import CollectionInfo, Hit, Record
from vpa.stores.definition import DEFINITION_KEY, dump_definition, load_definition
from vpa.typedjson import from_micros, to_micros

#: The prefix of every bookkeeping key, and of the user keys stored escaped.
ESCAPE = "~"
#: Per record: the scroll key, kept for the record's life.
SEQ_KEY = "~seq"
#: Per user key ``k``: its type tag (`TAGS`) under ``TYPE_PREFIX + k``.
TYPE_PREFIX = "~t:"
#: A float field ``k`` is stored as ``FLOAT_PREFIX + k``: its `float_key`.
FLOAT_PREFIX = "~f:"
#: A datetime field ``k`` is stored as ``DATE_PREFIX + k``: whole microseconds since the epoch.
DATE_PREFIX = "~d:"
#: User keys Chroma refuses (``#``), hides on read (``chroma:``), or that start with the escape.
_ESCAPED_STARTS = (ESCAPE, "#", "chroma:")

#: The type tags. Every one is at least 1, so ``tag >= 1`` is "present".
STR, INT, FLOAT, BOOL, LIST, EMPTY_LIST, DATETIME = 1, 2, 3, 4, 5, 6, 7
TAGS = (STR, INT, FLOAT, BOOL, LIST, EMPTY_LIST, DATETIME)
NUMBER_TAGS = (INT, FLOAT)

#: The format new collections are marked with (collection metadata `FORMAT_KEY`); older ones
#: are upgraded on open.
FORMAT = 3
FORMAT_KEY = "vpa_chroma_format"

#: vpa-chroma 0.2's bookkeeping (format 2), still read.
LEGACY_NUMERIC_KEY = "vpa:numeric"
LEGACY_EMPTY_LIST_KEY = "vpa:empty_lists"
LEGACY_FLOAT_PREFIX = "vpa:float:"

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
    return {DEFINITION_KEY: dump_definition(info), FORMAT_KEY: FORMAT}


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


def stored_name(key: str) -> str:
    """The Chroma metadata key of a user key's str, int, bool or list value."""
    return ESCAPE + key if key.startswith(_ESCAPED_STARTS) else key


def _slots(key: str) -> tuple[str, str, str, str]:
    """Every Chroma key a user key's value may occupy: its name, float, date and type keys."""
    return stored_name(key), FLOAT_PREFIX + key, DATE_PREFIX + key, TYPE_PREFIX + key


def tag_of(value: Any) -> int:
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return FLOAT
    if isinstance(value, str):
        return STR
    if isinstance(value, dt.datetime):
        return DATETIME
    if isinstance(value, list | tuple):
        return LIST if value else EMPTY_LIST
    raise TypeError(f"not a metadata value: {type(value).__name__}")


def encode_value(key: str, value: Any) -> dict[str, Any]:
    """The Chroma keys (with values) that hold ``key: value``; the other slots of ``key`` None."""
    name, float_slot, date_slot, type_slot = _slots(key)
    tag = tag_of(value)
    out: dict[str, Any] = {name: None, float_slot: None, date_slot: None, type_slot: tag}
    if tag == FLOAT:
        out[float_slot] = float_key(value)
    elif tag == DATETIME:
        out[date_slot] = to_micros(value)
    elif tag == LIST:
        out[name] = list(value)
    elif tag != EMPTY_LIST:
        out[name] = value
    return out


def encode_metadata(
    metadata: Mapping[str, Any], seq: int, previous_keys: Iterable[str] = ()
) -> dict[str, Any]:
    """The Chroma metadata for a VPA record: its values and tags, and ``seq`` under `SEQ_KEY`.

    ``previous_keys`` are the Chroma keys the stored record has; those the new metadata lacks
    are sent as None (delete the key), so Chroma's merging upsert becomes a replacement.
    """
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        out.update({k: v for k, v in encode_value(key, value).items() if v is not None})
    out[SEQ_KEY] = seq
    for key in previous_keys:
        if key not in out:
            out[key] = None
    return out


def update_delta(set: Mapping[str, Any], unset: Iterable[str]) -> dict[str, Any]:
    """The Chroma metadata of an update (merged into each record by the engine): ``set`` values
    with their tags, every slot of an ``unset`` key None, `SEQ_KEY` untouched."""
    out: dict[str, Any] = {}
    for key in unset:
        out.update(dict.fromkeys(_slots(key)))
    for key, value in set.items():
        out.update(encode_value(key, value))
    return out


def decode_metadata(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """The VPA metadata of a stored Chroma record (either format)."""
    if not stored:
        return {}
    if SEQ_KEY not in stored:
        return decode_legacy_metadata(stored)
    out: dict[str, Any] = {}
    for slot, tag in stored.items():
        if not slot.startswith(TYPE_PREFIX):
            continue
        key = slot[len(TYPE_PREFIX) :]
        if tag == EMPTY_LIST:
            out[key] = []
            continue
        if tag == FLOAT:
            value = stored.get(FLOAT_PREFIX + key)
            if value is not None:
                out[key] = key_float(value)
            continue
        if tag == DATETIME:
            value = stored.get(DATE_PREFIX + key)
            if value is not None:
                out[key] = from_micros(value)
            continue
        value = stored.get(stored_name(key))
        if value is not None:
            out[key] = list(value) if isinstance(value, list | tuple) else value
    return out


def decode_legacy_metadata(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The VPA metadata of a record written by vpa-chroma 0.2 (format 2)."""
    out: dict[str, Any] = {}
    for key, value in stored.items():
        if key in (LEGACY_NUMERIC_KEY, LEGACY_EMPTY_LIST_KEY):
            continue
        if key.startswith(LEGACY_FLOAT_PREFIX):
            out[key[len(LEGACY_FLOAT_PREFIX) :]] = key_float(value)
        else:
            out[key] = list(value) if isinstance(value, list | tuple) else value
    for key in stored.get(LEGACY_EMPTY_LIST_KEY) or ():
        out[key] = []
    return out


def seq_of(stored: Mapping[str, Any] | None) -> int | None:
    """A stored record's scroll key (None for a 0.2 record, which has none)."""
    value = (stored or {}).get(SEQ_KEY)
    return value if _is_int(value) else None


# --- rows ----------------------------------------------------------------------------------------


def stored_metadata(result: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The stored (Chroma) metadata of each record in a ``get(include=["metadatas"])`` result."""
    return {i: m or {} for i, m in zip(result["ids"], result["metadatas"] or [], strict=False)}


def scroll_rows(result: Mapping[str, Any], with_vectors: bool) -> list[tuple[int, str, Record]]:
    """The ``(seq, id, record)`` of each record in a ``get`` result, sorted by ``(seq, id)``;
    without vectors a record's vector is empty (shape ``(0,)``)."""
    empty = np.zeros(0, np.float32)
    vectors = result["embeddings"] if with_vectors else None
    rows = []
    columns = zip(result["ids"], result["documents"], result["metadatas"], strict=True)
    for n, (i, doc, meta) in enumerate(columns):
        seq = seq_of(meta)
        if seq is None:  # a 0.2 record not upgraded yet: scroll keys exclude it anyway
            continue
        vector = vectors[n] if vectors is not None else empty
        rows.append((seq, i, Record(id=i, vector=vector, text=doc or "", metadata=decode_metadata(meta))))
    rows.sort(key=lambda row: (row[0], row[1]))
    return rows


def dump_position(seq: int, tie: str | None = None) -> str:
    """A scroll position: every record with a smaller ``seq`` is done, and at ``seq`` itself
    every record (``tie`` None) or those with an id up to ``tie``."""
    return json.dumps([seq] if tie is None else [seq, tie], ensure_ascii=False, separators=(",", ":"))


def load_position(text: str | None) -> tuple[int, str | None]:
    """`dump_position`'s ``(seq, tie)``; the start is ``(-1, None)`` (every seq is 0 or more)."""
    if text is None:
        return -1, None
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidCursor("not a Chroma scroll position") from None
    if (
        not isinstance(value, list)
        or len(value) not in (1, 2)
        or not _is_int(value[0])
        or not -1 <= value[0] < 2**63
        or (len(value) == 2 and not isinstance(value[1], str))
    ):
        raise InvalidCursor("not a Chroma scroll position")
    return value[0], (value[1] if len(value) == 2 else None)


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


def exact_hits(result: Mapping[str, Any], vector: Any, top_k: int) -> list[Hit]:
    """The ``top_k`` records of a ``get(include=["embeddings", "documents", "metadatas"])``
    result closest to ``vector`` by cosine similarity, best first (ties by id)."""
    if not result["ids"]:
        return []
    matrix = np.asarray(result["embeddings"], dtype=np.float64)
    query = np.asarray(vector, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(query)
    scores = np.clip(matrix @ query / np.where(norms == 0, 1.0, norms), -1.0, 1.0)
    order = sorted(range(len(result["ids"])), key=lambda n: (-scores[n], result["ids"][n]))[:top_k]
    return [
        Hit(
            id=result["ids"][n],
            score=float(scores[n]),
            text=result["documents"][n] or "",
            metadata=decode_metadata(result["metadatas"][n]),
        )
        for n in order
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

"""Checks shared by every store and the RAG layer, run before any I/O.

The portable limits are the intersection of what the supported backends accept, so that data
written through one provider can move to any other:

- ids: non-empty strings of at most 512 characters (UTF-8), no NUL;
- metadata keys (contract 1.1): any non-empty string of at most 128 characters that does not start
  with ``$`` and holds no NUL — ``source-url``, ``og:title``, ``page.number``, ``Größe`` — each
  plugin encodes what its engine cannot hold as is and gives the user's key back. A store that
  declares contract 1.0 keeps 1.0's rule, ``[A-Za-z_][A-Za-z0-9_]*`` of at most 64 characters.
  (``vpa_`` keys are the RAG layer's own: documents may not use them, see `vpa.layout`);
- metadata values: str, int (within ±2**53, exact in every backend's number type), finite float,
  bool, list of str and (1.1) timezone-aware datetimes within ±2**53 µs of the epoch
  (`vpa.typedjson`). ``None`` means the key is absent (`vpa.models.Record` leaves it out); nested
  objects are refused, not silently dropped;
- vectors: flat, finite, not all zeros (cosine is undefined there), of the collection's dimension.

A store's declared bounds per record (``max_metadata_keys``, ``max_metadata_bytes``: the keys of a
record's metadata, and its size as UTF-8 JSON, see `metadata_bytes`) are checked by
`check_records` with the rest, raising `LimitExceeded`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from vpa.errors import (
    DimensionMismatch,
    InvalidId,
    InvalidMetadata,
    InvalidVector,
    LimitExceeded,
    RecordTooLarge,
    UnsupportedMetadata,
)
from vpa.models import MetadataType, Record, _metadata_copy
from vpa.typedjson import DateError, check_datetime, encode_metadata, has_datetimes

MAX_ID_LENGTH = 512
#: Contract 1.1's longest metadata key (characters).
MAX_KEY_LENGTH = 128
MAX_SAFE_INT = 2**53
#: Contract 1.0's metadata keys: identifiers of at most 64 characters.
LEGACY_KEY_LENGTH = 64
METADATA_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_encodable(text: str) -> bool:
    """Whether a string is valid Unicode text (no lone surrogates), storable as UTF-8 anywhere."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_id(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidId(f"id must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidId("id must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidId(f"id is {len(value)} characters long; the limit is {MAX_ID_LENGTH}")
    if "\x00" in value:
        raise InvalidId("id must not contain NUL characters")
    if not (value.isascii() or is_encodable(value)):
        raise InvalidId(f"id {value!r} is not valid Unicode (it holds a lone surrogate)")
    return value


def check_ids(ids: Iterable[Any]) -> list[str]:
    if isinstance(ids, str):
        raise InvalidId("ids must be a list of strings, not one string")
    return [check_id(i) for i in ids]


def key_problem(key: Any, *, legacy: bool = False) -> str | None:
    """Why ``key`` is not a metadata key (None if it is one); ``legacy``: contract 1.0's rule."""
    if not isinstance(key, str):
        return f"metadata key {key!r} must be a string"
    if legacy:
        if METADATA_KEY_RE.fullmatch(key) and len(key) <= LEGACY_KEY_LENGTH:
            return None
        return (
            f"metadata key {key!r} is not portable to this store (contract 1.0): use letters, digits "
            f"and '_', not starting with a digit, at most {LEGACY_KEY_LENGTH} characters"
        )
    if not key:
        return "metadata key must not be empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"metadata key {key[:40]!r}... is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}"
    if key.startswith("$"):
        return f"metadata key {key!r} must not start with '$' (operators do)"
    if "\x00" in key:
        return f"metadata key {key!r} must not contain NUL characters"
    if not (key.isascii() or is_encodable(key)):
        return f"metadata key {key!r} is not valid Unicode (a lone surrogate)"
    return None


def check_key(key: Any, *, legacy: bool = False) -> str:
    problem = key_problem(key, legacy=legacy)
    if problem is not None:
        raise InvalidMetadata(problem)
    return key


def metadata_type(value: Any) -> MetadataType | None:
    """The portable type of a metadata value, or None if it is not one."""
    # ``exact is T or isinstance(value, T)``: this runs for every value of every upsert, and the
    # identity test settles the common exact types without the isinstance machinery.
    exact = type(value)
    if exact is str or isinstance(value, str):
        return MetadataType.STR
    if exact is bool or isinstance(value, bool):  # before int: bool is an int subclass
        return MetadataType.BOOL
    if exact is int or isinstance(value, int):
        return MetadataType.INT if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else None
    if exact is float or isinstance(value, float):
        return MetadataType.FLOAT if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        if not value:
            return MetadataType.EMPTY_LIST
        return MetadataType.STR_LIST if all(isinstance(v, str) for v in value) else None
    if isinstance(value, dt.datetime):
        try:
            check_datetime(value)
        except DateError:
            return None
        return MetadataType.DATETIME
    return None


def check_metadata(
    metadata: Mapping[str, Any] | None,
    allowed: Iterable[MetadataType] | None = None,
    *,
    legacy_keys: bool = False,
) -> dict[str, Any]:
    """Validate metadata; with ``allowed``, also refuse types the store declares it cannot hold.
    Returns a copy with lists as lists and without ``None`` values (absent keys)."""
    if metadata is None:
        return {}
    if isinstance(metadata, Mapping) and any(v is None for v in metadata.values()):
        metadata = {k: v for k, v in metadata.items() if v is not None}
    _check_metadata(metadata, frozenset(allowed) if allowed is not None else None, set(), legacy_keys)
    return _metadata_copy(metadata)


_LONE_SURROGATE = "holds a string that is not valid Unicode (a lone surrogate)"


def _check_metadata(
    metadata: Mapping[str, Any],
    allowed: frozenset[MetadataType] | None,
    known_keys: set[str],
    legacy_keys: bool = False,
) -> int:
    """The checks of `check_metadata`; ``known_keys`` spares re-checking keys seen in a batch.

    Returns an upper bound of `metadata_bytes` gathered on the way (the characters of the string
    values, the items of the lists), so that the exact size is computed only when it may matter."""
    if not isinstance(metadata, Mapping):
        raise InvalidMetadata(f"metadata must be a mapping, got {type(metadata).__name__}")
    chars = 0
    for key, value in metadata.items():
        if key not in known_keys:
            check_key(key, legacy=legacy_keys)
            known_keys.add(key)
        kind = metadata_type(value)
        if kind is None:
            if isinstance(value, dt.datetime):
                try:
                    check_datetime(value, f"metadata {key!r}")
                except DateError as exc:
                    raise InvalidMetadata(str(exc)) from None
            raise InvalidMetadata(
                f"metadata {key!r} has unsupported value {value!r}: use str, int (within ±2**53), "
                "finite float, bool, a list of str or a timezone-aware datetime"
            )
        # ASCII needs no encoding to rule out lone surrogates (the hot path: most values are).
        if kind is MetadataType.STR:
            chars += len(value)
            if not (value.isascii() or is_encodable(value)):
                raise InvalidMetadata(f"metadata {key!r} {_LONE_SURROGATE}")
        elif kind is MetadataType.STR_LIST:
            chars += sum(map(len, value)) + len(value)
            if not all(is_encodable(v) for v in value):
                raise InvalidMetadata(f"metadata {key!r} {_LONE_SURROGATE}")
        if allowed is not None and kind not in allowed:
            raise UnsupportedMetadata(f"metadata {key!r}: this store cannot hold values of type {kind}")
        chars += len(key)
    # JSON spends at most 6 bytes on a character (``\u001f``), and per entry at most its quotes,
    # ": ", ", " and a number, bool, datetime (``{"$date": ...}``, 42) or the brackets and quotes
    # of a value; a list item adds its quotes and ", " (4 bytes, counted as 6 with the item above).
    return 2 + 50 * len(metadata) + 6 * chars


def _json_ready(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    return encode_metadata(metadata) if has_datetimes(metadata) else metadata


def metadata_bytes(metadata: Mapping[str, Any]) -> int:
    """The size of a record's metadata as UTF-8 typed JSON (`vpa.typedjson`): what
    ``max_metadata_bytes`` bounds."""
    return len(json.dumps(_json_ready(metadata), ensure_ascii=False).encode("utf-8"))


def check_vector(vector: Any, dimension: int, *, where: str = "vector") -> np.ndarray:
    try:
        array = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidVector(f"{where} is not a list of numbers") from exc
    if array.ndim != 1:
        raise InvalidVector(f"{where} must be one-dimensional, got shape {array.shape}")
    if array.shape[0] != dimension:
        raise DimensionMismatch(dimension, int(array.shape[0]), where=where)
    if not np.isfinite(array).all():
        raise InvalidVector(f"{where} contains NaN or infinite values")
    if not array.any():
        raise InvalidVector(f"{where} is all zeros: cosine similarity is undefined for it")
    return array


def record_bytes(record: Record) -> int:
    """The size of a record's text and metadata as UTF-8 JSON: what ``max_record_bytes`` bounds."""
    return len(json.dumps([record.text, _json_ready(record.metadata)], ensure_ascii=False).encode("utf-8"))


def record_bytes_bound(record: Record) -> int:
    """An upper bound of `record_bytes` at a fraction of its cost (no JSON encoding): JSON spends
    at most 6 bytes on a character (``\\u001f``), a number at most 24, and a few on punctuation."""
    size = 6 * len(record.text) + 8
    for key, value in record.metadata.items():
        size += 6 * len(key) + 8
        if isinstance(value, str):
            size += 6 * len(value) + 2
        elif isinstance(value, list | tuple):
            size += sum(6 * len(v) + 4 for v in value) + 2
        else:
            size += 42  # a number, a bool or {"$date": "...Z"}
    return size


def check_records(
    records: Sequence[Record],
    dimension: int,
    allowed: Iterable[MetadataType] | None = None,
    max_record_bytes: int | None = None,
    *,
    max_metadata_keys: int | None = None,
    max_metadata_bytes: int | None = None,
    legacy_keys: bool = False,
) -> list[Record]:
    """Validate a whole batch before anything is written, and keep the last of duplicate ids.

    ``max_metadata_keys`` and ``max_metadata_bytes`` bound each record's metadata (`LimitExceeded`);
    the key count is checked before any key is looked at."""
    if isinstance(records, Record):
        raise InvalidVector("upsert takes a list of records, not one record")
    allowed_set = frozenset(allowed) if allowed is not None else None
    latest: dict[str, Record] = {}
    known_keys: set[str] = set()
    for record in records:
        if not isinstance(record, Record):
            raise InvalidId(f"expected a Record, got {type(record).__name__}")
        check_id(record.id)
        if record.vector.shape != (dimension,):  # Record's converter made it a 1-D float32 array
            raise DimensionMismatch(dimension, int(record.vector.size), where=f"vector of record {record.id!r}")
        if not isinstance(record.text, str):
            raise InvalidMetadata(f"text of record {record.id!r} must be a string")
        if not (record.text.isascii() or is_encodable(record.text)):  # ASCII: no surrogates, no copy
            raise InvalidMetadata(f"text of record {record.id!r} is not valid Unicode (a lone surrogate)")
        if max_metadata_keys is not None and len(record.metadata) > max_metadata_keys:
            raise LimitExceeded(
                "max_metadata_keys",
                len(record.metadata),
                max_metadata_keys,
                what=f"metadata of record {record.id!r}",
            )
        bound = _check_metadata(record.metadata, allowed_set, known_keys, legacy_keys)
        if (
            max_metadata_bytes is not None
            and bound > max_metadata_bytes  # the exact size only when it may matter
            and (size := metadata_bytes(record.metadata)) > max_metadata_bytes
        ):
            raise LimitExceeded(
                "max_metadata_bytes", size, max_metadata_bytes, what=f"metadata of record {record.id!r}"
            )
        if (
            max_record_bytes is not None
            and record_bytes_bound(record) > max_record_bytes  # the exact size only when it may matter
            and (size := record_bytes(record)) > max_record_bytes
        ):
            raise RecordTooLarge(
                f"record {record.id!r} has {size} bytes of text and metadata; this store's limit is "
                f"{max_record_bytes}"
            )
        latest.pop(record.id, None)  # re-insert so the order is that of the last occurrence
        latest[record.id] = record
    if records:
        # NaN, infinity and all-zero vectors, checked for the whole batch in one pass.
        matrix = np.stack([r.vector for r in records])
        bad = ~np.isfinite(matrix).all(axis=1) | ~matrix.any(axis=1)
        if bad.any():
            first = records[int(np.argmax(bad))]
            check_vector(first.vector, dimension, where=f"vector of record {first.id!r}")
    return list(latest.values())

"""How a VPA record is stored as a Pinecone vector, and read back unchanged.

Pinecone metadata holds strings, float64 numbers, booleans and lists of strings; IDs are 1-512
ASCII characters; a vector has the index's fixed dimension. A VPA record is encoded as:

- **id**: the VPA id itself when it is ASCII (and does not start with ``vpa~``); otherwise
  ``vpa~`` + the SHA-256 of its UTF-8 bytes. The original id is always kept in metadata under
  ``vpa-id``, which also makes ids filterable (``{"vpa-id": {"$in": [...]}}``).
- **values**: the vector, zero-padded to the index dimension (one index serves collections of any
  dimension up to its own; zero padding changes neither dot products nor norms, so cosine
  similarity is exactly that of the unpadded vectors). Reads cut the padding off again.
- **text**: under ``vpa-text``.
- **metadata**: every key as is, except empty lists, which Pinecone would treat inconsistently:
  they are left out (a missing field and an empty list match exactly the same VPA filters) and
  listed in ``vpa-empty``. Every number also gets a shadow key ``vpa-n-<key>`` holding ``"i"``
  (int) or ``"f"`` (float): Pinecone stores numbers as float64 and gives ``3`` back as ``3.0``, so
  the shadow restores ints and floats exactly, and its presence says "this field is a number",
  which the filter translation needs to negate ordering comparisons exactly.

Reserved keys all contain ``-``, which portable VPA metadata keys cannot, so nothing collides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from vpa.errors import RecordTooLarge
from vpa.models import Hit, Record

ID_KEY = "vpa-id"
TEXT_KEY = "vpa-text"
EMPTY_KEY = "vpa-empty"
NUMBER_PREFIX = "vpa-n-"
HASHED_ID_PREFIX = "vpa~"

#: Pinecone's limit on metadata per vector (40 KB).
PINECONE_METADATA_BYTES = 40 * 1024


def number_key(field: str) -> str:
    """The shadow key that exists exactly when ``field`` holds a number."""
    return NUMBER_PREFIX + field


def pinecone_id(record_id: str) -> str:
    if record_id.isascii() and not record_id.startswith(HASHED_ID_PREFIX):
        return record_id
    return HASHED_ID_PREFIX + hashlib.sha256(record_id.encode("utf-8")).hexdigest()


def encode_metadata(record: Record) -> dict[str, Any]:
    out: dict[str, Any] = {ID_KEY: record.id, TEXT_KEY: record.text}
    empty: list[str] = []
    for key, value in record.metadata.items():
        if isinstance(value, list):
            if not value:
                empty.append(key)
                continue
            out[key] = list(value)
        elif isinstance(value, (bool, str)):
            out[key] = value
        else:  # int or float (validated by the core before any I/O)
            out[key] = value
            out[number_key(key)] = "f" if isinstance(value, float) else "i"
    if empty:
        out[EMPTY_KEY] = empty
    return out


def metadata_bytes(metadata: Mapping[str, Any]) -> int:
    """Size of the metadata as compact UTF-8 JSON (how the SDK sends it)."""
    return len(orjson.dumps(metadata))


def check_size(record: Record) -> dict[str, Any]:
    """The encoded metadata, or `RecordTooLarge` if Pinecone's 40 KB limit would refuse it."""
    metadata = encode_metadata(record)
    size = metadata_bytes(metadata)
    if size > PINECONE_METADATA_BYTES:
        raise RecordTooLarge(
            f"record {record.id!r} needs {size} bytes of Pinecone metadata (text, metadata, original id "
            f"and type tags); Pinecone's limit is {PINECONE_METADATA_BYTES} bytes per vector"
        )
    return metadata


def encode_vector(record: Record, index_dimension: int) -> dict[str, Any]:
    """The wire form of one vector for ``Index.upsert``."""
    values = record.vector.tolist()
    if len(values) < index_dimension:
        values.extend([0.0] * (index_dimension - len(values)))
    return {"id": pinecone_id(record.id), "values": values, "metadata": check_size(record)}


def pad(vector: np.ndarray, index_dimension: int) -> list[float]:
    values = np.asarray(vector, dtype=np.float32).tolist()
    if len(values) < index_dimension:
        values.extend([0.0] * (index_dimension - len(values)))
    return values


def decode_metadata(stored: Mapping[str, Any] | None) -> tuple[str | None, str, dict[str, Any]]:
    """(original id, text, VPA metadata) from stored Pinecone metadata."""
    stored = dict(stored or {})
    record_id = stored.pop(ID_KEY, None)
    text = stored.pop(TEXT_KEY, "")
    empty = stored.pop(EMPTY_KEY, [])
    kinds = {
        k[len(NUMBER_PREFIX) :]: stored.pop(k) for k in [k for k in stored if k.startswith(NUMBER_PREFIX)]
    }
    metadata: dict[str, Any] = {}
    for key, value in stored.items():
        kind = kinds.get(key)
        if kind == "i" and isinstance(value, int | float) and not isinstance(value, bool):
            metadata[key] = int(value)
        elif kind == "f" and isinstance(value, int | float) and not isinstance(value, bool):
            metadata[key] = float(value)
        elif isinstance(value, list):
            metadata[key] = list(value)
        else:
            metadata[key] = value
    for key in empty:
        metadata[key] = []
    return record_id, text if isinstance(text, str) else str(text), metadata


def decode_record(
    vector_id: str, values: list[float], stored: Mapping[str, Any] | None, dimension: int
) -> Record:
    record_id, text, metadata = decode_metadata(stored)
    return Record(record_id if record_id is not None else vector_id, values[:dimension], text, metadata)


def decode_hit(vector_id: str, score: float, stored: Mapping[str, Any] | None) -> Hit:
    record_id, text, metadata = decode_metadata(stored)
    return Hit(
        record_id if record_id is not None else vector_id, min(1.0, max(-1.0, float(score))), text, metadata
    )

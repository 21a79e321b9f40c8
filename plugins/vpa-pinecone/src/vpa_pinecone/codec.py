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

A collection's definition is a record of the catalog namespace whose id is the collection name:
its metadata holds `vpa.stores.definition.dump_definition` under ``vpa_definition`` (0.1 wrote
the fields one by one; `decode_definition` still reads those).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import numpy as np
import orjson
from vpa.errors import RecordTooLarge, StoreError
from vpa.models import CollectionInfo, EmbedderFingerprint, Hit, Metric, Record
from vpa.stores.base import batched
from vpa.stores.definition import DEFINITION_KEY, dump_definition, load_definition
from vpa.validation import record_bytes_bound

ID_KEY = "vpa-id"
TEXT_KEY = "vpa-text"
EMPTY_KEY = "vpa-empty"
NUMBER_PREFIX = "vpa-n-"
HASHED_ID_PREFIX = "vpa~"

#: Pinecone's limit on metadata per vector (40 KB).
PINECONE_METADATA_BYTES = 40 * 1024
#: The most bytes one float32 takes in the JSON of a request (``-0.0012345678912345678,``).
FLOAT_JSON_BYTES = 25
#: ``0.0,``: one dimension of zero padding.
PAD_JSON_BYTES = 4
#: Characters of ids in one ``GET /vectors/fetch`` query string.
FETCH_URL_BUDGET = 6000


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


def metadata_bytes_bound(record: Record) -> int:
    """An upper bound of `metadata_bytes` of the encoded metadata, without encoding it: VPA's
    bound of text and metadata, plus the original id, the type tags and the reserved keys."""
    size = record_bytes_bound(record) + 6 * len(record.id) + 64
    for key, value in record.metadata.items():
        if isinstance(value, list):
            if not value:
                size += 6 * len(key) + 4  # listed in vpa-empty
        elif not isinstance(value, bool | str):
            size += 6 * len(key) + 16  # "vpa-n-<key>":"i",
    return size


def check_size(record: Record) -> Record:
    """``record``, or `RecordTooLarge` if its encoded metadata exceeds Pinecone's 40 KB per vector
    (encoded only when the cheap bound says it may)."""
    if metadata_bytes_bound(record) <= PINECONE_METADATA_BYTES:
        return record
    size = metadata_bytes(encode_metadata(record))
    if size > PINECONE_METADATA_BYTES:
        raise RecordTooLarge(
            f"record {record.id!r} needs {size} bytes of Pinecone metadata (text, metadata, original id "
            f"and type tags); Pinecone's limit is {PINECONE_METADATA_BYTES} bytes per vector"
        )
    return record


def vector_bytes_bound(record: Record, index_dimension: int) -> int:
    """An upper bound of what `encode_vector` adds to an upsert request, as compact JSON."""
    dimension = int(record.vector.size)
    values = FLOAT_JSON_BYTES * dimension + PAD_JSON_BYTES * max(0, index_dimension - dimension)
    return values + max(6 * len(record.id), 68) + metadata_bytes_bound(record) + 64


def encode_vector(record: Record, index_dimension: int) -> dict[str, Any]:
    """The wire form of one vector for ``Index.upsert``."""
    values = record.vector.tolist()
    if len(values) < index_dimension:
        values.extend([0.0] * (index_dimension - len(values)))
    return {"id": pinecone_id(record.id), "values": values, "metadata": encode_metadata(record)}


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


def id_batches(pids: list[str], size: int, url_budget: int | None = None) -> Iterator[list[str]]:
    """``pids`` in requests of at most ``size`` ids and, for a fetch (ids in the query string),
    ``url_budget`` characters of URL-encoded ids."""
    return batched(pids, size, url_budget, lambda pid: len(quote(pid, safe="")) + 5)


# --- the collection definition, a record of the catalog namespace --------------------------------


def encode_definition(info: CollectionInfo) -> dict[str, Any]:
    """The metadata of the catalog record of collection ``info``."""
    return {ID_KEY: info.name, "vpa-kind": "collection", DEFINITION_KEY: dump_definition(info)}


def decode_definition(name: str, metadata: Mapping[str, Any]) -> CollectionInfo:
    """The definition of collection ``name`` from its catalog record (0.2 or 0.1 format)."""
    if DEFINITION_KEY in metadata:
        return load_definition(name, str(metadata[DEFINITION_KEY]))
    return _legacy_definition(name, metadata)


def _legacy_definition(name: str, metadata: Mapping[str, Any]) -> CollectionInfo:
    """0.1's catalog record: ``dimension``, ``metric`` and ``fingerprint_*`` fields (numbers as
    Pinecone gives them back, float64)."""
    try:
        fingerprint = None
        if "fingerprint_name" in metadata:
            fingerprint = EmbedderFingerprint(
                str(metadata["fingerprint_name"]),
                str(metadata["fingerprint_model"]),
                _as_int(metadata["fingerprint_dimension"]),
            )
        return CollectionInfo(
            name=name,
            dimension=_as_int(metadata["dimension"]),
            metric=Metric(metadata.get("metric", "cosine")),
            fingerprint=fingerprint,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise StoreError(f"the catalog record of collection {name!r} is damaged: {exc}") from exc


def _as_int(value: Any) -> int:
    number = float(value)
    if not math.isfinite(number) or number != int(number):
        raise ValueError(f"{value!r} is not an integer")
    return int(number)

"""How a VPA record is stored as a Pinecone vector, and read back unchanged.

Pinecone metadata holds strings, float64 numbers, booleans and lists of strings; keys are strings
that must not start with ``$``; IDs are 1-512 ASCII characters; a vector has the index's fixed
dimension. A VPA record is encoded as:

- **id**: the VPA id itself when it is ASCII (and does not start with ``vpa~``); otherwise
  ``vpa~`` + the SHA-256 of its UTF-8 bytes. The original id is always kept in metadata under
  ``vpa-id``, which also makes ids filterable (``{"vpa-id": {"$in": [...]}}``).
- **values**: the vector, zero-padded to the index dimension (one index serves collections of any
  dimension up to its own; zero padding changes neither dot products nor norms, so cosine
  similarity is exactly that of the unpadded vectors). Reads cut the padding off again.
- **text**: under ``vpa-text``.
- **keys**: every VPA key as is (contract 1.1 keys such as ``source-url``, ``og:title``,
  ``page.number`` or ``Größe`` are plain JSON object keys to Pinecone), except a key that itself
  starts with ``vpa-``, the prefix of the reserved keys: it is stored as ``vpa-u-<key>``. So no
  VPA key can collide with a reserved one (`stored_key`, `vpa_key`).
- **values**: strings, booleans and non-empty lists of strings as they are. Empty lists are left
  out and their (stored) keys listed in ``vpa-empty``. Every number and datetime also gets a type
  tag ``vpa-n-<stored key>``: ``"i"`` (int), ``"f"`` (float) or ``"d"`` (a datetime, stored as
  its whole microseconds since the Unix epoch: Pinecone numbers are float64, exact within the
  ±2**53 µs VPA allows). Pinecone gives ``3`` back as ``3.0``; the tag restores ints, floats and
  datetimes exactly, and lets a filter tell a number from a datetime (a datetime never equals a
  number) and a number from anything else (to negate an ordering exactly).
- **in-place updates** (`encode_set`, Pinecone's ``update`` with ``setMetadata``, which merges
  keys and can remove none) write the tag of every key they set, ``"x"`` for a value that is not
  a number or a datetime, so a tag is never stale. A key that was an empty list keeps its entry
  in ``vpa-empty`` after it is set natively: a stored value wins over the entry when reading, and
  the filters never read the entry when the value is there.

A collection's definition is a record of the catalog namespace whose id is the collection name:
its metadata holds `vpa.stores.definition.dump_definition` under ``vpa_definition`` (0.1 wrote
the fields one by one; `decode_definition` still reads those).
"""

from __future__ import annotations

import datetime as dt
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
from vpa.typedjson import from_micros, to_micros
from vpa.validation import record_bytes_bound

ID_KEY = "vpa-id"
TEXT_KEY = "vpa-text"
EMPTY_KEY = "vpa-empty"
#: Every reserved key starts with this; a VPA key that does is stored under `USER_PREFIX`.
RESERVED_PREFIX = "vpa-"
USER_PREFIX = "vpa-u-"
NUMBER_PREFIX = "vpa-n-"
HASHED_ID_PREFIX = "vpa~"

#: The type tags (the value of ``vpa-n-<key>``).
INT, FLOAT, DATE, OTHER = "i", "f", "d", "x"
NUMBER_TAGS = (INT, FLOAT)

#: Pinecone's limit on metadata per vector (40 KB).
PINECONE_METADATA_BYTES = 40 * 1024
#: The most bytes one float32 takes in the JSON of a request (``-0.0012345678912345678,``).
FLOAT_JSON_BYTES = 25
#: ``0.0,``: one dimension of zero padding.
PAD_JSON_BYTES = 4
#: Characters of ids in one ``GET /vectors/fetch`` query string.
FETCH_URL_BUDGET = 6000


def stored_key(key: str) -> str:
    """The Pinecone metadata key of VPA key ``key``."""
    return USER_PREFIX + key if key.startswith(RESERVED_PREFIX) else key


def vpa_key(stored: str) -> str | None:
    """The VPA key stored under ``stored``; None for a reserved key."""
    if stored.startswith(USER_PREFIX):
        return stored[len(USER_PREFIX) :]
    if stored.startswith(RESERVED_PREFIX):
        return None
    return stored


def tag_key(key: str) -> str:
    """The key of VPA key ``key``'s type tag (present for numbers and datetimes)."""
    return NUMBER_PREFIX + stored_key(key)


def pinecone_id(record_id: str) -> str:
    if record_id.isascii() and not record_id.startswith(HASHED_ID_PREFIX):
        return record_id
    return HASHED_ID_PREFIX + hashlib.sha256(record_id.encode("utf-8")).hexdigest()


def encode_scalar(value: Any) -> Any:
    """A filter or metadata value as Pinecone holds it (a datetime: its microseconds)."""
    return to_micros(value) if isinstance(value, dt.datetime) else value


def _tag(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return DATE
    if isinstance(value, bool | str | list):
        return OTHER
    return FLOAT if isinstance(value, float) else INT


def _encode_fields(metadata: Mapping[str, Any], out: dict[str, Any], *, tag_all: bool) -> list[str]:
    """Add ``metadata``'s encoded fields to ``out``; return the stored keys of its empty lists."""
    empty: list[str] = []
    for key, value in metadata.items():
        name = stored_key(key)
        if isinstance(value, list):
            if not value:
                empty.append(name)
                continue
            out[name] = list(value)
        else:
            out[name] = encode_scalar(value)
        tag = _tag(value)
        if tag != OTHER or tag_all:
            out[NUMBER_PREFIX + name] = tag
    return empty


def encode_metadata(record: Record) -> dict[str, Any]:
    out: dict[str, Any] = {ID_KEY: record.id, TEXT_KEY: record.text}
    empty = _encode_fields(record.metadata, out, tag_all=False)
    if empty:
        out[EMPTY_KEY] = empty
    return out


def encode_set(changes: Mapping[str, Any]) -> dict[str, Any]:
    """``setMetadata`` for an in-place update that sets ``changes`` (no empty list: Pinecone
    cannot remove the key an empty list needs gone). Every key's tag is written, so none is stale."""
    out: dict[str, Any] = {}
    empty = _encode_fields(changes, out, tag_all=True)
    if empty:
        raise ValueError(f"an in-place update cannot set empty lists ({empty})")
    return out


def metadata_bytes(metadata: Mapping[str, Any]) -> int:
    """Size of the metadata as compact UTF-8 JSON (how the SDK sends it)."""
    return len(orjson.dumps(metadata))


def metadata_bytes_bound(record: Record) -> int:
    """An upper bound of `metadata_bytes` of the encoded metadata, without encoding it: VPA's
    bound of text and metadata, plus the original id, the type tags and the reserved keys."""
    size = record_bytes_bound(record) + 6 * len(record.id) + 64
    for key, value in record.metadata.items():
        if key.startswith(RESERVED_PREFIX):
            size += 2 * len(USER_PREFIX)  # the escape, in the key and in its tag or empty entry
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
    tags: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    for name, value in stored.items():
        if name.startswith(NUMBER_PREFIX):
            tags[name[len(NUMBER_PREFIX) :]] = value
        elif vpa_key(name) is not None:
            fields[name] = value
    metadata: dict[str, Any] = {}
    for name, value in fields.items():
        key = vpa_key(name)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        tag = tags.get(name)
        if number and tag == INT:
            metadata[key] = int(value)  # type: ignore[index]
        elif number and tag == FLOAT:
            metadata[key] = float(value)  # type: ignore[index]
        elif number and tag == DATE:
            metadata[key] = from_micros(int(value))  # type: ignore[index]
        elif isinstance(value, list):
            metadata[key] = list(value)  # type: ignore[index]
        else:
            metadata[key] = value  # type: ignore[index]
    for name in empty if isinstance(empty, list) else []:
        key = vpa_key(name)
        if key is not None and name not in fields:  # a value set in place since wins
            metadata[key] = []
    return record_id, text if isinstance(text, str) else str(text), metadata


def decode_record(
    vector_id: str, values: list[float], stored: Mapping[str, Any] | None, dimension: int
) -> Record:
    """The VPA record of a fetched vector (``values`` empty: a record without its vector)."""
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

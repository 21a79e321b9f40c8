"""Records ↔ Milvus rows, the collection's schema and definition, and collection names.

**The schema.** Each VPA collection is one Milvus collection with fixed fields::

    id        VARCHAR(2048) primary key   (VPA ids: up to 512 characters = 2048 UTF-8 bytes)
    vector    FLOAT_VECTOR(dimension)     FLAT index, metric COSINE (exact search)
    text      VARCHAR(65535)
    metadata  JSON                        typed keys, see below

**Typed keys.** Milvus compares a JSON value only with a literal of the same type (an int key
with an int literal, a float key with a float literal), treats a missing key as NULL (so ``not``
of a comparison on a missing key is NULL, not true, in Milvus Lite), and Python-style engines
consider ``True == 1``. VPA needs int and float to compare as numbers, bool never to equal a number,
and negation to be an exact complement. So each metadata value is stored under a key that names its
type — ``s_`` str, ``i_`` int, ``f_`` float, ``b_`` bool, ``l_`` list of str, ``d_`` datetime::

    {"year": 2020, "score": 0.5, "lang": "en", "draft": False, "tags": ["a"]}
    -> {"i_year": 2020, "f_score": 0.5, "s_lang": "en", "b_draft": False, "l_tags": ["a"]}

**Datetimes** (contract 1.1; Milvus has no date type in a JSON field) are stored under ``d_`` as the
exact integer of microseconds since the epoch (`vpa.typedjson.to_micros`): ordered as integers by
Milvus, never equal to a number (``i_``/``f_``) or a string (``s_``), and read back as a UTC
datetime equal to the one written.

**Keys.** A key shaped like an identifier (``[A-Za-z_][A-Za-z0-9_]*``, every 1.0 key) is stored as
it is after its tag, as vpa-milvus 0.1 and 0.2 did. Any other key (contract 1.1: ``og:title``,
``source-url``, ``Größe``, ``a[0]``, ``"quoted"`` ...) is stored escaped after the tag plus ``x``:
ASCII letters and digits are kept, ``_`` is doubled, every other character is ``_<hex code
point>_`` — ``og:title`` → ``sx_og_3a_title``. So a stored key only ever holds ``[A-Za-z0-9_]``:
nothing a JSON path (``/``, ``.``, ``~``, brackets) or an expression (quotes, backslashes) could
read as syntax, on any Milvus version; `decode_metadata` gives back the exact user key.

A filter then addresses exactly the typed key(s) a comparison can match, with a literal of that
key's type, and guards each comparison with ``exists`` so that it is never NULL (see filters.py).
The prefix also restores the exact Python type on the way back (``2.0`` stays a float even if a
JSON layer prints it as ``2``).

**The definition** (dimension, metric, embedder fingerprint) is one collection property,
``vpa_definition``, written by `vpa.stores.definition.dump_definition`; collections created by
vpa-milvus 0.1 kept it in ``vpa.format``/``vpa.dimension``/``vpa.metric``/``vpa.fingerprint``,
which `info_from_description` still reads.

**Collection names.** VPA names may contain '-', Milvus names may not. A name without '-' is used
as it is; one with '-' becomes ``_`` + the name with '_' doubled and '-' written as '_0'. Milvus
names of the second kind start with '_', which no VPA name does, so the map is one-to-one and
`vpa_name` inverts it.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np
from vpa.errors import InvalidCollection
from vpa.models import CollectionInfo, Hit, Record
from vpa.stores.definition import DEFINITION_KEY, dump_definition, load_definition
from vpa.typedjson import from_micros, to_micros

ID_FIELD = "id"
VECTOR_FIELD = "vector"
TEXT_FIELD = "text"
#: The JSON field that holds the typed metadata.
METADATA_FIELD = "metadata"
#: Bytes of the id field: VPA ids are up to 512 characters, i.e. up to 2048 UTF-8 bytes.
ID_MAX_BYTES = 2048
#: Bytes of the VARCHAR text field, and of the JSON metadata field.
TEXT_MAX_BYTES = 65_535
#: vpa-milvus 0.1 kept the definition in these properties (``vpa.dimension`` marks them).
LEGACY_DIMENSION, LEGACY_METRIC, LEGACY_FINGERPRINT = "vpa.dimension", "vpa.metric", "vpa.fingerprint"

STR, INT, FLOAT, BOOL, LIST, DATE = "s", "i", "f", "b", "l", "d"
PREFIXES = (STR, INT, FLOAT, BOOL, LIST, DATE)
#: After a tag, marks a key stored escaped (`escape_key`): ``sx_og_3a_title``.
ESCAPED = "x"
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEPT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def type_tag(value: Any) -> str:
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return FLOAT
    if isinstance(value, str):
        return STR
    if isinstance(value, list | tuple):
        return LIST
    if isinstance(value, dt.datetime):
        return DATE
    raise TypeError(f"not a portable metadata value: {type(value).__name__}")


def escape_key(key: str) -> str:
    """``key`` in ``[A-Za-z0-9_]`` only: letters and digits kept, ``_`` doubled, any other
    character ``_<hex code point>_``. One-to-one; `unescape_key` inverts it."""
    return "".join(ch if ch in _KEPT else "__" if ch == "_" else f"_{ord(ch):x}_" for ch in key)


def unescape_key(text: str) -> str | None:
    """Invert `escape_key`; None for text it never produces."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "_":
            out.append(ch)
            i += 1
        elif text.startswith("__", i):
            out.append("_")
            i += 2
        else:
            end = text.find("_", i + 1)
            digits = text[i + 1 : end]
            if end < 0 or not digits or any(c not in "0123456789abcdef" for c in digits):
                return None
            try:
                out.append(chr(int(digits, 16)))
            except (ValueError, OverflowError):
                return None
            i = end + 1
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def typed_key(tag: str, key: str) -> str:
    """The stored JSON key of metadata key ``key`` holding a value of type ``tag``."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{tag}_{key}"
    return f"{tag}{ESCAPED}_{escape_key(key)}"


def _user_key(name: str) -> tuple[str, str] | None:
    """(tag, user key) of a stored JSON key; None for one VPA did not write."""
    tag, sep, rest = name.partition("_")
    if not sep or not rest:
        return None
    if len(tag) == 1:
        return tag, rest
    if len(tag) == 2 and tag[1] == ESCAPED:
        key = unescape_key(rest)
        return None if key is None else (tag[0], key)
    return None


def encode_value(tag: str, value: Any) -> Any:
    if tag == LIST:
        return list(value)
    if tag == DATE:
        return to_micros(value)
    return value


def encode_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """VPA metadata (already validated) → the JSON object stored in Milvus."""
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        tag = type_tag(value)
        out[typed_key(tag, key)] = encode_value(tag, value)
    return out


def decode_metadata(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """The stored JSON object → VPA metadata with the original Python types and keys."""
    out: dict[str, Any] = {}
    for name, value in (stored or {}).items():
        typed = _user_key(name)
        if typed is None:
            continue  # not written by VPA; ignore rather than guess a type
        tag, key = typed
        if tag == INT:
            out[key] = int(value)
        elif tag == FLOAT:
            out[key] = float(value)
        elif tag == BOOL:
            out[key] = bool(value)
        elif tag == STR:
            out[key] = str(value)
        elif tag == LIST:
            out[key] = [str(v) for v in value]
        elif tag == DATE:
            out[key] = from_micros(int(value))
    return out


# --- rows ------------------------------------------------------------------------------------------

#: What a search returns with each hit; `record_from_row` reads rows of `RECORD_FIELDS`.
HIT_FIELDS = [TEXT_FIELD, METADATA_FIELD]
RECORD_FIELDS = [ID_FIELD, VECTOR_FIELD, TEXT_FIELD, METADATA_FIELD]
#: A record without its vector (``scroll(with_vectors=False)``).
RECORD_FIELDS_NO_VECTOR = [ID_FIELD, TEXT_FIELD, METADATA_FIELD]


def to_row(record: Record) -> dict[str, Any]:
    """A validated record → the row Milvus stores."""
    return {
        ID_FIELD: record.id,
        VECTOR_FIELD: record.vector.tolist(),
        TEXT_FIELD: record.text,
        METADATA_FIELD: encode_metadata(record.metadata),
    }


def record_from_row(row: Mapping[str, Any]) -> Record:
    """A row of `RECORD_FIELDS` (or `RECORD_FIELDS_NO_VECTOR`: an empty vector) → a record; the
    vector is the stored float32 values exactly."""
    vector = row.get(VECTOR_FIELD)
    return Record(
        row[ID_FIELD],
        () if vector is None else np.asarray(vector, dtype=np.float32),
        row.get(TEXT_FIELD) or "",
        decode_metadata(row.get(METADATA_FIELD)),
    )


def hit_from_result(hit: Mapping[str, Any]) -> Hit:
    """One hit of a COSINE search: its distance *is* the cosine similarity (clipped to [-1, 1])."""
    entity = hit["entity"]
    score = float(np.clip(hit["distance"], -1.0, 1.0))
    return Hit(hit["id"], score, entity.get(TEXT_FIELD) or "", decode_metadata(entity.get(METADATA_FIELD)))


# --- the collection ---------------------------------------------------------------------------------


def schema(dimension: int) -> Any:
    """The Milvus schema of a VPA collection (see the module docstring)."""
    from pymilvus import DataType, MilvusClient

    fields = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    fields.add_field(ID_FIELD, DataType.VARCHAR, is_primary=True, max_length=ID_MAX_BYTES)
    fields.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=dimension)
    fields.add_field(TEXT_FIELD, DataType.VARCHAR, max_length=TEXT_MAX_BYTES)
    fields.add_field(METADATA_FIELD, DataType.JSON)
    return fields


def vector_index() -> Any:
    """FLAT with metric COSINE: brute-force cosine, the exact top-k."""
    from pymilvus import MilvusClient

    index = MilvusClient.prepare_index_params()
    index.add_index(field_name=VECTOR_FIELD, index_type="FLAT", metric_type="COSINE", index_name=VECTOR_FIELD)
    return index


def properties(info: CollectionInfo) -> dict[str, str]:
    """The collection properties that keep its definition."""
    return {DEFINITION_KEY: dump_definition(info)}


def is_vpa_collection(props: Mapping[str, Any]) -> bool:
    """Whether a Milvus collection's properties hold a VPA definition (of any version)."""
    return DEFINITION_KEY in props or LEGACY_DIMENSION in props


def info_from_description(name: str, description: Mapping[str, Any]) -> CollectionInfo:
    """The `CollectionInfo` of VPA collection ``name`` from Milvus's ``describe_collection``."""
    props = description.get("properties") or {}
    if DEFINITION_KEY in props:
        info = load_definition(name, props[DEFINITION_KEY])
    elif LEGACY_DIMENSION in props:
        info = _legacy_definition(name, props)
    else:
        raise InvalidCollection(
            f"the Milvus collection {milvus_name(name)!r} exists but was not created by VPA "
            f"(it has no {DEFINITION_KEY} property); use another collection name"
        )
    for field in description.get("fields", []):  # the vector field's own dimension is the truth
        if field.get("name") == VECTOR_FIELD and "dim" in field.get("params", {}):
            info = attrs.evolve(info, dimension=int(field["params"]["dim"]))
    return info


def _legacy_definition(name: str, props: Mapping[str, Any]) -> CollectionInfo:
    """A definition written by vpa-milvus 0.1 (``vpa.format`` "1")."""
    try:
        fingerprint = props.get(LEGACY_FINGERPRINT)
        data = {
            "vpa": 1,
            "dimension": int(props[LEGACY_DIMENSION]),
            "metric": props.get(LEGACY_METRIC, "cosine"),
            "fingerprint": json.loads(fingerprint) if fingerprint else None,
        }
    except (ValueError, TypeError) as exc:
        raise InvalidCollection(f"collection {name!r} has an unreadable VPA definition ({exc})") from None
    return load_definition(name, data)


# --- collection names ------------------------------------------------------------------------------


def milvus_name(name: str) -> str:
    """A portable VPA collection name → a valid Milvus collection name (one-to-one)."""
    if "-" not in name:
        return name
    return "_" + name.replace("_", "__").replace("-", "_0")


def vpa_name(milvus: str) -> str | None:
    """Invert `milvus_name`; None for a Milvus name that no VPA name maps to."""
    if not milvus.startswith("_"):
        return milvus if "-" not in milvus else None
    out: list[str] = []
    chars = iter(milvus[1:])
    for ch in chars:
        if ch != "_":
            out.append(ch)
            continue
        nxt = next(chars, None)
        if nxt == "_":
            out.append("_")
        elif nxt == "0":
            out.append("-")
        else:
            return None
    name = "".join(out)
    return name if "-" in name else None

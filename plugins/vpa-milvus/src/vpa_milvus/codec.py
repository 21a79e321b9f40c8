"""Records ↔ Milvus rows, the collection's schema and definition, and collection names.

**The schema.** Each VPA collection is one Milvus collection with fixed fields::

    id        VARCHAR(2048) primary key   (VPA ids: up to 512 characters = 2048 UTF-8 bytes)
    vector    FLOAT_VECTOR(dimension)     FLAT index, metric COSINE (exact search)
    text      VARCHAR(65535)
    metadata  JSON                        typed keys, see below
    lexical_text  VARCHAR(65535)          analyser "standard": the BM25 input, VPA's tokens
    lexical_bm25  SPARSE_FLOAT_VECTOR     the BM25 function's output, SPARSE_INVERTED_INDEX (BM25)

The last two (vpa-milvus 0.3.2, where the engine has a BM25 function: Milvus Lite, a 2.5+
server) carry lexical search: ``lexical_text`` holds `lexical_form` of the text — VPA's own
tokens joined by spaces — so that Milvus's analyser sees exactly VPA's tokens. A collection
created without them (earlier versions, a 2.3/2.4 server) answers everything but lexical
search, which names the fix (copy it into a new collection).

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
#: Lexical search (vpa-milvus 0.3.2): the VARCHAR the BM25 function reads (`lexical_form` of the
#: text, analyser ``standard``) and the sparse vector it writes (SPARSE_INVERTED_INDEX, BM25).
LEXICAL_TEXT_FIELD = "lexical_text"
LEXICAL_FIELD = "lexical_bm25"
LEXICAL_FUNCTION = "vpa_bm25"
#: Milvus's analyser: ``\w+``, lower-cased, no stop words (Milvus Lite's and the server's name).
ANALYZER_PARAMS = {"tokenizer": "standard"}
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


def _decode_list(value: Any) -> list[str]:
    return [str(v) for v in value]


def _decode_date(value: Any) -> dt.datetime:
    return from_micros(int(value))


#: A stored value → its VPA type, by tag (the exact Python type, whatever JSON made of it).
_DECODERS = {INT: int, FLOAT: float, BOOL: bool, STR: str, LIST: _decode_list, DATE: _decode_date}


@functools.lru_cache(maxsize=8192)
def _stored_key(name: str) -> tuple[Any, str] | None:
    """(decoder, user key) of a stored JSON key, cached: a listing meets the same few keys on
    every row; None for a key VPA did not write."""
    typed = _user_key(name)
    if typed is None or typed[0] not in _DECODERS:
        return None
    return _DECODERS[typed[0]], typed[1]


def decode_metadata(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """The stored JSON object → VPA metadata with the original Python types and keys (a key VPA
    did not write is ignored rather than given a guessed type)."""
    out: dict[str, Any] = {}
    if not stored:
        return out
    for name, value in stored.items():
        typed = _stored_key(name)
        if typed is not None:
            out[typed[1]] = typed[0](value)
    return out


# --- rows ------------------------------------------------------------------------------------------

#: What a search returns with each hit; `record_from_row` reads rows of `RECORD_FIELDS`.
HIT_FIELDS = [TEXT_FIELD, METADATA_FIELD]
RECORD_FIELDS = [ID_FIELD, VECTOR_FIELD, TEXT_FIELD, METADATA_FIELD]
#: A record without its vector (``scroll(with_vectors=False)``).
RECORD_FIELDS_NO_VECTOR = [ID_FIELD, TEXT_FIELD, METADATA_FIELD]


def lexical_form(text: str) -> str:
    """What the BM25 function reads for ``text``: VPA's own tokens (`vpa.lexical.tokenize`:
    NFKC, case-folded, ``\\w+``, cut to 64 characters) joined by single spaces, so Milvus's
    ``standard`` analyser (``\\w+``, lower-cased) meets exactly VPA's tokens — not the raw text,
    where it would not fold ``Straße``/``STRASSE``, ligatures or full-width letters, nor cut long
    tokens. A form longer than the field (NFKC can expand a few rare characters) keeps the tokens
    that fit, whole."""
    from vpa.lexical import tokenize

    form = " ".join(tokenize(text))
    if len(form) * 4 <= TEXT_MAX_BYTES or len(form.encode("utf-8")) <= TEXT_MAX_BYTES:
        return form
    cut = form.encode("utf-8")[: TEXT_MAX_BYTES + 1].decode("utf-8", "ignore")
    return cut[: cut.rfind(" ")] if " " in cut else ""


def lexical_query_form(terms: list[str]) -> str:
    """A lexical query's distinct VPA tokens as the text the BM25 field is searched with (each
    once: Milvus weighs a repeated query token by its count, VPA counts it once)."""
    return " ".join(terms)


def to_row(record: Record, lexical: bool = False) -> dict[str, Any]:
    """A validated record → the row Milvus stores (with the BM25 input of a lexical collection)."""
    row = {
        ID_FIELD: record.id,
        VECTOR_FIELD: record.vector.tolist(),
        TEXT_FIELD: record.text,
        METADATA_FIELD: encode_metadata(record.metadata),
    }
    if lexical:
        row[LEXICAL_TEXT_FIELD] = lexical_form(record.text)
    return row


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


def row_ids(rows: list[Any]) -> list[str]:
    """The ids of a query's rows without materialising the rest of each row (pymilvus 3 hands
    out a list whose items decode their vector and JSON fields when first read)."""
    return [row[ID_FIELD] for row in list.__iter__(rows)]


def records_from_rows(rows: list[Any]) -> list[Record]:
    """A query's rows of `RECORD_FIELDS` (or `RECORD_FIELDS_NO_VECTOR`) → records, as
    `record_from_row` makes them, column by column where pymilvus allows it.

    pymilvus 3 returns a ``HybridExtraList``: ids and text decoded, the vector and JSON fields
    left in the response's columns (``_lazy_field_data``) and decoded cell by cell when a row is
    first read — about 0.2 ms a row through its generic path, more than Milvus Lite takes to
    answer the query. Here the vector column becomes one float32 array (the float32 values the
    response carries, exactly) and each JSON cell one ``orjson.loads``. Anything else — another
    client, a nullable column, a lazy field this does not know, a row already read — takes the
    row-by-row path, so the records are the same either way (tests/test_milvus_scroll.py)."""
    columns = _lazy_columns(rows)
    if columns is None:
        return [record_from_row(row) for row in rows]
    raw, vectors, cells = columns
    import orjson

    out = []
    empty = np.zeros(0, dtype=np.float32)
    for position, row in enumerate(raw):
        index = row.get("_original_idx", position)
        metadata = row.get(METADATA_FIELD) if cells is None else orjson.loads(cells[index])
        out.append(
            Record(
                row[ID_FIELD],
                empty if vectors is None else vectors[index],
                row.get(TEXT_FIELD) or "",
                decode_metadata(metadata),
            )
        )
    return out


def _lazy_columns(rows: Any) -> tuple[list[dict[str, Any]], np.ndarray | None, Any] | None:
    """(the rows' decoded part, the vector column as an (n, dim) float32 array or None, the JSON
    column's cells or None) of a pymilvus 3 result, or None where that shape is not certain."""
    lazy = getattr(rows, "_lazy_field_data", None)
    bitmap = getattr(rows, "_materialized_bitmap", None)
    if not isinstance(rows, list) or not isinstance(lazy, list) or not isinstance(bitmap, list):
        return None
    if any(bitmap):  # some rows were read already: their cells may have moved into the rows
        return None
    try:
        from pymilvus import DataType

        raw = list(list.__iter__(rows))
        vectors = cells = None
        for data in lazy:
            if len(data.valid_data):
                return None  # a nullable column: cells are not at their row's index
            if data.field_name == VECTOR_FIELD and data.type == DataType.FLOAT_VECTOR:
                dim = int(data.vectors.dim)
                flat = np.array(data.vectors.float_vector.data, dtype=np.float32)
                if dim <= 0 or flat.size % dim:
                    return None
                vectors = flat.reshape(-1, dim)
            elif data.field_name == METADATA_FIELD and data.type == DataType.JSON and not data.is_dynamic:
                cells = data.scalars.json_data.data
            else:
                return None
        for position, row in enumerate(raw):
            if not isinstance(row, dict) or ID_FIELD not in row:
                return None
            index = row.get("_original_idx", position)
            if (vectors is not None and index >= len(vectors)) or (cells is not None and index >= len(cells)):
                return None
        return raw, vectors, cells
    except (AttributeError, TypeError, ValueError, ImportError):
        return None


def hit_from_result(hit: Mapping[str, Any]) -> Hit:
    """One hit of a COSINE search: its distance *is* the cosine similarity (clipped to [-1, 1])."""
    entity = hit["entity"]
    score = float(np.clip(hit["distance"], -1.0, 1.0))
    return Hit(hit["id"], score, entity.get(TEXT_FIELD) or "", decode_metadata(entity.get(METADATA_FIELD)))


def scored_hit(hit: Mapping[str, Any]) -> Hit:
    """One hit of a BM25 search or of an RRF ``hybrid_search``: the score is the engine's, positive
    (Milvus Lite 3.2 reports a BM25 hit's distance negated, smaller-is-better; a server reports
    it as it is — either way its magnitude is the BM25 score)."""
    entity = hit["entity"]
    score = abs(float(hit["distance"]))
    return Hit(hit["id"], score, entity.get(TEXT_FIELD) or "", decode_metadata(entity.get(METADATA_FIELD)))


# --- the collection ---------------------------------------------------------------------------------


def schema(dimension: int, lexical: bool = True) -> Any:
    """The Milvus schema of a VPA collection (see the module docstring); ``lexical``: with the
    BM25 input field, the BM25 function and its sparse output field."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    fields = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    fields.add_field(ID_FIELD, DataType.VARCHAR, is_primary=True, max_length=ID_MAX_BYTES)
    fields.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=dimension)
    fields.add_field(TEXT_FIELD, DataType.VARCHAR, max_length=TEXT_MAX_BYTES)
    fields.add_field(METADATA_FIELD, DataType.JSON)
    if lexical:
        fields.add_field(
            LEXICAL_TEXT_FIELD,
            DataType.VARCHAR,
            max_length=TEXT_MAX_BYTES,
            enable_analyzer=True,
            analyzer_params=dict(ANALYZER_PARAMS),
        )
        fields.add_field(LEXICAL_FIELD, DataType.SPARSE_FLOAT_VECTOR)
        fields.add_function(
            Function(
                name=LEXICAL_FUNCTION,
                function_type=FunctionType.BM25,
                input_field_names=[LEXICAL_TEXT_FIELD],
                output_field_names=[LEXICAL_FIELD],
            )
        )
    return fields


def vector_index(lexical: bool = False, *, lite: bool = False) -> Any:
    """FLAT with metric COSINE: brute-force cosine, the exact top-k; ``lexical``: and the BM25
    field's SPARSE_INVERTED_INDEX with VPA's k1 and b. pymilvus 3 sends an index's parameters as
    flat key-value pairs, which a server reads; Milvus Lite 3.2 reads only a ``params`` pair (a
    JSON object, the older wire form) and would silently keep its own default k1 = 1.5 — so in
    Lite mode they go in that form (tests/test_milvus_lexical.py checks the scores' k1)."""
    from pymilvus import MilvusClient
    from vpa.lexical import BM25_SPEC

    index = MilvusClient.prepare_index_params()
    index.add_index(field_name=VECTOR_FIELD, index_type="FLAT", metric_type="COSINE", index_name=VECTOR_FIELD)
    if lexical:
        bm25 = {"bm25_k1": BM25_SPEC.k1, "bm25_b": BM25_SPEC.b}
        index.add_index(
            field_name=LEXICAL_FIELD,
            index_type="SPARSE_INVERTED_INDEX",
            metric_type="BM25",
            index_name=LEXICAL_FIELD,
            params={"params": bm25} if lite else bm25,
        )
    return index


def has_lexical(description: Mapping[str, Any]) -> bool:
    """Whether a described collection has the BM25 field (created by vpa-milvus 0.3.2 or later
    where the engine has BM25)."""
    return any(field.get("name") == LEXICAL_FIELD for field in description.get("fields", []))


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

"""Records ↔ Weaviate objects, and a collection's definition ↔ its class (see `vpa_weaviate.naming`).

An object holds the reserved properties ``vpa_id``, ``vpa_text`` and ``vpa_norm`` (the vector's
norm, to restore a vector a server returned normalised), and one typed property per metadata key
(``m_<encoded key>``, or ``h_<digest>`` with the key in the property's description): text values
framed, numbers as ``int`` or ``number``, datetimes as ``date`` (RFC 3339, to the microsecond),
lists as ``text[]`` with ``[]`` marked; reads decode by the schema's type, so an int stays an int
and a date comes back as a UTC datetime. The keys an object has are the properties it has a
value for (Weaviate drops a null property), so a merge (``PATCH``) adds keys without reading.

Lexical search (0.3.1 classes): the record's text is also stored as VPA's tokens joined by
spaces (``vpa_terms``, `terms_text`), the class's one searchable property, tokenized ``whitespace``
— so Weaviate's BM25 counts exactly VPA's tokens (`vpa.lexical.tokenize`: NFKC, case folding,
Unicode words, the 64-character cut), not its own ``word`` analyser's. The class is created with
BM25 ``k1`` 1.2 and ``b`` 0.75 (VPA's) and stop words off (Weaviate's ``en`` preset would drop
"the" or "a" from a query); `read_schema` checks all three and says why a class cannot answer a
lexical query (`Schema.lexical_problem`): classes created before 0.3.1 have no ``vpa_terms``.

Classes created before 0.3 (``legacy``: they have a ``vpa_keys`` property) keep their layout:
each object lists its keys in ``vpa_keys`` and stores ``[]`` as is, and the class has no
null-state index (``$exists`` is `UnsupportedFilter` on it).

The class description holds VPA's definition (`vpa.stores.definition`) with the two facts only
Weaviate needs: the collection's name (so a class is VPA's only under the name it was created for,
whatever ``class_prefix`` a store reads it with) and whether it is multi-tenant::

    {"name": "docs", "multi_tenant": false, "vpa_definition": "{\\"dimension\\":384,...}"}

Classes created by vpa-weaviate 0.1 (``{"vpa": {"format": 1, "name": ..., "dimension": ...}}``)
are read too (`_legacy_definition`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
from vpa.errors import StoreError, UnsupportedMetadata
from vpa.lexical import BM25_SPEC, tokenize
from vpa.models import CollectionInfo, Hit, MetadataType, Record
from vpa.stores.definition import DEFINITION_KEY, dump_definition, load_definition
from vpa.typedjson import UTC, from_micros, to_micros
from vpa.validation import metadata_type
from weaviate.classes.config import (
    Configure,
    DataType,
    Property,
    StopwordsPreset,
    Tokenization,
    VectorDistances,
)
from weaviate.classes.data import DataObject

from vpa_weaviate import filters as wf
from vpa_weaviate.naming import (
    HASH_PREFIX,
    ID_PROP,
    KEYS_PROP,
    META_PREFIX,
    NORM_PROP,
    TERMS_PROP,
    TEXT_PROP,
    VECTOR_NAME,
    frame,
    frame_list,
    key_of,
    object_uuid,
    prop_name,
    property_description,
    unframe,
    unframe_list,
)
from vpa_weaviate.settings import WeaviateSettings

#: The Weaviate data type of each VPA metadata type (an empty list shares ``text[]`` with lists).
DATA_TYPES: dict[MetadataType, str] = {
    MetadataType.STR: wf.TEXT,
    MetadataType.INT: wf.INT,
    MetadataType.FLOAT: wf.NUMBER,
    MetadataType.BOOL: wf.BOOL,
    MetadataType.STR_LIST: wf.TEXT_ARRAY,
    MetadataType.EMPTY_LIST: wf.TEXT_ARRAY,
    MetadataType.DATETIME: wf.DATE,
}
_VPA_NAMES = {
    wf.TEXT: "str",
    wf.INT: "int",
    wf.NUMBER: "float",
    wf.BOOL: "bool",
    wf.TEXT_ARRAY: "list[str]",
    wf.DATE: "datetime",
}
#: Where a property's name starts when it may hold a metadata key.
_METADATA_PREFIXES = (META_PREFIX, HASH_PREFIX)
_FRACTION = re.compile(r"(?<=\.\d{6})\d+")


@attrs.frozen
class Schema:
    """What the store knows of a class: each metadata key's data type, the key each metadata
    property holds, and the class's layout — ``legacy`` for one created before 0.3 (it has
    ``vpa_keys`` and stores ``[]`` as is), ``null_state`` if it indexes null state (``$exists``),
    ``lexical_problem`` why it cannot answer a lexical query (None: it can, a 0.3.1 class)."""

    types: Mapping[str, str] = attrs.field(factory=dict)
    keys: Mapping[str, str] = attrs.field(factory=dict)
    legacy: bool = False
    null_state: bool = True
    lexical_problem: str | None = None

    @property
    def lexical(self) -> bool:
        return self.lexical_problem is None

    def with_key(self, key: str, data_type: str) -> Schema:
        return attrs.evolve(
            self, types={**self.types, key: data_type}, keys={**self.keys, prop_name(key): key}
        )

    def knows(self, props: Mapping[str, Any]) -> bool:
        """Whether every metadata key an object's properties carry is in this schema (if not,
        another writer added a key: read the schema again)."""
        if self.legacy or KEYS_PROP in props:
            return all(str(k) in self.types for k in props.get(KEYS_PROP) or ())
        return all(p in self.keys for p in props if p.startswith(_METADATA_PREFIXES))


# --- values and objects ---------------------------------------------------------------------------


def encode_value(data_type: str, value: Any, *, legacy: bool = False) -> Any:
    if data_type == wf.TEXT:
        return frame(value)
    if data_type == wf.TEXT_ARRAY:
        return frame_list(list(value), mark_empty=not legacy)
    if data_type == wf.DATE:
        return value.astimezone(UTC)  # the client writes RFC 3339 to the microsecond
    if data_type == wf.NUMBER:
        number = float(value)
        return 0.0 if number == 0 else number  # -0.0 would sort below 0.0 in Weaviate's index
    if data_type == wf.INT:
        return int(value)
    return bool(value)


def decode_value(data_type: str, value: Any) -> Any:
    if data_type == wf.TEXT:
        return unframe(str(value))
    if data_type == wf.TEXT_ARRAY:
        return unframe_list(value)
    if data_type == wf.DATE:
        return _utc(value)
    if data_type == wf.NUMBER:
        return float(value)
    if data_type == wf.INT:
        return int(value)
    return bool(value)


def _utc(value: Any) -> dt.datetime:
    """A date as the client returns it (an aware datetime; a string from elsewhere), in UTC."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromisoformat(_FRACTION.sub("", str(value)))  # nanoseconds: kept to µs
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return from_micros(to_micros(value))


def terms_text(text: str) -> str:
    """What ``vpa_terms`` holds for a record's text: its VPA tokens, in order, repeats kept, joined
    by single spaces (a token holds no white space, so Weaviate's ``whitespace`` tokenizer gives
    them back one for one, and the property's length is the record's BM25 length)."""
    return " ".join(tokenize(text))


def data_object(
    record: Record,
    types: Mapping[str, str],
    *,
    legacy: bool = False,
    norm: float | None = None,
    lexical: bool = False,
) -> DataObject:
    """The object of a validated record; ``types`` has a data type for each of its keys. A
    ``legacy`` class also gets the ``vpa_keys`` list; ``norm`` is the vector's norm as stored
    (given when an object is rewritten with the vector the server returned); a ``lexical`` class
    (0.3.1) gets ``vpa_terms``."""
    props: dict[str, Any] = {
        ID_PROP: record.id,
        TEXT_PROP: record.text,
        NORM_PROP: float(np.linalg.norm(record.vector.astype(np.float64))) if norm is None else norm,
    }
    if lexical:
        props[TERMS_PROP] = terms_text(record.text)
    if legacy:
        props[KEYS_PROP] = list(record.metadata)
    for key, value in record.metadata.items():
        props[prop_name(key)] = encode_value(types[key], value, legacy=legacy)
    return DataObject(
        properties=props, uuid=object_uuid(record.id), vector={VECTOR_NAME: record.vector.tolist()}
    )


def patch_properties(changes: Mapping[str, Any], types: Mapping[str, str]) -> dict[str, Any]:
    """The properties of a merge (``PATCH``) that sets ``changes`` (a 0.3 class)."""
    return {prop_name(key): encode_value(types[key], value) for key, value in changes.items()}


def decode(props: Mapping[str, Any], schema: Schema) -> tuple[str, str, dict[str, Any]]:
    """An object's VPA id, text and metadata: in a 0.3 class, every metadata property it has a
    value for; in an older object, the keys its ``vpa_keys`` lists."""
    metadata: dict[str, Any] = {}
    listed = props.get(KEYS_PROP)
    if listed is not None:
        for key in map(str, listed):
            data_type = schema.types.get(key)
            value = props.get(prop_name(key))
            if data_type is None:
                continue
            if value is None:
                if data_type == wf.TEXT_ARRAY:
                    metadata[key] = []  # a server that does not return empty arrays
                continue
            metadata[key] = decode_value(data_type, value)
    else:
        for name, value in props.items():
            key = schema.keys.get(name)
            if key is not None and value is not None:
                metadata[key] = decode_value(schema.types[key], value)
    return str(props.get(ID_PROP, "")), str(props.get(TEXT_PROP) or ""), metadata


def to_hit(obj: Any, schema: Schema) -> Hit | None:
    """A search result as a hit (None for an object some other client put into the class)."""
    if ID_PROP not in obj.properties:
        return None
    record_id, text, metadata = decode(obj.properties, schema)
    distance = obj.metadata.distance if obj.metadata.distance is not None else 1.0
    return Hit(record_id, min(1.0, max(-1.0, 1.0 - float(distance))), text, metadata)


def raw_vector(obj: Any) -> Sequence[float] | None:
    """The vector of a fetched object exactly as the server returned it."""
    return obj.vector.get(VECTOR_NAME) if isinstance(obj.vector, Mapping) else obj.vector


def to_record(obj: Any, schema: Schema, *, with_vector: bool = True) -> Record:
    """A fetched object as the record written (without its vector: an empty one)."""
    record_id, text, metadata = decode(obj.properties, schema)
    if not with_vector:
        return Record(record_id, np.zeros(0, dtype=np.float32), text, metadata)
    vector = raw_vector(obj)
    if vector is None:
        raise StoreError(f"Weaviate returned object {record_id!r} without its vector")
    return Record(record_id, restore_vector(vector, obj.properties.get(NORM_PROP)), text, metadata)


def rewritten(obj: Any, schema: Schema, changes: Mapping[str, Any], removed: Sequence[str]) -> DataObject:
    """A fetched object with ``changes`` set and ``removed`` gone, to write back whole: the vector
    and the stored norm exactly as the server returned them, the text and id as they were."""
    record_id, text, metadata = decode(obj.properties, schema)
    merged = {k: v for k, v in metadata.items() if k not in removed}
    merged.update(changes)
    vector = raw_vector(obj)
    if vector is None:
        raise StoreError(f"Weaviate returned object {record_id!r} without its vector")
    norm = obj.properties.get(NORM_PROP)
    record = Record(record_id, vector, text, merged)
    return data_object(
        record,
        schema.types,
        legacy=schema.legacy,
        norm=None if norm is None else float(norm),
        lexical=schema.lexical,
    )


def restore_vector(vector: Sequence[float], norm: Any) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float32)
    if norm is None:
        return array
    stored = float(norm)
    got = float(np.linalg.norm(array.astype(np.float64)))
    if got > 0 and stored > 0 and abs(got - stored) > 1e-5 * stored:
        array = (array.astype(np.float64) * (stored / got)).astype(np.float32)  # a normalising server
    return array


# --- schema: one typed property per metadata key --------------------------------------------------


def read_schema(config: Any) -> Schema:
    """A class's `Schema`, from its full config (``config.get()``)."""
    types: dict[str, str] = {}
    keys: dict[str, str] = {}
    legacy = False
    for prop in config.properties:
        if prop.name == KEYS_PROP:
            legacy = True
        key = key_of(prop.name, getattr(prop, "description", None))
        if key is not None:
            types[key] = prop.data_type.value
            keys[prop.name] = key
    inverted = getattr(config, "inverted_index_config", None)
    null_state = bool(getattr(inverted, "index_null_state", False))
    return Schema(types, keys, legacy, null_state, lexical_problem(config))


def lexical_problem(config: Any) -> str | None:
    """Why a class cannot answer a lexical query by VPA's BM25 (None if it can): no ``vpa_terms``
    (created before 0.3.1), or BM25 parameters, stop words or the property's tokenization changed
    since (by another client)."""
    terms = next((p for p in config.properties if p.name == TERMS_PROP), None)
    if terms is None:
        return "it was created before vpa-weaviate 0.3.1 and has no lexical index (no vpa_terms property)"
    tokenization = getattr(terms.tokenization, "value", terms.tokenization)
    if not getattr(terms, "index_searchable", False) or tokenization != Tokenization.WHITESPACE.value:
        return "its vpa_terms property is not searchable with whitespace tokenization"
    inverted = getattr(config, "inverted_index_config", None)
    bm25 = getattr(inverted, "bm25", None)
    if bm25 is None or (float(bm25.k1), float(bm25.b)) != (BM25_SPEC.k1, BM25_SPEC.b):
        got = "unknown" if bm25 is None else f"k1={bm25.k1:g}, b={bm25.b:g}"
        return f"its BM25 parameters are {got}, not VPA's k1={BM25_SPEC.k1:g}, b={BM25_SPEC.b:g}"
    stopwords = getattr(inverted, "stopwords", None)
    preset = getattr(getattr(stopwords, "preset", None), "value", getattr(stopwords, "preset", None))
    if preset != StopwordsPreset.NONE.value or getattr(stopwords, "additions", None):
        return "it removes stop words from queries (VPA's BM25 has none)"
    return None


def batch_types(metadatas: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The data type each key of validated metadata needs; two types for one key are refused."""
    needed: dict[str, str] = {}
    for metadata in metadatas:
        for key, value in metadata.items():
            kind = metadata_type(value)
            assert kind is not None  # validated
            data_type = DATA_TYPES[kind]
            seen = needed.setdefault(key, data_type)
            if seen != data_type:
                raise UnsupportedMetadata(
                    f"metadata {key!r} is {_VPA_NAMES[seen]} in one record and {_VPA_NAMES[data_type]} in "
                    "another: a Weaviate property keeps one type"
                )
    return needed


def check_types(name: str, needed: Mapping[str, str], types: Mapping[str, str]) -> None:
    """Refuse a key whose property in collection ``name`` has another type than ``needed``."""
    for key, data_type in needed.items():
        have = types.get(key)
        if have is not None and have != data_type:
            raise UnsupportedMetadata(
                f"metadata {key!r} holds {_VPA_NAMES.get(have, have)} values in collection {name!r}; "
                f"a {_VPA_NAMES[data_type]} value cannot be stored in it (a Weaviate property keeps one type)"
            )


def _property(name: str, data_type: str, *, filterable: bool, description: str | None = None) -> Property:
    """A property compared exactly: ``field`` tokenization for text, never searchable (the one
    searchable property is `terms_property`)."""
    return Property(
        name=name,
        description=description,
        data_type=DataType(data_type),
        index_filterable=filterable,
        index_searchable=False,
        index_range_filters=False,
        tokenization=Tokenization.FIELD if data_type in (wf.TEXT, wf.TEXT_ARRAY) else None,
    )


def metadata_property(key: str, data_type: str) -> Property:
    """The property of metadata key ``key``; its description names the key (`naming`)."""
    return _property(prop_name(key), data_type, filterable=True, description=property_description(key))


def terms_property() -> Property:
    """``vpa_terms``: searchable (BM25), tokenized on white space only, never filterable."""
    return Property(
        name=TERMS_PROP,
        data_type=DataType.TEXT,
        index_filterable=False,
        index_searchable=True,
        index_range_filters=False,
        tokenization=Tokenization.WHITESPACE,
    )


def reserved_properties() -> list[Property]:
    """The record's id, text and vector norm: stored, never indexed; and its terms (BM25)."""
    reserved = {ID_PROP: wf.TEXT, TEXT_PROP: wf.TEXT, NORM_PROP: wf.NUMBER}
    return [
        *(_property(name, data_type, filterable=False) for name, data_type in reserved.items()),
        terms_property(),
    ]


# --- the collection's definition and class -------------------------------------------------------


@attrs.frozen
class Definition:
    """What a class description says: VPA's definition, and whether the class is multi-tenant."""

    info: CollectionInfo
    multi_tenant: bool


def dump_description(info: CollectionInfo, multi_tenant: bool) -> str:
    document = {"name": info.name, "multi_tenant": multi_tenant, DEFINITION_KEY: dump_definition(info)}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def load_description(name: str, description: str | None) -> Definition | None:
    """The definition of collection ``name`` in a class description; None when VPA did not create
    the class for that name. An unreadable or newer definition is `InvalidCollection`."""
    try:
        document = json.loads(description or "")
    except (TypeError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    if isinstance(document.get("vpa"), dict):
        return _legacy_definition(name, document["vpa"])
    if DEFINITION_KEY not in document or document.get("name") != name:
        return None
    return Definition(load_definition(name, document[DEFINITION_KEY]), bool(document.get("multi_tenant")))


def _legacy_definition(name: str, old: Mapping[str, Any]) -> Definition | None:
    """A 0.1 description: ``{"vpa": {"format": 1, "name", "dimension", "metric", "fingerprint",
    "multi_tenant"}}``, read by the core as its format 1."""
    if old.get("name") != name:
        return None
    fields = {"vpa": 1, "dimension": old.get("dimension"), "metric": old.get("metric", "cosine")}
    info = load_definition(name, {**fields, "fingerprint": old.get("fingerprint")})
    return Definition(info, bool(old.get("multi_tenant", False)))


def class_config(info: CollectionInfo, settings: WeaviateSettings) -> dict[str, Any]:
    """The arguments of ``collections.create`` for a new class: one self-provided cosine vector
    (HNSW, or flat for exact search), the reserved properties, tenants and cluster options."""
    multi_tenant = settings.tenant is not None
    index = (
        Configure.VectorIndex.flat(distance_metric=VectorDistances.COSINE)
        if settings.index == "flat"
        else Configure.VectorIndex.hnsw(distance_metric=VectorDistances.COSINE)
    )
    return {
        "description": dump_description(info, multi_tenant),
        # $exists is IsNull, which needs the null state indexed; Weaviate cannot add it later.
        # Lexical search is VPA's BM25: its k1 and b, and no stop words dropped from a query
        "inverted_index_config": Configure.inverted_index(
            index_null_state=True,
            bm25_k1=BM25_SPEC.k1,
            bm25_b=BM25_SPEC.b,
            stopwords_preset=StopwordsPreset.NONE,
        ),
        "vector_config": Configure.Vectors.self_provided(name=VECTOR_NAME, vector_index_config=index),
        "properties": reserved_properties(),
        "multi_tenancy_config": (
            Configure.multi_tenancy(enabled=True, auto_tenant_creation=False, auto_tenant_activation=True)
            if multi_tenant
            else None
        ),
        "replication_config": (
            Configure.replication(factor=settings.replication_factor) if settings.replication_factor else None
        ),
        # a multi-tenant collection has one shard per tenant instead
        "sharding_config": (
            Configure.sharding(desired_count=settings.shards)
            if settings.shards and not multi_tenant
            else None
        ),
    }

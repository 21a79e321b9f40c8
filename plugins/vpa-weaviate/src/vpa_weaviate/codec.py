"""Records ↔ Weaviate objects, and a collection's definition ↔ its class (see `vpa_weaviate.naming`).

An object holds the reserved properties ``vpa_id``, ``vpa_text``, ``vpa_norm`` (the vector's norm,
to restore a vector a server returned normalised) and ``vpa_keys`` (the record's metadata keys),
and one typed property ``m_<encoded key>`` per metadata key: text values framed, numbers as
``int`` or ``number``; reads decode by the schema's type, so an int stays an int.

The class description holds VPA's definition (`vpa.stores.definition`) with the two facts only
Weaviate needs: the collection's name (so a class is VPA's only under the name it was created for,
whatever ``class_prefix`` a store reads it with) and whether it is multi-tenant::

    {"name": "docs", "multi_tenant": false, "vpa_definition": "{\\"dimension\\":384,...}"}

Classes created by vpa-weaviate 0.1 (``{"vpa": {"format": 1, "name": ..., "dimension": ...}}``)
are read too (`_legacy_definition`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
from vpa.errors import StoreError, UnsupportedMetadata
from vpa.models import CollectionInfo, Hit, MetadataType, Record
from vpa.stores.definition import DEFINITION_KEY, dump_definition, load_definition
from vpa.validation import metadata_type
from weaviate.classes.config import Configure, DataType, Property, Tokenization, VectorDistances
from weaviate.classes.data import DataObject

from vpa_weaviate import filters as wf
from vpa_weaviate.naming import (
    ID_PROP,
    KEYS_PROP,
    NORM_PROP,
    TEXT_PROP,
    VECTOR_NAME,
    frame,
    key_of,
    object_uuid,
    prop_name,
    unframe,
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
}
_VPA_NAMES = {wf.TEXT: "str", wf.INT: "int", wf.NUMBER: "float", wf.BOOL: "bool", wf.TEXT_ARRAY: "list[str]"}


# --- values and objects ---------------------------------------------------------------------------


def encode_value(data_type: str, value: Any) -> Any:
    if data_type == wf.TEXT:
        return frame(value)
    if data_type == wf.TEXT_ARRAY:
        return [frame(v) for v in value]
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
        return [unframe(str(v)) for v in (value or [])]
    if data_type == wf.NUMBER:
        return float(value)
    if data_type == wf.INT:
        return int(value)
    return bool(value)


def data_object(record: Record, types: Mapping[str, str]) -> DataObject:
    """The object of a validated record; ``types`` has a data type for each of its keys."""
    props: dict[str, Any] = {
        ID_PROP: record.id,
        TEXT_PROP: record.text,
        NORM_PROP: float(np.linalg.norm(record.vector.astype(np.float64))),
        KEYS_PROP: list(record.metadata),
    }
    for key, value in record.metadata.items():
        props[prop_name(key)] = encode_value(types[key], value)
    return DataObject(
        properties=props, uuid=object_uuid(record.id), vector={VECTOR_NAME: record.vector.tolist()}
    )


def metadata_keys(props: Mapping[str, Any]) -> list[str]:
    """The metadata keys an object carries (`decode` needs their types)."""
    return [str(k) for k in (props.get(KEYS_PROP) or [])]


def decode(props: Mapping[str, Any], types: Mapping[str, str]) -> tuple[str, str, dict[str, Any]]:
    """An object's VPA id, text and metadata."""
    metadata: dict[str, Any] = {}
    for key in metadata_keys(props):
        data_type = types.get(key)
        value = props.get(prop_name(key))
        if data_type is None:
            continue
        if value is None:
            if data_type == wf.TEXT_ARRAY:
                metadata[key] = []  # a server that does not return empty arrays
            continue
        metadata[key] = decode_value(data_type, value)
    return str(props.get(ID_PROP, "")), str(props.get(TEXT_PROP) or ""), metadata


def to_hit(obj: Any, types: Mapping[str, str]) -> Hit | None:
    """A search result as a hit (None for an object some other client put into the class)."""
    if ID_PROP not in obj.properties:
        return None
    record_id, text, metadata = decode(obj.properties, types)
    distance = obj.metadata.distance if obj.metadata.distance is not None else 1.0
    return Hit(record_id, min(1.0, max(-1.0, 1.0 - float(distance))), text, metadata)


def to_record(obj: Any, types: Mapping[str, str]) -> Record:
    """A fetched object (with its vector) as the record written."""
    record_id, text, metadata = decode(obj.properties, types)
    vector = obj.vector.get(VECTOR_NAME) if isinstance(obj.vector, Mapping) else obj.vector
    if vector is None:
        raise StoreError(f"Weaviate returned object {record_id!r} without its vector")
    return Record(record_id, restore_vector(vector, obj.properties.get(NORM_PROP)), text, metadata)


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


def schema_types(config: Any) -> dict[str, str]:
    """The data type of each metadata key a class has a property for."""
    types: dict[str, str] = {}
    for prop in config.properties:
        key = key_of(prop.name)
        if key is not None:
            types[key] = prop.data_type.value
    return types


def batch_types(records: Sequence[Record]) -> dict[str, str]:
    """The data type each key of a validated batch needs; two types for one key are refused."""
    needed: dict[str, str] = {}
    for record in records:
        for key, value in record.metadata.items():
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


def _property(name: str, data_type: str, *, filterable: bool) -> Property:
    """A property compared exactly: ``field`` tokenization for text, never searchable."""
    return Property(
        name=name,
        data_type=DataType(data_type),
        index_filterable=filterable,
        index_searchable=False,
        index_range_filters=False,
        tokenization=Tokenization.FIELD if data_type in (wf.TEXT, wf.TEXT_ARRAY) else None,
    )


def metadata_property(key: str, data_type: str) -> Property:
    return _property(prop_name(key), data_type, filterable=True)


def reserved_properties() -> list[Property]:
    """The record's id, text, vector norm and keys: stored, never indexed."""
    reserved = {ID_PROP: wf.TEXT, TEXT_PROP: wf.TEXT, NORM_PROP: wf.NUMBER, KEYS_PROP: wf.TEXT_ARRAY}
    return [_property(name, data_type, filterable=False) for name, data_type in reserved.items()]


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

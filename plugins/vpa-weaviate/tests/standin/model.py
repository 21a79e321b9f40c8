"""The Weaviate stand-in's state and semantics: schema, objects, tenants and filter evaluation.

This is a *stand-in*, not Weaviate: a plain in-memory model of the parts of Weaviate's
behaviour that VPA's plugin relies on, written from Weaviate's documentation and source. It
deliberately reproduces the behaviours a client can trip over:

- a typed schema: a property keeps its data type; a value of another type is refused per object;
  auto-schema (on by default, as in Weaviate) infers a *missing* property's type from the first
  value — and, like Weaviate, types every JSON number as ``number`` and text with ``word``
  tokenization;
- text filters compare *tokens* (``word``: lower-cased alphanumeric runs; ``field``: the whole
  value, trimmed of white space), so ``Equal "a b"`` matches ``"b, A!"`` under ``word``;
- ``NotEqual`` is the complement of ``Equal`` (objects without the property included: Weaviate's
  current deny-list implementation), ``Not`` is the complement of its operand (Weaviate >= 1.33),
  ``IsNull`` needs ``indexNullState``, range operators compare numbers by Weaviate's
  lexicographic float encoding (so ``-0.0 < 0.0``), filters on a property that does not exist,
  is not filterable, or with an operand of the wrong type are errors;
- ``date`` properties hold RFC 3339 timestamps, parsed as Go's ``time.Parse(time.RFC3339)`` does
  (any number of fraction digits, kept to the nanosecond, the offset remembered), compared as
  instants in filters (the operand is an RFC 3339 ``valueText``) and returned as RFC3339Nano
  strings; auto-schema types a string that parses as one as ``date``;
- ``IsNull`` counts a missing property, an empty array and an empty string as null (Weaviate's
  documented rule) and needs ``indexNullState``;
- the cursor API (``after`` + ``limit``): objects in UUID order strictly after ``after``, refused
  with a filter, a sort, an offset or a search; an unfiltered listing is in UUID order too (the
  objects bucket), a filtered one in insertion (doc id) order;
- ``PATCH /v1/objects/{class}/{id}`` merges properties into the stored object (validated and
  typed as on insert; a ``null`` value deletes the property, as Weaviate's merge does) and keeps
  its vectors unless new ones are given; ``PUT`` replaces it whole (the vectors given, no others);
  a missing object is 404 for both;
- a named vector's dimension is fixed by the first vector written; another length is refused;
- multi-tenant classes need a tenant on every data request and refuse one otherwise;
- a search, fetch or delete touches at most ``query_maximum_results`` objects;
- ``bm25`` (keyword search) on one searchable text property: the query tokenized by the
  property's tokenization, stop words of the class's preset (``en`` by default) and its additions
  dropped, a repeated query token counting as often as it is repeated; Lucene's BM25 with the
  class's ``k1`` and ``b`` (1.2, 0.75 by default): ``idf = ln(1 + (N - n + 0.5) / (n + 0.5))``
  with N the shard's objects and n those holding the token, the length normalised by the mean
  token count of the objects that have the property; the filter selects results only (the
  statistics are the shard's); objects without a query token are not returned; scores float32;
- ``hybrid``: the keyword half (``1 - alpha``, skipped at alpha 1) and the vector half (``alpha``,
  skipped at alpha 0), each fetching ``max(100, offset + limit)`` (Weaviate's
  ``hybrid.DefaultLimit``) with the filter, fused by ``relativeScoreFusion`` (the default since
  1.24: each half min-max normalised — all equal: 1 — times its weight, summed) or
  ``rankedFusion`` (``weight / (60 + i)``, ``i`` the 0-based position in each half, float32, as
  Weaviate >= 1.2x computes it), best first (ties by the secondary score, then by UUID).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import struct
import threading
import time
import unicodedata
import uuid as uuid_lib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CLASS_RE = re.compile(r"[A-Z][_0-9A-Za-z]*")
PROP_RE = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,230}")
TENANT_RE = re.compile(r"[A-Za-z0-9\-_]{1,64}")
RESERVED_PROPS = {"_additional", "_id", "id"}
DATA_TYPES = {
    "text",
    "text[]",
    "int",
    "int[]",
    "number",
    "number[]",
    "boolean",
    "boolean[]",
    "uuid",
    "uuid[]",
    "date",
    "date[]",
}
PROPERTY_FIELDS = {
    "name", "dataType", "description", "indexFilterable", "indexSearchable", "indexRangeFilters",
    "indexInverted", "tokenization", "moduleConfig", "nestedProperties", "textAnalyzer",
}  # fmt: skip
TOKENIZATIONS = {"word", "lowercase", "whitespace", "field"}
MISSING = object()
#: The stand-in is one node: shards all live on it, and it cannot hold more than one replica.
NODES = 1


class StandInError(Exception):
    """An error the stand-in answers with: an HTTP status for REST, a message for gRPC."""

    def __init__(self, message: str, status: int = 422, grpc_code: str = "UNKNOWN") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.grpc_code = grpc_code


# --- defaults Weaviate fills in ----------------------------------------------------------------


def _hnsw_defaults(distance: str) -> dict[str, Any]:
    return {
        "skip": False,
        "cleanupIntervalSeconds": 300,
        "maxConnections": 32,
        "efConstruction": 128,
        "ef": -1,
        "dynamicEfMin": 100,
        "dynamicEfMax": 500,
        "dynamicEfFactor": 8,
        "vectorCacheMaxObjects": 1000000000000,
        "flatSearchCutoff": 40000,
        "distance": distance,
        "filterStrategy": "sweeping",
        "pq": {"enabled": False, "bitCompression": False, "segments": 0, "centroids": 256,
               "trainingLimit": 100000,
               "encoder": {"type": "kmeans", "distribution": "log-normal"}},
        "bq": {"enabled": False},
        "sq": {"enabled": False, "trainingLimit": 100000, "rescoreLimit": 20},
        "multivector": {"enabled": False, "aggregation": "maxSim"},
    }  # fmt: skip


def _flat_defaults(distance: str) -> dict[str, Any]:
    return {
        "distance": distance,
        "vectorCacheMaxObjects": 1000000000000,
        "pq": {"enabled": False, "rescoreLimit": -1, "cache": False},
        "bq": {"enabled": False, "rescoreLimit": -1, "cache": False},
    }


def _complete_vector(config: dict[str, Any]) -> dict[str, Any]:
    out = dict(config)
    out.setdefault("vectorizer", {"none": {}})
    index_type = out.setdefault("vectorIndexType", "hnsw")
    if index_type not in ("hnsw", "flat"):
        raise StandInError(f"the stand-in does not implement vector index type {index_type!r}")
    given = dict(out.get("vectorIndexConfig") or {})
    distance = given.get("distance", "cosine")
    if distance not in ("cosine", "dot", "l2-squared"):
        raise StandInError(f"invalid distance metric {distance!r}")
    defaults = _hnsw_defaults(distance) if index_type == "hnsw" else _flat_defaults(distance)
    defaults.update(given)
    out["vectorIndexConfig"] = defaults
    return out


def _complete_property(prop: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(prop)
    name = out.get("name")
    if not isinstance(name, str) or not PROP_RE.fullmatch(name):
        raise StandInError(
            f"'{name}' is not a valid property name. "
            "Property names in Weaviate are restricted to valid GraphQL names"
        )
    if name in RESERVED_PROPS:
        raise StandInError(f"'{name}' is a reserved property name")
    data_type = out.get("dataType")
    if not isinstance(data_type, list) or len(data_type) != 1 or data_type[0] not in DATA_TYPES:
        raise StandInError(f"property '{name}': invalid dataType {data_type!r}")
    textual = data_type[0] in ("text", "text[]")
    if textual:
        tokenization = out.setdefault("tokenization", "word")
        if tokenization not in TOKENIZATIONS:
            raise StandInError(
                f"property '{name}': the stand-in does not implement tokenization {tokenization!r}"
            )
    elif out.get("tokenization"):
        raise StandInError(f"Tokenization is not allowed for data type '{data_type[0]}'")
    else:
        out.pop("tokenization", None)
    out.setdefault("indexFilterable", True)
    out.setdefault("indexSearchable", textual)
    out.setdefault("indexRangeFilters", False)
    if out["indexSearchable"] and not textual:
        raise StandInError(
            f"`indexSearchable` is not allowed for other than text/text[] data types (property '{name}')"
        )
    # Weaviate decodes into its Property model with Go's encoding/json, which drops unknown fields
    # (the client sends skip_vectorization and vectorize_property_name as they are)
    return {k: v for k, v in out.items() if k in PROPERTY_FIELDS}


def complete_class(body: Mapping[str, Any]) -> dict[str, Any]:
    """A class definition as Weaviate stores and returns it: every default filled in."""
    cls = dict(body)
    name = cls.get("class")
    if not isinstance(name, str) or not name:
        raise StandInError("class name is required")
    name = name[0].upper() + name[1:]
    if not CLASS_RE.fullmatch(name) or len(name) > 255:
        raise StandInError(f"'{name}' is not a valid class name")
    cls["class"] = name
    cls["properties"] = [_complete_property(p) for p in cls.get("properties") or []]
    names = [p["name"].lower() for p in cls["properties"]]
    if len(set(names)) != len(names):
        raise StandInError(f"class '{name}' has duplicate property names")
    inverted = {
        "bm25": {"b": 0.75, "k1": 1.2},
        "cleanupIntervalSeconds": 60,
        "stopwords": {"preset": "en", "additions": None, "removals": None},
        "indexNullState": False,
        "indexPropertyLength": False,
        "indexTimestamps": False,
        "usingBlockMaxWAND": True,
    }
    for option, value in (cls.get("invertedIndexConfig") or {}).items():
        if isinstance(value, dict) and isinstance(inverted.get(option), dict):  # defaults fill sub-objects
            inverted[option] = {**inverted[option], **{k: v for k, v in value.items() if v is not None}}
        else:
            inverted[option] = value
    cls["invertedIndexConfig"] = inverted
    mt = {"enabled": False, "autoTenantCreation": False, "autoTenantActivation": False}
    mt.update(cls.get("multiTenancyConfig") or {})
    cls["multiTenancyConfig"] = mt
    replication = {"factor": 1, "asyncEnabled": False, "deletionStrategy": "NoAutomatedResolution"}
    replication.update(cls.get("replicationConfig") or {})
    if replication["factor"] > NODES:
        raise StandInError(
            f"could not find enough weaviate nodes for replication: {replication['factor']} replicas "
            f"requested, {NODES} available"
        )
    cls["replicationConfig"] = replication
    sharding = cls.get("shardingConfig") or {}
    if mt["enabled"] and sharding:
        raise StandInError("multi-tenancy enabled, but sharding config is set: one shard per tenant")
    shards = int(sharding.get("desiredCount", 1))
    cls["shardingConfig"] = (
        {"actualCount": 0, "actualVirtualCount": 0, "desiredCount": 0, "desiredVirtualCount": 0,
         "function": "", "key": "", "strategy": "", "virtualPerPhysical": 0}
        if mt["enabled"]
        else {"actualCount": shards, "actualVirtualCount": 128 * shards, "desiredCount": shards,
              "desiredVirtualCount": 128 * shards, "function": "murmur3", "key": "_id", "strategy": "hash",
              "virtualPerPhysical": 128}
    )  # fmt: skip
    if cls.get("vectorConfig"):
        cls["vectorConfig"] = {k: _complete_vector(v) for k, v in cls["vectorConfig"].items()}
        cls.pop("vectorizer", None)
        cls.pop("vectorIndexType", None)
        cls.pop("vectorIndexConfig", None)
    else:  # a legacy class with one unnamed vector
        cls["vectorizer"] = cls.get("vectorizer") or "none"
        legacy = _complete_vector(
            {
                "vectorIndexType": cls.get("vectorIndexType", "hnsw"),
                "vectorIndexConfig": cls.get("vectorIndexConfig"),
            }
        )
        cls["vectorIndexType"] = legacy["vectorIndexType"]
        cls["vectorIndexConfig"] = legacy["vectorIndexConfig"]
    cls.setdefault("moduleConfig", {})
    return cls


# --- values, tokens and comparisons ------------------------------------------------------------


def _is_space(ch: str) -> bool:
    """Go's unicode.IsSpace, which Weaviate's tokenizers use."""
    return (
        ch in "\t\n\v\f\r \x85\xa0"
        or (ord(ch) > 0xFF and unicodedata.category(ch) == "Zs")
        or ch in "\u2028\u2029"
    )


def tokenize(tokenization: str, text: str) -> list[str]:
    if tokenization == "field":
        start, end = 0, len(text)
        while start < end and _is_space(text[start]):
            start += 1
        while end > start and _is_space(text[end - 1]):
            end -= 1
        trimmed = text[start:end]
        return [trimmed] if trimmed else []
    if tokenization == "whitespace":
        return [t for t in re.split(r"\s+", text) if t]
    if tokenization == "lowercase":
        return [t.lower() for t in re.split(r"\s+", text) if t]
    return [t.lower() for t in re.split(r"[^\w]+|_", text) if t]  # word: alphanumeric runs


def float_key(value: float) -> int:
    """Weaviate's lexicographically sortable encoding of a float64 (so -0.0 sorts below 0.0)."""
    bits = struct.unpack(">Q", struct.pack(">d", value))[0]
    return bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | (1 << 63)


_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})")


@dataclass(frozen=True)
class StoredDate:
    """A date property's value as Weaviate keeps it (a Go ``time.Time``): an instant in
    nanoseconds since the epoch, and the offset it was written with (seconds east of UTC)."""

    nanos: int
    offset: int

    def rfc3339nano(self) -> str:
        """Go's ``time.RFC3339Nano``: the fraction without trailing zeros (none if zero), ``Z``
        for a zero offset."""
        local = self.nanos + self.offset * 1_000_000_000
        seconds, fraction = divmod(local, 1_000_000_000)
        moment = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)
        text = moment.strftime("%Y-%m-%dT%H:%M:%S")
        if moment.year < 1000:
            text = f"{moment.year:04d}{text[len(str(moment.year)) :]}"
        if fraction:
            text += "." + f"{fraction:09d}".rstrip("0")
        if self.offset == 0:
            return text + "Z"
        sign = "+" if self.offset > 0 else "-"
        hours, minutes = divmod(abs(self.offset) // 60, 60)
        return f"{text}{sign}{hours:02d}:{minutes:02d}"


def parse_date(text: Any) -> StoredDate | None:
    """``time.Parse(time.RFC3339, text)``, or None where Go refuses it."""
    if not isinstance(text, str):
        return None
    m = _RFC3339.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        moment = dt.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    digits = m.group(7) or ""
    fraction = int((digits + "0" * 9)[:9]) if digits else 0
    zone = m.group(8)
    offset = (
        0 if zone == "Z" else (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    )
    if zone != "Z" and (int(zone[1:3]) > 23 or int(zone[4:6]) > 59):
        return None
    seconds = (moment - dt.datetime(1970, 1, 1)) // dt.timedelta(seconds=1) - offset
    return StoredDate(seconds * 1_000_000_000 + fraction, offset)


@dataclass
class StoredObject:
    uuid: str
    properties: dict[str, Any]
    vectors: dict[str, np.ndarray]
    created: int
    updated: int
    seq: int


@dataclass
class ClassState:
    definition: dict[str, Any]
    shards: dict[str, dict[str, StoredObject]] = field(default_factory=dict)
    tenants: dict[str, str] = field(default_factory=dict)
    dimensions: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.definition["class"]

    @property
    def multi_tenant(self) -> bool:
        return bool(self.definition["multiTenancyConfig"]["enabled"])

    def prop(self, name: str) -> dict[str, Any] | None:
        for p in self.definition["properties"]:
            if p["name"] == name:
                return p
        return None

    @property
    def vector_names(self) -> list[str]:
        return list(self.definition.get("vectorConfig") or {})

    def distance(self, vector_name: str) -> str:
        if vector_name:
            return self.definition["vectorConfig"][vector_name]["vectorIndexConfig"]["distance"]
        return self.definition["vectorIndexConfig"]["distance"]


@dataclass
class Filter:
    """A parsed filter (the stand-in's own form of ``weaviate.v1.Filters``)."""

    operator: str
    prop: str | None = None
    value: Any = MISSING
    value_kind: str | None = None
    operands: list[Filter] = field(default_factory=list)


class Model:
    """Everything the stand-in server knows; every public method takes the lock."""

    def __init__(
        self,
        *,
        version: str = "1.33.0",
        normalize_vectors: bool = False,
        api_key: str | None = None,
        autoschema: bool = True,
        query_maximum_results: int = 10_000,
        grpc_max_message_size: int = 104_858_000,
    ) -> None:
        self.api_key = api_key
        self.version = version
        #: return vectors normalised, as a server that keeps only unit vectors for cosine would
        self.normalize_vectors = normalize_vectors
        self.autoschema = autoschema
        self.query_maximum_results = query_maximum_results
        self.grpc_max_message_size = grpc_max_message_size
        self.classes: dict[str, ClassState] = {}
        self.lock = threading.RLock()
        self._seq = 0
        self.requests: dict[str, int] = {}

    def _version_tuple(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.version.split("-")[0].split("."))

    def count_request(self, name: str) -> None:
        with self.lock:
            self.requests[name] = self.requests.get(name, 0) + 1

    # --- auth ---------------------------------------------------------------------------------

    def check_auth(self, authorization: str | None) -> None:
        if self.api_key is None:
            return
        if not authorization:
            raise StandInError(
                "anonymous access not enabled, please provide an auth scheme such as OIDC",
                401,
                "UNAUTHENTICATED",
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or token != self.api_key:
            raise StandInError("unauthorized: invalid api key", 401, "UNAUTHENTICATED")

    # --- schema -------------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {
            "hostname": "http://[::]:8080",
            "modules": {},
            "version": self.version,
            "grpcMaxMessageSize": self.grpc_max_message_size,
        }

    def _class(self, name: str) -> ClassState:
        cls = self.classes.get(name) or self.classes.get(name[:1].upper() + name[1:])
        if cls is None:
            raise StandInError(f"could not find class {name} in schema", 404)
        return cls

    def schema(self) -> dict[str, Any]:
        with self.lock:
            return {"classes": [c.definition for c in self.classes.values()]}

    def get_class(self, name: str) -> dict[str, Any]:
        with self.lock:
            return self._class(name).definition

    def create_class(self, body: Mapping[str, Any]) -> dict[str, Any]:
        definition = complete_class(body)
        with self.lock:
            name = definition["class"]
            if any(existing.lower() == name.lower() for existing in self.classes):
                raise StandInError(f"class name {name!r} already exists")
            self.classes[name] = ClassState(definition)
            if not definition["multiTenancyConfig"]["enabled"]:
                self.classes[name].shards[""] = {}
            return definition

    def delete_class(self, name: str) -> None:
        with self.lock:
            for existing in list(self.classes):
                if existing == name or existing == name[:1].upper() + name[1:]:
                    del self.classes[existing]

    def add_property(self, class_name: str, prop: Mapping[str, Any]) -> dict[str, Any]:
        completed = _complete_property(prop)
        with self.lock:
            cls = self._class(class_name)
            if any(p["name"].lower() == completed["name"].lower() for p in cls.definition["properties"]):
                raise StandInError(f"property with name {completed['name']!r} already exists")
            cls.definition["properties"].append(completed)
            return completed

    # --- tenants ------------------------------------------------------------------------------

    def _mt_class(self, class_name: str) -> ClassState:
        cls = self._class(class_name)
        if not cls.multi_tenant:
            raise StandInError(f"multi-tenancy is not enabled for class {cls.name!r}")
        return cls

    def add_tenants(self, class_name: str, tenants: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        with self.lock:
            cls = self._mt_class(class_name)
            out = []
            for tenant in tenants:
                name = tenant.get("name")
                if not isinstance(name, str) or not TENANT_RE.fullmatch(name):
                    raise StandInError(f"invalid tenant name {name!r}")
                status = tenant.get("activityStatus") or "ACTIVE"
                status = {"HOT": "ACTIVE", "COLD": "INACTIVE"}.get(status, status)
                cls.tenants[name] = status
                cls.shards.setdefault(name, {})
                out.append({"name": name, "activityStatus": status})
            return out

    def get_tenants(self, class_name: str) -> list[dict[str, Any]]:
        with self.lock:
            cls = self._mt_class(class_name)
            return [{"name": n, "activityStatus": s} for n, s in cls.tenants.items()]

    def tenant_exists(self, class_name: str, tenant: str) -> bool:
        with self.lock:
            return tenant in self._mt_class(class_name).tenants

    def delete_tenants(self, class_name: str, names: Iterable[str]) -> None:
        with self.lock:
            cls = self._mt_class(class_name)
            for name in names:
                cls.tenants.pop(name, None)
                cls.shards.pop(name, None)

    def _shard(self, cls: ClassState, tenant: str) -> dict[str, StoredObject]:
        if cls.multi_tenant:
            if not tenant:
                raise StandInError(
                    f"class {cls.name} has multi-tenancy enabled, but request was without tenant"
                )
            if tenant not in cls.tenants:
                if cls.definition["multiTenancyConfig"].get("autoTenantCreation"):
                    cls.tenants[tenant] = "ACTIVE"
                    cls.shards[tenant] = {}
                else:
                    raise StandInError(f'tenant not found: "{tenant}"')
            return cls.shards[tenant]
        if tenant:
            raise StandInError(f"class {cls.name} has multi-tenancy disabled, but request was with tenant")
        return cls.shards[""]

    # --- writes -------------------------------------------------------------------------------

    def _infer(self, cls: ClassState, prop_name: str, value: Any) -> dict[str, Any] | None:
        if isinstance(value, bool):
            data_type = "boolean"
        elif isinstance(value, int | float):
            data_type = "number"  # Weaviate's AUTOSCHEMA_DEFAULT_NUMBER
        elif isinstance(value, str):
            data_type = "date" if parse_date(value) is not None else "text"  # auto-schema's dates
        elif isinstance(value, list) and value:
            first = value[0]
            data_type = (
                "boolean[]"
                if isinstance(first, bool)
                else "number[]"
                if isinstance(first, int | float)
                else "date[]"
                if parse_date(first) is not None
                else "text[]"
            )
        else:
            return None  # nothing to infer from: the value is dropped
        prop = _complete_property({"name": prop_name, "dataType": [data_type]})
        cls.definition["properties"].append(prop)
        return prop

    def _convert(self, cls: ClassState, prop: dict[str, Any], value: Any) -> Any:
        data_type = prop["dataType"][0]
        name = prop["name"]

        def refuse(kind: str) -> StandInError:
            return StandInError(
                f"invalid {data_type} property '{name}' on class '{cls.name}': "
                f"not a {kind}, but {type(value).__name__}"
            )

        if data_type == "date":
            parsed = parse_date(value)
            if parsed is None:
                raise StandInError(
                    f"invalid date property '{name}' on class '{cls.name}': "
                    f"requires a string with a RFC3339 formatted date, but the given value is '{value}'"
                )
            return parsed
        if data_type in ("text", "uuid"):
            if not isinstance(value, str):
                raise refuse("string")
            return value
        if data_type == "boolean":
            if not isinstance(value, bool):
                raise refuse("boolean")
            return value
        if data_type == "int":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise refuse("number")
            if isinstance(value, float) and not value.is_integer():
                raise StandInError(
                    f"invalid integer property '{name}' on class '{cls.name}': "
                    f"requires an integer, the given value is {value}"
                )
            return int(value)
        if data_type == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise refuse("number")
            return float(value)
        if data_type.endswith("[]"):
            if not isinstance(value, list):
                raise refuse("array")
            inner = dict(prop, dataType=[data_type[:-2]])
            return [self._convert(cls, inner, v) for v in value]
        raise StandInError(f"the stand-in does not implement data type {data_type!r}")

    def batch_objects(self, objects: list[dict[str, Any]]) -> dict[int, str]:
        """Write objects (already decoded from the wire); returns per-index errors."""
        errors: dict[int, str] = {}
        with self.lock:
            for index, obj in enumerate(objects):
                try:
                    self._put(obj)
                except StandInError as exc:
                    errors[index] = exc.message
        return errors

    def _put(self, obj: dict[str, Any]) -> None:
        class_name = obj["collection"]
        cls = self.classes.get(class_name) or self.classes.get(class_name[:1].upper() + class_name[1:])
        if cls is None:
            raise StandInError(f"could not find class {class_name} in schema")
        shard = self._shard(cls, obj.get("tenant") or "")
        try:
            object_id = str(uuid_lib.UUID(obj["uuid"]))
        except (ValueError, KeyError, TypeError):
            raise StandInError(f"invalid UUID {obj.get('uuid')!r}") from None
        properties: dict[str, Any] = {}
        for name, value in obj["properties"].items():
            prop = cls.prop(name)
            if prop is None:
                if not self.autoschema:
                    raise StandInError(
                        f"no such prop with name '{name}' found in class '{cls.name}' in the schema. "
                        "Check your schema files for which properties in this class are available"
                    )
                prop = self._infer(cls, name, value)
                if prop is None:
                    continue
            if value is None:
                continue
            properties[name] = self._convert(cls, prop, value)
        vectors: dict[str, np.ndarray] = {}
        named = cls.vector_names
        for vector_name, vector in obj["vectors"].items():
            if vector_name == "" and named:
                if len(named) != 1:
                    raise StandInError(
                        f"collection {cls.name} has multiple vectors, but vector name not specified"
                    )
                vector_name = named[0]
            if vector_name and vector_name not in named:
                raise StandInError(
                    f'collection {cls.name} does not have named vector "{vector_name}" configured'
                )
            vectors[vector_name] = np.asarray(vector, dtype=np.float32)
        for vector_name, vector in vectors.items():
            expected = cls.dimensions.get(vector_name)
            if expected is not None and expected != vector.shape[0]:
                raise StandInError(
                    f"insert to vector index: new node has a vector with length {vector.shape[0]}. "
                    f"Existing nodes have vectors with length {expected}"
                )
        for vector_name, vector in vectors.items():
            cls.dimensions.setdefault(vector_name, int(vector.shape[0]))
        now = int(time.time() * 1000)
        previous = shard.get(object_id)
        self._seq += 1
        shard[object_id] = StoredObject(
            object_id,
            properties,
            vectors,
            previous.created if previous else now,
            now,
            previous.seq if previous else self._seq,
        )

    # --- filters ------------------------------------------------------------------------------

    @staticmethod
    def _ordered_key(kind: str) -> Callable[[Any], Any]:
        if kind == "number":
            return lambda v: float_key(float(v))
        if kind == "date":
            return lambda v: (v if isinstance(v, StoredDate) else parse_date(v)).nanos  # type: ignore[union-attr]
        if kind in ("int", "boolean"):
            return int
        return lambda v: str(v).encode()

    def compile(self, f: Filter | None, cls: ClassState) -> Callable[[StoredObject], bool]:
        """A predicate for one request's filter (validated first), evaluated per object."""
        if f is None:
            return lambda o: True
        if f.operator in ("And", "Or", "Not"):
            parts = [self.compile(o, cls) for o in f.operands]
            if f.operator == "And":
                return lambda o: all(p(o) for p in parts)
            if f.operator == "Or":
                return lambda o: any(p(o) for p in parts)
            return lambda o: not parts[0](o)
        if f.operator == "NotEqual":  # Weaviate's deny-list: objects without the property match
            inner = self.compile(Filter("Equal", f.prop, f.value, f.value_kind), cls)
            return lambda o: not inner(o)
        if f.operator == "ContainsNone":
            inner = self.compile(Filter("ContainsAny", f.prop, f.value, f.value_kind), cls)
            return lambda o: not inner(o)
        if f.prop == "_id":
            prop: dict[str, Any] | None = None

            def get(o: StoredObject) -> Any:
                return o.uuid
        else:
            prop = cls.prop(f.prop or "")
            assert prop is not None  # validate() ran first
            name = prop["name"]

            def get(o: StoredObject) -> Any:
                return o.properties.get(name, MISSING)

        if f.operator == "IsNull":
            want_null = bool(f.value)

            def is_null(o: StoredObject) -> bool:
                stored = get(o)
                # "zero-length arrays and empty strings are equivalent to a null value"
                null = stored is MISSING or stored is None or (isinstance(stored, list | str) and not stored)
                return null == want_null

            return is_null
        kind = f.value_kind or "text"
        op = f.operator
        if prop is not None and prop["dataType"][0] in ("date", "date[]"):
            kind = "date"  # the RFC 3339 valueText compares as an instant

        def items(o: StoredObject) -> list[Any] | None:
            stored = get(o)
            if stored is MISSING or stored is None:
                return None
            return stored if isinstance(stored, list) else [stored]

        if kind == "text":
            tokenization = "field" if prop is None else prop.get("tokenization", "word")
            if op in ("Equal", "ContainsAny", "ContainsAll"):
                values = f.value if isinstance(f.value, list) else [f.value]
                wanted = [frozenset(tokenize(tokenization, str(v))) for v in values]

                def token_sets(o: StoredObject) -> list[frozenset[str]] | None:
                    found = items(o)
                    return (
                        None if found is None else [frozenset(tokenize(tokenization, str(s))) for s in found]
                    )

                if op != "ContainsAll" and all(len(w) == 1 for w in wanted):
                    single = {next(iter(w)) for w in wanted}

                    def any_single(o: StoredObject) -> bool:
                        sets = token_sets(o)
                        return sets is not None and any(not single.isdisjoint(t) for t in sets)

                    return any_single

                def contains(o: StoredObject) -> bool:
                    sets = token_sets(o)
                    if sets is None:
                        return False
                    hits = (bool(w) and any(w <= t for t in sets) for w in wanted)
                    return all(hits) if op == "ContainsAll" else any(hits)

                return contains
            if op == "Like":
                pattern = re.compile(
                    "^" + re.escape(str(f.value)).replace(r"\*", ".*").replace(r"\?", ".") + "$"
                )

                def like(o: StoredObject) -> bool:
                    found = items(o)
                    return found is not None and any(
                        pattern.match(t) for s in found for t in tokenize(tokenization, str(s))
                    )

                return like
            bound_tokens = tokenize(tokenization, str(f.value))
            bound = bound_tokens[0].encode() if bound_tokens else None
            key: Callable[[Any], Any] = lambda v: (tokenize(tokenization, str(v)) or [""])[0].encode()  # noqa: E731
        else:
            key = self._ordered_key(kind)
            if op in ("Equal", "ContainsAny", "ContainsAll"):
                values = f.value if isinstance(f.value, list) else [f.value]
                keys = [key(v) for v in values]
                keyset = set(keys)

                def equal(o: StoredObject) -> bool:
                    found = items(o)
                    if found is None:
                        return False
                    have = {key(s) for s in found}
                    if op == "ContainsAll":
                        return all(k in have for k in keys)
                    return not have.isdisjoint(keyset)

                return equal
            bound = key(f.value)
        compare = {
            "GreaterThan": lambda a: a > bound,
            "GreaterThanEqual": lambda a: a >= bound,
            "LessThan": lambda a: a < bound,
            "LessThanEqual": lambda a: a <= bound,
        }.get(op)
        if compare is None:
            raise StandInError(f"operator {op} is not supported for data type {kind}")

        def ordered(o: StoredObject) -> bool:
            found = items(o)
            return bound is not None and found is not None and any(compare(key(s)) for s in found)

        return ordered

    _KINDS = {
        "text": "text", "text[]": "text", "uuid": "text", "uuid[]": "text", "date": "text", "date[]": "text",
        "int": "int", "int[]": "int", "number": "number", "number[]": "number", "boolean": "boolean",
        "boolean[]": "boolean",
    }  # fmt: skip
    _VALUE_FIELD = {
        "text": "valueText",
        "int": "valueInt",
        "number": "valueNumber",
        "boolean": "valueBoolean",
    }

    def validate(self, f: Filter | None, cls: ClassState) -> None:
        """Refuse what Weaviate refuses: unknown properties, unindexed ones, mistyped operands."""
        if f is None:
            return
        if f.operator in ("And", "Or"):
            if not f.operands:
                raise StandInError(
                    f"invalid 'where' filter: operator {f.operator} needs at least one operand"
                )
            for o in f.operands:
                self.validate(o, cls)
            return
        if f.operator in ("Not", "ContainsNone") and self._version_tuple() < (1, 33, 0):
            raise StandInError(f"unknown filter operator {f.operator!r} (added in Weaviate 1.33)")
        if f.operator == "Not":
            if len(f.operands) != 1:
                raise StandInError(
                    f"invalid 'where' filter: operator Not takes exactly one operand, got {len(f.operands)}"
                )
            self.validate(f.operands[0], cls)
            return
        if f.prop is None:
            raise StandInError("invalid 'where' filter: no property to filter on")
        if f.prop == "_id":
            expected = "text"
        else:
            prop = cls.prop(f.prop)
            if prop is None:
                raise StandInError(
                    f"no such prop with name '{f.prop}' found in class '{cls.name}' in the schema. "
                    "Check your schema files for which properties in this class are available"
                )
            if f.operator == "IsNull":
                if not cls.definition["invertedIndexConfig"].get("indexNullState"):
                    raise StandInError(
                        "Nullstate must be indexed to be filterable! "
                        "Add `indexNullState: true` to the invertedIndexConfig"
                    )
                return
            if not prop.get("indexFilterable", True):
                raise StandInError(
                    f"Filtering by property '{f.prop}' requires inverted index. "
                    "Is `indexFilterable` option of "
                    f"property '{f.prop}' enabled? Set it to `true` or leave empty"
                )
            expected = self._KINDS[prop["dataType"][0]]
        if f.operator == "IsNull":
            return
        if f.value_kind != expected:
            raise StandInError(
                f'data type filter cannot use "{self._VALUE_FIELD.get(f.value_kind or "", f.value_kind)}" '
                f"on type "
                f'"{expected}", use "{self._VALUE_FIELD[expected]}" instead'
            )
        if f.operator in ("ContainsAny", "ContainsAll", "ContainsNone") and not isinstance(f.value, list):
            raise StandInError(f"operator {f.operator} requires an array value")
        if f.prop != "_id" and self._is_date(cls, f.prop):
            for v in f.value if isinstance(f.value, list) else [f.value]:
                if parse_date(v) is None:
                    raise StandInError(
                        f'invalid \'where\' filter: parsing time "{v}" as "2006-01-02T15:04:05Z07:00": '
                        "cannot parse as a RFC3339 date"
                    )

        if (
            f.operator in ("GreaterThan", "GreaterThanEqual", "LessThan", "LessThanEqual")
            and expected == "boolean"
        ):
            raise StandInError(f"operator {f.operator} is not supported for data type boolean")

    @staticmethod
    def _is_date(cls: ClassState, name: str | None) -> bool:
        prop = cls.prop(name or "")
        return prop is not None and prop["dataType"][0] in ("date", "date[]")

    # --- keyword and hybrid search -------------------------------------------------------------

    def _bm25_scores(
        self, cls: ClassState, shard: dict[str, StoredObject], query: str, props: list[str]
    ) -> dict[str, float]:
        if not props:
            props = [
                p["name"]
                for p in cls.definition["properties"]
                if p["dataType"][0] in ("text", "text[]") and p.get("indexSearchable")
            ]
        if len(props) != 1:
            raise StandInError(
                "the stand-in implements bm25 on exactly one searchable property "
                "(BM25F over several is not modelled)"
            )
        name = props[0]
        prop = cls.prop(name)
        if prop is None:
            raise StandInError(f"property {name!r} not found in class {cls.name!r}")
        if prop["dataType"][0] not in ("text", "text[]") or not prop.get("indexSearchable"):
            raise StandInError(f"bm25 search: property {name!r} is not searchable (indexSearchable is false)")
        tokenization = prop["tokenization"]
        inverted = cls.definition["invertedIndexConfig"]
        k1, b = float(inverted["bm25"]["k1"]), float(inverted["bm25"]["b"])
        stopwords = _stopwords(inverted.get("stopwords") or {})
        wanted = Counter(t for t in tokenize(tokenization, query) if t not in stopwords)
        docs: dict[str, Counter[str]] = {}
        for o in shard.values():
            value = o.properties.get(name)
            if value is None:
                continue
            values = value if isinstance(value, list) else [value]
            docs[o.uuid] = Counter(t for v in values for t in tokenize(tokenization, str(v)))
        n_docs = len(shard)
        if not docs or not wanted:
            return {}
        avgdl = sum(sum(c.values()) for c in docs.values()) / len(docs) or 1.0
        freq = {t: sum(1 for c in docs.values() if t in c) for t in wanted}
        out: dict[str, float] = {}
        for uuid, counts in docs.items():
            length = sum(counts.values())
            score = 0.0
            for term, boost in wanted.items():
                tf = counts.get(term, 0)
                if tf:
                    idf = math.log(1.0 + (n_docs - freq[term] + 0.5) / (freq[term] + 0.5))
                    score += boost * idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * length / avgdl))
            if score > 0:
                out[uuid] = float(np.float32(score))
        return out

    def bm25(
        self,
        class_name: str,
        tenant: str,
        f: Filter | None,
        query: str,
        props: list[str],
        limit: int,
        offset: int,
    ) -> tuple[ClassState, list[tuple[StoredObject, float]]]:
        with self.lock:
            cls, shard = self._objects(class_name, tenant)
            if offset + limit > self.query_maximum_results:
                raise StandInError(
                    f"query maximum results exceeded: offset {offset} + limit {limit} "
                    f"> {self.query_maximum_results}"
                )
            self.validate(f, cls)
            match = self.compile(f, cls)
            scores = self._bm25_scores(cls, shard, query, props)
            found = sorted(
                ((o, scores[o.uuid]) for o in shard.values() if o.uuid in scores and match(o)),
                key=lambda pair: (-pair[1], pair[0].seq),
            )
            return cls, found[offset : offset + limit]

    def hybrid(
        self,
        class_name: str,
        tenant: str,
        f: Filter | None,
        query: str,
        props: list[str],
        alpha: float,
        ranked: bool,
        near: tuple[str, np.ndarray] | None,
        limit: int,
        offset: int,
    ) -> tuple[ClassState, list[tuple[StoredObject, float]]]:
        with self.lock:
            depth = max(HYBRID_DEFAULT_LIMIT, offset + limit)
            cls, _shard = self._objects(class_name, tenant)
            sparse: list[tuple[StoredObject, float]] = []
            dense: list[tuple[StoredObject, float]] = []
            if alpha < 1 and query:
                _cls, sparse = self.bm25(class_name, tenant, f, query, props, depth, 0)
            if alpha > 0:
                if near is None:
                    raise StandInError("hybrid search: no vector given and no vectorizer configured")
                _cls, found = self.search(class_name, tenant, f, depth, 0, near, None)
                dense = [(o, 1.0 - float(d)) for o, d in found if d is not None]
            weights = [1.0 - alpha, alpha]
            fused: dict[str, float] = {}
            secondary: dict[str, float] = {}
            objects: dict[str, StoredObject] = {}
            for weight, half in zip(weights, (sparse, dense), strict=True):
                if not half:
                    continue
                values = [s for _o, s in half]
                low, high = min(values), max(values)
                for i, (o, s) in enumerate(half):
                    if ranked:
                        score = float(np.float32(weight / (i + 60)))
                    else:
                        score = float(np.float32(weight))
                        if high != low:
                            score = float(np.float32(score * (s - low) / (high - low)))
                    fused[o.uuid] = float(np.float32(fused.get(o.uuid, 0.0) + score))
                    secondary[o.uuid] = s
                    objects[o.uuid] = o
            order = sorted(fused, key=lambda u: (-fused[u], -secondary[u], u))
            return cls, [(objects[u], fused[u]) for u in order][offset : offset + limit]

    # --- reads --------------------------------------------------------------------------------

    def _objects(self, class_name: str, tenant: str) -> tuple[ClassState, dict[str, StoredObject]]:
        cls = self._class(class_name)
        return cls, self._shard(cls, tenant)

    def search(
        self,
        class_name: str,
        tenant: str,
        f: Filter | None,
        limit: int,
        offset: int,
        near: tuple[str, np.ndarray] | None,
        max_distance: float | None,
        after: str = "",
    ) -> tuple[ClassState, list[tuple[StoredObject, float | None]]]:
        with self.lock:
            cls, shard = self._objects(class_name, tenant)
            if after:
                return cls, [(o, None) for o in self._cursor(shard, after, limit, f, offset, near)]
            if offset + limit > self.query_maximum_results:
                raise StandInError(
                    f"query maximum results exceeded: offset {offset} + limit {limit} "
                    f"> {self.query_maximum_results}"
                )
            self.validate(f, cls)
            match = self.compile(f, cls)
            if f is None and near is None:  # a listing reads the objects bucket: UUID order
                candidates = sorted(shard.values(), key=lambda o: o.uuid)
            else:  # the inverted index's allow list: doc id (insertion) order
                candidates = sorted((o for o in shard.values() if match(o)), key=lambda o: o.seq)
            if near is None:
                return cls, [(o, None) for o in candidates[offset : offset + limit]]
            vector_name, query = near
            if vector_name == "" and cls.vector_names:
                if len(cls.vector_names) != 1:
                    raise StandInError("multiple vectors configured: specify the target vector")
                vector_name = cls.vector_names[0]
            if vector_name and vector_name not in cls.vector_names:
                raise StandInError(f'target vector "{vector_name}" not found in collection {cls.name}')
            dimension = cls.dimensions.get(vector_name)
            if dimension is not None and dimension != query.shape[0]:
                raise StandInError(
                    "vector search: knn search: distance between entrypoint and query node: "
                    f"vector lengths don't match: {query.shape[0]} vs {dimension}"
                )
            metric = cls.distance(vector_name)
            scored: list[tuple[StoredObject, float]] = []
            for o in candidates:
                stored = o.vectors.get(vector_name)
                if stored is None:
                    continue
                if metric == "cosine":
                    denom = float(np.linalg.norm(stored)) * float(np.linalg.norm(query))
                    distance = 1.0 - float(np.dot(stored, query)) / denom if denom else 1.0
                elif metric == "dot":
                    distance = -float(np.dot(stored, query))
                else:
                    distance = float(np.sum((stored - query) ** 2))
                distance = float(np.float32(distance))
                if max_distance is not None and distance > max_distance:
                    continue
                scored.append((o, distance))
            scored.sort(key=lambda pair: pair[1])  # stable: ties keep insertion order
            return cls, list(scored[offset : offset + limit])  # type: ignore[arg-type]

    @staticmethod
    def _cursor(
        shard: dict[str, StoredObject],
        after: str,
        limit: int,
        f: Filter | None,
        offset: int,
        near: tuple[str, np.ndarray] | None,
    ) -> list[StoredObject]:
        """The cursor API: ``limit`` objects in UUID order after ``after``; nothing else may be
        combined with it (Weaviate's ``ValidateCursor`` and the explorer's check)."""
        if near is not None:
            raise StandInError(
                "cursor api: invalid 'after' parameter: other params cannot be set with after and "
                "limit parameters"
            )
        refused = [name for name, given in (("offset", offset > 0), ("where", f is not None)) if given]
        if refused:
            raise StandInError(
                f"cursor api: invalid 'after' parameter: {','.join(refused)} cannot be set with after and "
                "limit parameters"
            )
        try:
            start = str(uuid_lib.UUID(after))
        except ValueError:
            raise StandInError(
                f"cursor api: invalid 'after' parameter: after parameter '{after}' is not a valid uuid"
            ) from None
        return sorted((o for o in shard.values() if o.uuid > start), key=lambda o: o.uuid)[:limit]

    # --- partial updates -------------------------------------------------------------------------

    def patch_object(
        self,
        class_name: str,
        object_id: str,
        tenant: str,
        properties: Mapping[str, Any] | None,
        vectors: Mapping[str, Any] | None,
    ) -> None:
        """``PATCH /v1/objects/{class}/{id}``: Weaviate's MergeObject. The given properties are
        validated and typed as on insert (auto-schema included) and merged into the stored ones;
        a ``null`` deletes its property; vectors not given are kept."""
        with self.lock:
            cls = self._class(class_name)
            shard = self._shard(cls, tenant)
            try:
                key = str(uuid_lib.UUID(object_id))
            except ValueError:
                raise StandInError(f"invalid UUID {object_id!r}", 400) from None
            stored = shard.get(key)
            if stored is None:
                raise StandInError("not found", 404)
            merged = dict(stored.properties)
            for name, value in (properties or {}).items():
                lowered = name[:1].lower() + name[1:]
                if value is None:
                    merged.pop(lowered, None)
                    continue
                prop = cls.prop(lowered)
                if prop is None:
                    if not self.autoschema:
                        raise StandInError(
                            f"invalid object: no such prop with name '{lowered}' found in class "
                            f"'{cls.name}' in the schema. Check your schema files for which properties in "
                            "this class are available"
                        )
                    prop = self._infer(cls, lowered, value)
                    if prop is None:
                        continue
                merged[lowered] = self._convert(cls, prop, value)
            new_vectors = dict(stored.vectors)
            for vector_name, vector in (vectors or {}).items():
                array = np.asarray(vector, dtype=np.float32)
                expected = cls.dimensions.get(vector_name)
                if expected is not None and expected != array.shape[0]:
                    raise StandInError(
                        f"new node has a vector with length {array.shape[0]}. "
                        f"Existing nodes have vectors with length {expected}"
                    )
                new_vectors[vector_name] = array
            stored.properties = merged
            stored.vectors = new_vectors
            stored.updated = int(time.time() * 1000)

    def replace_object(
        self,
        class_name: str,
        object_id: str,
        tenant: str,
        properties: Mapping[str, Any] | None,
        vectors: Mapping[str, Any] | None,
    ) -> None:
        """``PUT /v1/objects/{class}/{id}``: Weaviate's UpdateObject. The object must exist; it is
        replaced whole — properties validated as on insert, the vectors given (one not given is
        gone: there is no vectorizer to make it again)."""
        with self.lock:
            cls = self._class(class_name)
            shard = self._shard(cls, tenant)
            try:
                key = str(uuid_lib.UUID(object_id))
            except ValueError:
                raise StandInError(f"invalid UUID {object_id!r}", 400) from None
            previous = shard.get(key)
            if previous is None:
                raise StandInError("not found", 404)
            given = {name: np.asarray(v, dtype=np.float32) for name, v in (vectors or {}).items()}
            self._put({"collection": cls.name, "uuid": key, "tenant": tenant,
                       "properties": dict(properties or {}), "vectors": given})  # fmt: skip

    def delete_where(
        self, class_name: str, tenant: str, f: Filter | None, dry_run: bool
    ) -> tuple[int, list[str]]:
        """Delete up to ``query_maximum_results`` matching objects; returns (matches, deleted ids)."""
        with self.lock:
            cls, shard = self._objects(class_name, tenant)
            if f is None:
                raise StandInError("a filter is required to delete objects in batch")
            self.validate(f, cls)
            match = self.compile(f, cls)
            matched = sorted((o for o in shard.values() if match(o)), key=lambda o: o.seq)
            matched = matched[: self.query_maximum_results]
            if not dry_run:
                for o in matched:
                    del shard[o.uuid]
            return len(matched), [o.uuid for o in matched]

    def count(self, class_name: str, tenant: str, f: Filter | None) -> int:
        with self.lock:
            cls, shard = self._objects(class_name, tenant)
            self.validate(f, cls)
            match = self.compile(f, cls)
            return sum(1 for o in shard.values() if match(o))


#: Weaviate's ``hybrid.DefaultLimit``: each half of a hybrid search fetches at least this many.
HYBRID_DEFAULT_LIMIT = 100
#: Weaviate's ``en`` stop word preset (adapters/repos/db/inverted/stopwords/presets.go).
STOPWORDS_EN = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)


def _stopwords(config: Mapping[str, Any]) -> frozenset[str]:
    preset = config.get("preset") or "en"
    if preset not in ("en", "none"):
        raise StandInError(f"the stand-in does not implement stop word preset {preset!r}")
    words = set(STOPWORDS_EN if preset == "en" else ())
    words |= set(config.get("additions") or ())
    words -= set(config.get("removals") or ())
    return frozenset(words)

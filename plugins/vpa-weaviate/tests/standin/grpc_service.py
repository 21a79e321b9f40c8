"""The stand-in's gRPC side: ``weaviate.v1.Weaviate`` (Search — with the cursor API's ``after``,
BatchObjects, BatchDelete, Aggregate, TenantsGet) and ``grpc.health.v1.Health/Check``, built from
the protobuf modules the official client ships (``weaviate.proto.v1``). Errors are answered the
way Weaviate answers them: status UNKNOWN with Weaviate's message, UNAUTHENTICATED for a missing or
wrong API key."""

from __future__ import annotations

import struct
import time
import uuid as uuid_lib
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
import numpy as np
from google.protobuf.json_format import MessageToDict
from weaviate.proto.v1 import (
    aggregate_pb2,
    base_pb2,
    base_search_pb2,
    batch_delete_pb2,
    batch_pb2,
    health_weaviate_pb2,
    properties_pb2,
    search_get_pb2,
    tenants_pb2,
    weaviate_pb2_grpc,
)

from .model import ClassState, Filter, Model, StandInError, StoredObject

F = base_pb2.Filters
OPERATORS = {
    F.OPERATOR_EQUAL: "Equal",
    F.OPERATOR_NOT_EQUAL: "NotEqual",
    F.OPERATOR_GREATER_THAN: "GreaterThan",
    F.OPERATOR_GREATER_THAN_EQUAL: "GreaterThanEqual",
    F.OPERATOR_LESS_THAN: "LessThan",
    F.OPERATOR_LESS_THAN_EQUAL: "LessThanEqual",
    F.OPERATOR_AND: "And",
    F.OPERATOR_OR: "Or",
    F.OPERATOR_NOT: "Not",
    F.OPERATOR_LIKE: "Like",
    F.OPERATOR_IS_NULL: "IsNull",
    F.OPERATOR_CONTAINS_ANY: "ContainsAny",
    F.OPERATOR_CONTAINS_ALL: "ContainsAll",
    F.OPERATOR_CONTAINS_NONE: "ContainsNone",
}


def parse_filter(pb: base_pb2.Filters) -> Filter:
    op = OPERATORS.get(pb.operator)
    if op is None:
        raise StandInError(f"the stand-in does not implement filter operator {pb.operator}")
    if op in ("And", "Or", "Not"):
        return Filter(op, operands=[parse_filter(child) for child in pb.filters])
    if pb.HasField("target"):
        if pb.target.WhichOneof("target") != "property":
            raise StandInError("the stand-in does not implement reference filters")
        prop: str | None = pb.target.property
    else:
        prop = pb.on[-1] if pb.on else None
    which = pb.WhichOneof("test_value")
    if which is None:
        raise StandInError(f"filter on {prop!r} has no value")
    if which == "value_text":
        return Filter(op, prop, pb.value_text, "text")
    if which == "value_int":
        return Filter(op, prop, pb.value_int, "int")
    if which == "value_boolean":
        return Filter(op, prop, pb.value_boolean, "boolean")
    if which == "value_number":
        return Filter(op, prop, pb.value_number, "number")
    if which == "value_text_array":
        return Filter(op, prop, list(pb.value_text_array.values), "text")
    if which == "value_int_array":
        return Filter(op, prop, list(pb.value_int_array.values), "int")
    if which == "value_boolean_array":
        return Filter(op, prop, list(pb.value_boolean_array.values), "boolean")
    if which == "value_number_array":
        return Filter(op, prop, list(pb.value_number_array.values), "number")
    raise StandInError(f"the stand-in does not implement filter value {which}")


def _floats32(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def decode_object(pb: batch_pb2.BatchObject) -> dict[str, Any]:
    props: dict[str, Any] = {}
    p = pb.properties
    if p.HasField("non_ref_properties"):
        props.update(MessageToDict(p.non_ref_properties))
    for arr in p.text_array_properties:
        props[arr.prop_name] = list(arr.values)
    for arr in p.int_array_properties:
        props[arr.prop_name] = list(arr.values)
    for arr in p.boolean_array_properties:
        props[arr.prop_name] = list(arr.values)
    for arr in p.number_array_properties:
        if arr.values_bytes:
            n = len(arr.values_bytes) // 8
            props[arr.prop_name] = list(struct.unpack(f"<{n}d", arr.values_bytes))
        else:
            props[arr.prop_name] = list(arr.values)
    for name in p.empty_list_props:
        props[name] = []
    if (
        p.object_properties
        or p.object_array_properties
        or p.single_target_ref_props
        or p.multi_target_ref_props
    ):
        raise StandInError("the stand-in does not implement object or reference properties")
    vectors: dict[str, np.ndarray] = {}
    if pb.vector_bytes:
        vectors[""] = _floats32(pb.vector_bytes)
    elif len(pb.vector):
        vectors[""] = np.asarray(list(pb.vector), dtype=np.float32)
    for v in pb.vectors:
        if v.type == base_pb2.Vectors.VECTOR_TYPE_MULTI_FP32:
            raise StandInError("the stand-in does not implement multi-vectors")
        vectors[v.name] = _floats32(v.vector_bytes)
    return {
        "collection": pb.collection,
        "uuid": pb.uuid,
        "tenant": pb.tenant,
        "properties": props,
        "vectors": vectors,
    }


def to_value(data_type: str, value: Any) -> properties_pb2.Value:
    if data_type == "date":  # Weaviate's NewDateValue: the RFC3339Nano string
        return properties_pb2.Value(date_value=value.rfc3339nano())
    if data_type == "date[]":
        return properties_pb2.Value(
            list_value=properties_pb2.ListValue(
                date_values=properties_pb2.DateValues(values=[v.rfc3339nano() for v in value])
            )
        )
    if data_type in ("text", "uuid"):
        return properties_pb2.Value(text_value=value)
    if data_type == "int":
        return properties_pb2.Value(int_value=int(value))
    if data_type == "number":
        return properties_pb2.Value(number_value=float(value))
    if data_type == "boolean":
        return properties_pb2.Value(bool_value=bool(value))
    if data_type in ("text[]", "uuid[]"):
        return properties_pb2.Value(
            list_value=properties_pb2.ListValue(text_values=properties_pb2.TextValues(values=value))
        )
    if data_type == "int[]":
        data = struct.pack(f"<{len(value)}q", *value)
        return properties_pb2.Value(
            list_value=properties_pb2.ListValue(int_values=properties_pb2.IntValues(values=data))
        )
    if data_type == "number[]":
        data = struct.pack(f"<{len(value)}d", *value)
        return properties_pb2.Value(
            list_value=properties_pb2.ListValue(number_values=properties_pb2.NumberValues(values=data))
        )
    if data_type == "boolean[]":
        return properties_pb2.Value(
            list_value=properties_pb2.ListValue(bool_values=properties_pb2.BoolValues(values=value))
        )
    raise StandInError(f"the stand-in does not implement data type {data_type}")


class WeaviateServicer(weaviate_pb2_grpc.WeaviateServicer):
    def __init__(self, model: Model) -> None:
        self.model = model

    def _guard(self, name: str, context: grpc.ServicerContext, work: Callable[[], Any]) -> Any:
        self.model.count_request(f"grpc:{name}")
        metadata = dict(context.invocation_metadata())
        try:
            self.model.check_auth(metadata.get("authorization"))
            return work()
        except StandInError as exc:
            context.abort(getattr(grpc.StatusCode, exc.grpc_code), exc.message)

    # --- writes -------------------------------------------------------------------------------

    def BatchObjects(self, request: batch_pb2.BatchObjectsRequest, context: grpc.ServicerContext) -> Any:
        def work() -> batch_pb2.BatchObjectsReply:
            started = time.monotonic()
            decoded: list[dict[str, Any] | None] = []
            early: dict[int, str] = {}
            for index, obj in enumerate(request.objects):
                try:
                    decoded.append(decode_object(obj))
                except StandInError as exc:
                    decoded.append(None)
                    early[index] = exc.message
            positions = [i for i, d in enumerate(decoded) if d is not None]
            errors = self.model.batch_objects([d for d in decoded if d is not None])
            all_errors = dict(early)
            all_errors.update({positions[i]: message for i, message in errors.items()})
            return batch_pb2.BatchObjectsReply(
                took=time.monotonic() - started,
                errors=[
                    batch_pb2.BatchObjectsReply.BatchError(index=i, error=m)
                    for i, m in sorted(all_errors.items())
                ],
            )

        return self._guard("BatchObjects", context, work)

    def BatchDelete(self, request: batch_delete_pb2.BatchDeleteRequest, context: grpc.ServicerContext) -> Any:
        def work() -> batch_delete_pb2.BatchDeleteReply:
            started = time.monotonic()
            where = parse_filter(request.filters) if request.HasField("filters") else None
            matches, ids = self.model.delete_where(request.collection, request.tenant, where, request.dry_run)
            objects = (
                [
                    batch_delete_pb2.BatchDeleteObject(uuid=uuid_lib.UUID(i).bytes, successful=True)
                    for i in ids
                ]
                if request.verbose
                else []
            )
            return batch_delete_pb2.BatchDeleteReply(
                took=time.monotonic() - started,
                failed=0,
                matches=matches,
                successful=0 if request.dry_run else matches,
                objects=objects,
            )

        return self._guard("BatchDelete", context, work)

    # --- reads --------------------------------------------------------------------------------

    def _near(self, request: Any) -> tuple[str, np.ndarray] | None:
        if not request.HasField("near_vector"):
            return None
        return self._near_vector(request.near_vector)

    @staticmethod
    def _near_vector(nv: Any) -> tuple[str, np.ndarray]:
        targets = list(nv.targets.target_vectors) if nv.HasField("targets") else list(nv.target_vectors)
        if len(targets) > 1:
            raise StandInError("the stand-in does not implement multi-target vector search")
        target = targets[0] if targets else ""
        if nv.vector_bytes:
            return target, _floats32(nv.vector_bytes)
        if len(nv.vector):
            return target, np.asarray(list(nv.vector), dtype=np.float32)
        for v in nv.vectors:
            return v.name or target, _floats32(v.vector_bytes)
        for vt in nv.vector_for_targets:
            if vt.vector_bytes:
                return vt.name, _floats32(vt.vector_bytes)
            for v in vt.vectors:
                return vt.name, _floats32(v.vector_bytes)
        raise StandInError("near_vector has no vector")

    def _hybrid_vector(self, hs: Any) -> tuple[str, np.ndarray] | None:
        """The vector of a hybrid search: ``vector_bytes`` with its target, or a ``near_vector``."""
        targets = list(hs.targets.target_vectors) if hs.HasField("targets") else list(hs.target_vectors)
        if len(targets) > 1:
            raise StandInError("the stand-in does not implement multi-target vector search")
        target = targets[0] if targets else ""
        if hs.HasField("near_text") or len(hs.vectors):
            raise StandInError("the stand-in implements hybrid search with one single vector only")
        if hs.HasField("near_vector"):
            name, vector = self._near_vector(hs.near_vector)
            return name or target, vector
        if hs.vector_bytes:
            return target, _floats32(hs.vector_bytes)
        if len(hs.vector):
            return target, np.asarray(list(hs.vector), dtype=np.float32)
        return None

    def _keyword(
        self, request: search_get_pb2.SearchRequest, where: Filter | None, limit: int
    ) -> tuple[ClassState, list[tuple[StoredObject, float]]] | None:
        """A ``bm25`` or ``hybrid`` search, scored; None for another kind."""
        if request.HasField("bm25_search"):
            bm = request.bm25_search
            if (
                bm.HasField("search_operator")
                and bm.search_operator.operator == bm.search_operator.OPERATOR_AND
            ):
                raise StandInError("the stand-in does not implement the bm25 And operator")
            return self.model.bm25(
                request.collection,
                request.tenant,
                where,
                bm.query,
                list(bm.properties),
                limit,
                request.offset,
            )
        if not request.HasField("hybrid_search"):
            return None
        hs = request.hybrid_search
        if hs.HasField("vector_distance") or hs.HasField("selection"):
            raise StandInError("the stand-in does not implement hybrid max vector distance or selection")
        if hs.HasField("bm25_search_operator") and (
            hs.bm25_search_operator.operator == hs.bm25_search_operator.OPERATOR_AND
        ):
            raise StandInError("the stand-in does not implement the bm25 And operator")
        alpha = hs.alpha_param if hs.use_alpha_param else hs.alpha
        if not 0.0 <= alpha <= 1.0:
            raise StandInError(f"hybrid search: alpha must be between 0 and 1, got {alpha}")
        ranked = hs.fusion_type == base_search_pb2.Hybrid.FusionType.FUSION_TYPE_RANKED
        return self.model.hybrid(
            request.collection,
            request.tenant,
            where,
            hs.query,
            list(hs.properties),
            float(alpha),
            ranked,
            self._hybrid_vector(hs),
            limit,
            request.offset,
        )

    def _result(
        self,
        request: search_get_pb2.SearchRequest,
        cls: ClassState,
        obj: StoredObject,
        distance: float | None,
        score: float | None = None,
    ) -> search_get_pb2.SearchResult:
        meta = search_get_pb2.MetadataResult(id=obj.uuid, id_as_bytes=uuid_lib.UUID(obj.uuid).bytes)
        m = request.metadata
        if score is not None and m.score:
            meta.score = score
            meta.score_present = True
        if distance is not None and m.distance:
            meta.distance = distance
            meta.distance_present = True
        if distance is not None and m.certainty:
            meta.certainty = max(0.0, 1.0 - distance / 2.0)
            meta.certainty_present = True
        if m.creation_time_unix:
            meta.creation_time_unix = obj.created
            meta.creation_time_unix_present = True
        if m.last_update_time_unix:
            meta.last_update_time_unix = obj.updated
            meta.last_update_time_unix_present = True
        if m.vector or len(m.vectors):
            if "" in obj.vectors and m.vector:
                meta.vector_bytes = obj.vectors[""].astype("<f4").tobytes()
            wanted = list(m.vectors) or [n for n in obj.vectors if n]
            for name in wanted:
                if name in obj.vectors:
                    vector = obj.vectors[name]
                    if self.model.normalize_vectors:
                        vector = vector / np.float32(np.linalg.norm(vector))
                    meta.vectors.append(
                        base_pb2.Vectors(
                            name=name,
                            vector_bytes=vector.astype("<f4").tobytes(),
                            type=base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32,
                        )
                    )
        if not request.HasField("properties") or request.properties.return_all_nonref_properties:
            names = list(obj.properties)
        else:
            names = [n for n in request.properties.non_ref_properties if n in obj.properties]
        fields = {}
        for name in names:
            prop = cls.prop(name)
            if prop is not None:
                fields[name] = to_value(prop["dataType"][0], obj.properties[name])
        props = search_get_pb2.PropertiesResult(
            non_ref_props=properties_pb2.Properties(fields=fields), target_collection=cls.name
        )
        return search_get_pb2.SearchResult(properties=props, metadata=meta)

    def Search(self, request: search_get_pb2.SearchRequest, context: grpc.ServicerContext) -> Any:
        def work() -> search_get_pb2.SearchReply:
            started = time.monotonic()
            for unsupported in (
                "near_text",
                "near_object",
                "group_by",
                "generative",
            ):
                if request.HasField(unsupported):
                    raise StandInError(f"the stand-in does not implement {unsupported}")
            if len(request.sort_by):
                raise StandInError("the stand-in does not implement sort")
            near = self._near(request)
            max_distance = (
                request.near_vector.distance
                if near is not None and request.near_vector.HasField("distance")
                else None
            )
            where = parse_filter(request.filters) if request.HasField("filters") else None
            limit = request.limit or 10  # QUERY_DEFAULTS_LIMIT
            if near is not None and (request.HasField("bm25_search") or request.HasField("hybrid_search")):
                raise StandInError("near_vector cannot be combined with bm25 or hybrid")
            keyword = self._keyword(request, where, limit)
            if keyword is not None:
                cls, scored = keyword
                return search_get_pb2.SearchReply(
                    took=time.monotonic() - started,
                    results=[self._result(request, cls, obj, None, score) for obj, score in scored],
                )
            cls, found = self.model.search(
                request.collection,
                request.tenant,
                where,
                limit,
                request.offset,
                near,
                max_distance,
                after=request.after,
            )
            return search_get_pb2.SearchReply(
                took=time.monotonic() - started,
                results=[self._result(request, cls, obj, distance) for obj, distance in found],
            )

        return self._guard("Search", context, work)

    def Aggregate(self, request: aggregate_pb2.AggregateRequest, context: grpc.ServicerContext) -> Any:
        def work() -> aggregate_pb2.AggregateReply:
            started = time.monotonic()
            if (
                request.WhichOneof("search") is not None
                or request.HasField("group_by")
                or len(request.aggregations)
            ):
                raise StandInError("the stand-in implements only objects_count aggregations")
            where = parse_filter(request.filters) if request.HasField("filters") else None
            count = self.model.count(request.collection, request.tenant, where)
            single = (
                aggregate_pb2.AggregateReply.Single(objects_count=count)
                if request.objects_count
                else (aggregate_pb2.AggregateReply.Single())
            )
            return aggregate_pb2.AggregateReply(took=time.monotonic() - started, single_result=single)

        return self._guard("Aggregate", context, work)

    def TenantsGet(self, request: tenants_pb2.TenantsGetRequest, context: grpc.ServicerContext) -> Any:
        def work() -> tenants_pb2.TenantsGetReply:
            started = time.monotonic()
            tenants = self.model.get_tenants(request.collection)
            if request.HasField("names"):
                wanted = set(request.names.values)
                tenants = [t for t in tenants if t["name"] in wanted]
            status = {
                "ACTIVE": tenants_pb2.TENANT_ACTIVITY_STATUS_ACTIVE,
                "INACTIVE": tenants_pb2.TENANT_ACTIVITY_STATUS_INACTIVE,
            }
            return tenants_pb2.TenantsGetReply(
                took=time.monotonic() - started,
                tenants=[
                    tenants_pb2.Tenant(
                        name=t["name"],
                        activity_status=status.get(
                            t["activityStatus"], tenants_pb2.TENANT_ACTIVITY_STATUS_ACTIVE
                        ),
                    )
                    for t in tenants
                ],
            )

        return self._guard("TenantsGet", context, work)


def _health_check(model: Model) -> Callable[..., Any]:
    def check(request: health_weaviate_pb2.WeaviateHealthCheckRequest, context: grpc.ServicerContext) -> Any:
        model.count_request("grpc:Health/Check")
        return health_weaviate_pb2.WeaviateHealthCheckResponse(
            status=health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING
        )

    return check


def build_server(model: Model, port: int = 0, host: str = "127.0.0.1") -> tuple[grpc.Server, int]:
    options = [
        ("grpc.max_receive_message_length", model.grpc_max_message_size),
        ("grpc.max_send_message_length", model.grpc_max_message_size),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=options)
    weaviate_pb2_grpc.add_WeaviateServicer_to_server(WeaviateServicer(model), server)
    health = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                _health_check(model),
                request_deserializer=health_weaviate_pb2.WeaviateHealthCheckRequest.FromString,
                response_serializer=health_weaviate_pb2.WeaviateHealthCheckResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((health,))
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind the stand-in's gRPC port on {host}:{port}")
    return server, bound

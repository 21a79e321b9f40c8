"""The public strategies produce valid data that respects a store's declared capabilities."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vpa.errors import InvalidFilter, LimitExceeded
from vpa.filters import COMPARISON_OPS, FilterSize, filter_size, operators_used, parse_filter
from vpa.models import FilterOp, MetadataType, Record, StoreCapabilities
from vpa.validation import check_id, check_records, metadata_bytes, metadata_type, record_bytes
from vpa_conformance import strategies as vst

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@st.composite
def capabilities(draw):
    comparisons = [op for op in FilterOp if op in COMPARISON_OPS]
    ops = draw(st.sets(st.sampled_from(list(FilterOp)), min_size=1))
    ops.add(draw(st.sampled_from(comparisons)))
    types = draw(st.sets(st.sampled_from(list(MetadataType)), min_size=1))
    return StoreCapabilities(
        filter_operators=ops,
        metadata_types=types,
        heterogeneous_fields=draw(st.booleans()),
        max_record_bytes=draw(st.none() | st.integers(1024, 4096)),
    )


@SETTINGS
@given(data=st.data())
def test_records_respect_capabilities(data):
    caps = data.draw(capabilities())
    dim = data.draw(st.integers(2, 8))
    records = data.draw(vst.record_lists(dim, caps, max_size=10))
    assert check_records(records, dim, caps.metadata_types, caps.max_record_bytes) is not None
    assert len({r.id for r in records}) == len(records)
    seen: dict[str, set[MetadataType]] = {}
    for record in records:
        check_id(record.id)
        if caps.max_record_bytes is not None:
            assert record_bytes(record) <= caps.max_record_bytes
        for key, value in record.metadata.items():
            kind = metadata_type(value)
            assert kind in caps.metadata_types
            seen.setdefault(key, set()).add(kind)
    if not caps.heterogeneous_fields:
        lists = {MetadataType.STR_LIST, MetadataType.EMPTY_LIST}
        for kinds in seen.values():
            assert len(kinds) == 1 or kinds <= lists


@SETTINGS
@given(data=st.data())
def test_filters_use_declared_operators(data):
    caps = data.draw(capabilities())
    records = data.draw(vst.record_lists(3, caps, max_size=8))
    fields = [*{k for r in records for k in r.metadata}, vst.ABSENT_FIELD]
    spec = data.draw(vst.filter_dicts(fields, vst.field_values([r.metadata for r in records]), caps))
    assert operators_used(parse_filter(spec)) <= caps.filter_operators


@settings(SETTINGS, max_examples=30)
@given(data=st.data(), op=st.sampled_from(list(FilterOp)))
def test_required_operator_is_present(data, op):
    caps = data.draw(capabilities())
    spec = data.draw(vst.filter_dicts(["a", "b"], [1, "x", True, 2.5], caps, require=op))
    used = operators_used(parse_filter(spec))
    assert op in used
    assert used - {op} <= caps.filter_operators | set(COMPARISON_OPS)


@SETTINGS
@given(vector=st.integers(2, 16).flatmap(vst.vectors))
def test_vectors_are_valid(vector):
    import numpy as np

    array = np.asarray(vector, dtype=np.float32)
    assert np.isfinite(array).all() and np.linalg.norm(array) > 0
    assert [float(x) for x in array] == vector  # exactly representable in float32


@pytest.mark.parametrize("spec", vst.MALFORMED_FILTERS, ids=repr)
def test_malformed_filters_are_invalid(spec):
    with pytest.raises(InvalidFilter):
        parse_filter(spec)


def test_tricky_ids_are_valid_and_distinct():
    assert len(set(vst.TRICKY_IDS)) == len(vst.TRICKY_IDS)
    for value in vst.TRICKY_IDS:
        check_id(value)


@st.composite
def bounded_capabilities(draw):
    """Capabilities with any operators and types, and bounds from the floors up."""
    base = draw(capabilities())
    return attrs.evolve(
        base,
        max_filter_terms=draw(st.integers(64, 4096)),
        max_filter_depth=draw(st.integers(8, 32)),
        max_metadata_keys=draw(st.integers(32, 512)),
        max_metadata_bytes=draw(st.integers(4096, 70_000)),
    )


@settings(SETTINGS, max_examples=40)
@given(caps=bounded_capabilities())
def test_limit_shapes_are_exactly_at_the_bounds(caps):
    terms, depth = caps.max_filter_terms, caps.max_filter_depth
    for label, spec in vst.wide_filters(caps, terms):
        node = parse_filter(spec, max_terms=terms, max_depth=depth)
        assert filter_size(node).terms == terms, label
        assert operators_used(node) <= caps.filter_operators, label
        with pytest.raises(LimitExceeded):
            parse_filter(vst.wide_filters(caps, terms + 1)[0][1], max_terms=terms)
    deep = vst.deep_filter(caps, depth, terms)
    if deep is not None:
        node = parse_filter(deep, max_terms=terms, max_depth=depth)
        assert filter_size(node) == FilterSize(terms=terms, depth=depth)
        assert operators_used(node) <= caps.filter_operators
        with pytest.raises(LimitExceeded, match="max_filter_depth"):
            parse_filter(vst.deep_filter(caps, depth + 1, terms), max_terms=terms, max_depth=depth)
    keys = vst.metadata_with_keys(caps, caps.max_metadata_keys)
    assert len(keys) == caps.max_metadata_keys
    assert check_records([Record("r", [1.0, 0.0], "", keys)], 2, caps.metadata_types)
    sized = vst.metadata_of_bytes(caps, caps.max_metadata_bytes)
    if sized is not None:
        assert metadata_bytes(sized) == caps.max_metadata_bytes
        assert check_records([Record("r", [1.0, 0.0], "", sized)], 2, caps.metadata_types)


def test_filters_are_generated_within_the_declared_bounds():
    caps = StoreCapabilities(max_filter_terms=64, max_filter_depth=8)

    @settings(SETTINGS, max_examples=80)
    @given(tree=vst.filter_trees(["a", "b"], [1, "x", True, 2.5], caps, max_leaves=12))
    def check(tree):
        size = filter_size(tree)
        assert size.terms <= 64 and size.depth <= 8

    check()

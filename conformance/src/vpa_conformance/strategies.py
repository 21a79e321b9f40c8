"""Hypothesis strategies for VPA data: ids, texts, metadata, vectors, records and filters.

Every strategy that takes ``capabilities`` (a `vpa.models.StoreCapabilities`) produces only what
that store declares: metadata types it can hold, filter operators it can evaluate, records within
its size limit, one type per metadata key when it lacks ``heterogeneous_fields``. Plugin authors
can use them in their own tests::

    from hypothesis import given
    from vpa_conformance import strategies as vst

    @given(vst.record_lists(dimension=8, capabilities=MyStore.capabilities))
    def test_my_translation(records): ...

Generated data leans on the cases that break stores: unicode that normalisation would change,
ids that look like numbers or UUIDs, keys named like a backend's reserved fields, the edges of the
int and float ranges, empty strings and lists, records that lack a field.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from vpa.filters import COMPARISON_OPS, LIST_OPS, ORDERING_OPS, And, Comparison, Node, Not, Or, filter_size
from vpa.models import FilterOp, MetadataType, Record, StoreCapabilities
from vpa.typedjson import MAX_MICROS, from_micros
from vpa.validation import (
    LEGACY_KEY_LENGTH,
    MAX_ID_LENGTH,
    MAX_KEY_LENGTH,
    MAX_SAFE_INT,
    key_problem,
    record_bytes,
)

__all__ = [
    "ABSENT_FIELD",
    "LEGACY_MALFORMED_FILTERS",
    "LEXICAL_WORDS",
    "LIMIT_FIELDS",
    "LOGICAL_OPS",
    "MALFORMED_FILTERS",
    "TRICKY_IDS",
    "TRICKY_TEXTS",
    "WIDE_KEYS",
    "bool_values",
    "comparisons",
    "datetime_values",
    "deep_filter",
    "empty_list_values",
    "field_values",
    "filter_dicts",
    "filter_trees",
    "float_values",
    "ids",
    "int_values",
    "lexical_queries",
    "lexical_texts",
    "limit_records",
    "malformed_filters",
    "metadata_dicts",
    "metadata_keys",
    "metadata_of_bytes",
    "metadata_schemas",
    "metadata_values",
    "metadata_with_keys",
    "record_lists",
    "records",
    "render_filter",
    "scalar_pool",
    "str_list_values",
    "str_values",
    "texts",
    "value_kind",
    "vectors",
    "wide_filters",
]

DEFAULT_CAPABILITIES = StoreCapabilities()
LOGICAL_OPS = frozenset({FilterOp.AND, FilterOp.OR, FilterOp.NOT})
COMPARISONS = tuple(op for op in FilterOp if op in COMPARISON_OPS)

#: A field name no generated record has: filters on it exercise the missing-field rules.
ABSENT_FIELD = "zz_absent"

_CHARS = st.characters(exclude_categories=("Cs",))  # any code point UTF-8 can encode
_ID_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")

#: Texts that break stores: normalisation (NFC/NFKC would change them), zero-width and
#: direction marks, emoji sequences, JSON- and SQL-looking text, NUL and control characters.
TRICKY_TEXTS: tuple[str, ...] = (
    "",
    " ",
    "  leading and trailing  ",
    "e\u0301",  # decomposed é: NFC changes it
    "\u00e9",
    "\ufb01",  # the ﬁ ligature: NFKC changes it
    "\u212b",  # ANGSTROM SIGN: NFC changes it
    "\u2126",  # OHM SIGN
    "\U0001f469\u200d\U0001f4bb",  # woman technologist (ZWJ sequence)
    "\U0001f1eb\U0001f1f7",  # a flag
    "\u05e2\u05d1\u05e8\u05d9\u05ea and \u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "\u4e2d\u6587 \u65e5\u672c\u8a9e \ud55c\uad6d\uc5b4",
    "\u200b\u200c\u200d\ufeff",
    "tab\there\nnew line\r\nwindows",
    "quotes \" ' ` \\ backslash",
    '{"json": [1, 2.5, null]}',
    "'; DROP TABLE records; --",
    "$eq $in {$or}",
    "%_*?[]",
    "null",
    "None",
    "true",
    "0",
    "-0.0",
    "nul\x00inside",
    "\x01\x07\x1b\x7f",
    "\U0010ffff\ue000",
    "x" * 300,
)

#: Ids that break stores: look like numbers or UUIDs (and differ from each other as strings),
#: contain separators, spaces or non-ASCII, or are as long as allowed.
TRICKY_IDS: tuple[str, ...] = (
    "1",
    "01",
    "1.0",
    "-1",
    "0",
    "00000000-0000-0000-0000-000000000000",
    "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
    "6BA7B810-9DAD-11D1-80B4-00C04FD430C8",
    "id with spaces",
    " ",
    "a/b\\c?d#e&f=g",
    "caf\u00e9",
    "cafe\u0301",
    "\U0001f600",
    "'quoted\"",
    "tab\tnewline\n",
    "i" * MAX_ID_LENGTH,
    "\u00e9" * MAX_ID_LENGTH,
)

#: Metadata keys that collide with what backends keep beside the metadata, or are at the limits.
RESERVED_LOOKING_KEYS: tuple[str, ...] = (
    "id",
    "_id",
    "text",
    "document",
    "documents",
    "vector",
    "embedding",
    "metadata",
    "score",
    "distance",
    "payload",
    "_",
    "__vpa",
    "_vpa_text",
    "chroma_document",
    "k" * LEGACY_KEY_LENGTH,
    "Case",
    "case",
)

#: Contract 1.1's wider keys, as document loaders produce them, and the characters each engine's
#: paths, property names or expressions give a meaning to (dots, brackets, quotes, operators).
WIDE_KEYS: tuple[str, ...] = (
    "source-url",
    "og:title",
    "page.number",
    "a.b.c",
    "Gr\u00f6\u00dfe",
    "caf\u00e9",
    "cafe\u0301",
    "with space",
    " ",
    "1st",
    "0",
    "tags[0]",
    "[]",
    "a'b",
    'a"b',
    "back\\slash",
    "x/y?z#w&v=u",
    "json_contains(m, 1)",
    "m['k']",
    "-",
    "__proto__",
    "constructor",
    "a$b",
    "vpa",
    "\U0001f600",
    "\u4e2d\u6587",
    "tab\tkey",
    "k" * MAX_KEY_LENGTH,
    "\u00e9" * MAX_KEY_LENGTH,
)
WIDE_KEYS = tuple(k for k in WIDE_KEYS if key_problem(k) is None)
_PLAIN_KEYS = ("a", "b", "c", "lang", "year", "tags", "draft", "rating", "category", "title")


def value_kind(value: Any) -> str:
    """The kind the filter language compares by: "number", "bool", "str" or "list"."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dt.datetime):
        return "datetime"
    return "other"


# --- scalars ---------------------------------------------------------------------------------


def texts(max_size: int = 60) -> st.SearchStrategy[str]:
    """Unicode text (every code point UTF-8 can encode) and the `TRICKY_TEXTS`."""
    return st.one_of(st.sampled_from(TRICKY_TEXTS), st.text(_CHARS, max_size=max_size))


#: The small vocabulary of `lexical_texts` and `lexical_queries`, so drawn queries hit drawn texts
#: and documents share words (document frequencies above 1, repeated words, ties). It holds
#: spellings that are one token under VPA's tokenizer (NFKC, case folding): "Straße" / "STRASSE"
#: / "strasse", "Café" / "cafe\u0301" / "CAFÉ" (but not "cafe"), the "ﬁ" ligature / "file",
#: final and capital sigma; words the tokenizer splits ("e-mail", "don't", "İstanbul", whose
#: case folding leaves a combining dot); digits, underscores, CJK; and two 70-character words that
#: share their first 64 characters (one token: tokens are cut at 64).
LEXICAL_WORDS: tuple[str, ...] = (
    "search",
    "vector",
    "index",
    "query",
    "ranking",
    "store",
    "record",
    "lexical",
    "dense",
    "hybrid",
    "filter",
    "score",
    "Straße",
    "STRASSE",
    "strasse",
    "Café",
    "cafe\u0301",
    "CAFÉ",
    "cafe",
    "\ufb01le",
    "FILE",
    "\u03a3\u03af\u03c3\u03c5\u03c6\u03bf\u03c2",  # Σίσυφος (a final sigma)
    "\u03a3\u038a\u03a3\u03a5\u03a6\u039f\u03a3",  # ΣΊΣΥΦΟΣ
    "\u6771\u4eac",  # 東京
    "2024",
    "snake_case",
    "e-mail",
    "don't",
    "\u0130stanbul",
    "a" * 64 + "bcdefg",
    "a" * 64 + "zzzzzz",
)
#: Query words no drawn text holds.
_ABSENT_WORDS = ("zebra", "nowhere")
_SEPARATORS = (" ", "  ", ", ", ". ", "\n", "\t", " \u2014 ", "/", "!? ")
#: Texts without a single token (records that no lexical query may return).
_WORDLESS = ("", " ", "\u2014", "!!! ...", "\U0001f642 \U0001f680")


@st.composite
def lexical_texts(draw: st.DrawFn, max_words: int = 12) -> str:
    """A text of up to ``max_words`` words of `LEXICAL_WORDS` (repeats likely) between varied
    separators, sometimes with no word at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(_WORDLESS))
    words = draw(st.lists(st.sampled_from(LEXICAL_WORDS), min_size=1, max_size=max_words))
    parts = [words[0]]
    for word in words[1:]:
        parts += [draw(st.sampled_from(_SEPARATORS)), word]
    return "".join(parts)


@st.composite
def lexical_queries(draw: st.DrawFn, max_words: int = 4) -> str:
    """A lexical query: 1 … ``max_words`` words, mostly of `LEXICAL_WORDS` (so it hits drawn
    texts), sometimes one no text holds, sometimes a word twice (it counts once)."""
    words = draw(
        st.lists(
            st.one_of(st.sampled_from(LEXICAL_WORDS), st.sampled_from(_ABSENT_WORDS)),
            min_size=1,
            max_size=max_words,
        )
    )
    if draw(st.booleans()):
        words.append(words[0].upper())
    return draw(st.sampled_from(_SEPARATORS)).join(words)


def ids(max_size: int = 40) -> st.SearchStrategy[str]:
    """Valid record ids: non-empty, no NUL, at most 512 characters; and the `TRICKY_IDS`."""
    return st.one_of(st.sampled_from(TRICKY_IDS), st.text(_ID_CHARS, min_size=1, max_size=max_size))


def metadata_keys(capabilities: StoreCapabilities | None = None) -> st.SearchStrategy[str]:
    """Keys the store's contract allows: identifier-like ones (1.0), and for a 1.1 store also the
    `WIDE_KEYS` and any text of up to 128 characters that is a key."""
    caps = capabilities or DEFAULT_CAPABILITIES
    legacy = st.one_of(
        st.sampled_from(_PLAIN_KEYS),
        st.sampled_from(RESERVED_LOOKING_KEYS),
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True),
    )
    if not caps.contract_1_1:
        return legacy
    wide = st.one_of(
        st.sampled_from(WIDE_KEYS),
        st.text(_CHARS, min_size=1, max_size=24).filter(lambda k: key_problem(k) is None),
    )
    return st.one_of(legacy, wide)


def str_values() -> st.SearchStrategy[str]:
    return texts(max_size=30)


def int_values() -> st.SearchStrategy[int]:
    """Integers within ±2**53 (the portable range), with the edges likely."""
    edges = [
        0,
        1,
        -1,
        2,
        42,
        2**31 - 1,
        2**31,
        -(2**31),
        2**32,
        MAX_SAFE_INT,
        -MAX_SAFE_INT,
        MAX_SAFE_INT - 1,
    ]
    return st.one_of(st.sampled_from(edges), st.integers(-100, 100), st.integers(-MAX_SAFE_INT, MAX_SAFE_INT))


def float_values() -> st.SearchStrategy[float]:
    """Finite floats, including integral ones (``2.0`` must stay a float), -0.0, subnormals and
    the largest doubles."""
    edges = [
        0.0,
        -0.0,
        0.5,
        1.0,
        -1.5,
        2.0,
        0.1,
        1 / 3,
        1e-300,
        5e-324,
        1.7976931348623157e308,
        -1e308,
        2.0**53,
    ]
    return st.one_of(
        st.sampled_from(edges),
        st.integers(-100, 100).map(float),
        st.floats(allow_nan=False, allow_infinity=False),
    )


def bool_values() -> st.SearchStrategy[bool]:
    return st.booleans()


_TIMEZONES = (
    dt.UTC,
    dt.timezone(dt.timedelta(hours=2)),
    dt.timezone(dt.timedelta(hours=-9, minutes=-30)),
    dt.timezone(dt.timedelta(hours=14)),
)


@st.composite
def datetime_values(draw: st.DrawFn) -> dt.datetime:
    """Timezone-aware datetimes in the portable range (±2**53 microseconds of the epoch), in
    several offsets, with microseconds, and the edges likely: the epoch, just before it, the ends
    of the range."""
    edges = [0, -1, 1, 1_000_000, -1_000_000, MAX_MICROS, -MAX_MICROS, 1_714_564_800_000_000]
    micros = draw(
        st.one_of(
            st.sampled_from(edges),
            st.integers(-(10**15), 10**15).map(lambda m: m - m % 1_000_000),  # whole seconds
            st.integers(-MAX_MICROS, MAX_MICROS),
        )
    )
    zone = draw(st.sampled_from(_TIMEZONES))
    value = from_micros(micros).astimezone(zone)
    return value


def str_list_values() -> st.SearchStrategy[list[str]]:
    return st.lists(str_values(), min_size=1, max_size=4)


def empty_list_values() -> st.SearchStrategy[list[str]]:
    return st.just([])


VALUE_STRATEGIES = {
    MetadataType.STR: str_values,
    MetadataType.INT: int_values,
    MetadataType.FLOAT: float_values,
    MetadataType.BOOL: bool_values,
    MetadataType.STR_LIST: str_list_values,
    MetadataType.EMPTY_LIST: empty_list_values,
    MetadataType.DATETIME: datetime_values,
}
_TYPE_ORDER = tuple(VALUE_STRATEGIES)


def _declared_types(capabilities: StoreCapabilities | None) -> list[MetadataType]:
    caps = capabilities or DEFAULT_CAPABILITIES
    return [t for t in _TYPE_ORDER if t in caps.metadata_types]


def metadata_values(
    capabilities: StoreCapabilities | None = None, types: Sequence[MetadataType] | None = None
) -> st.SearchStrategy[Any]:
    """Values of the given types (default: every type the store declares)."""
    allowed = _declared_types(capabilities) if types is None else [MetadataType(t) for t in types]
    if not allowed:
        return st.nothing()
    return st.one_of(*(VALUE_STRATEGIES[t]() for t in allowed))


# --- metadata and records --------------------------------------------------------------------

#: A schema maps each metadata key to the types its values may take in one collection.
Schema = dict[str, tuple[MetadataType, ...]]


@st.composite
def metadata_schemas(
    draw: st.DrawFn,
    capabilities: StoreCapabilities | None = None,
    *,
    min_keys: int = 1,
    max_keys: int = 4,
    types: Sequence[MetadataType] | None = None,
) -> Schema:
    """Keys and the types each may hold. Without ``heterogeneous_fields``, one type per key
    (a list key may hold empty lists too, when both are declared)."""
    caps = capabilities or DEFAULT_CAPABILITIES
    declared = _declared_types(caps) if types is None else [MetadataType(t) for t in types]
    if not declared:
        return {}
    keys = draw(st.lists(metadata_keys(caps), min_size=min_keys, max_size=max_keys, unique=True))
    schema: Schema = {}
    for key in keys:
        if caps.heterogeneous_fields and draw(st.booleans()):
            chosen = draw(
                st.lists(st.sampled_from(declared), min_size=1, max_size=len(declared), unique=True)
            )
            schema[key] = tuple(sorted(chosen, key=_TYPE_ORDER.index))
        else:
            one = draw(st.sampled_from(declared))
            group = {one}
            lists_ = {MetadataType.STR_LIST, MetadataType.EMPTY_LIST}
            if one in lists_:
                group |= lists_ & set(declared)
            schema[key] = tuple(sorted(group, key=_TYPE_ORDER.index))
    return schema


@st.composite
def metadata_dicts(
    draw: st.DrawFn,
    capabilities: StoreCapabilities | None = None,
    *,
    schema: Schema | None = None,
    presence: float | None = None,
) -> dict[str, Any]:
    """One record's metadata: each key of the schema present or not, with a value of its types."""
    if schema is None:
        schema = draw(metadata_schemas(capabilities))
    out: dict[str, Any] = {}
    for key, types in schema.items():
        present = draw(st.integers(0, 3)) > 0 if presence is None else draw(st.floats(0, 1)) < presence
        if present:
            out[key] = draw(metadata_values(types=types))
    return out


@st.composite
def vectors(draw: st.DrawFn, dimension: int) -> list[float]:
    """A finite, non-zero vector of float32 values, at a scale of 1, 1e-3 or 1e3 (so a store that
    ranks by dot product instead of cosine is caught)."""
    component = st.one_of(st.sampled_from([0.0, 1.0, -1.0, 0.5, -0.25]), st.floats(-1, 1, width=32))
    values = np.array(draw(st.lists(component, min_size=dimension, max_size=dimension)), dtype=np.float64)
    if np.linalg.norm(values) < 1e-3:
        values[draw(st.integers(0, dimension - 1))] = 1.0
    scale = draw(st.sampled_from([1.0, 1.0, 1e-3, 1e3]))
    return [float(x) for x in (values * scale).astype(np.float32)]


def _fits(record: Record, capabilities: StoreCapabilities | None) -> bool:
    limit = (capabilities or DEFAULT_CAPABILITIES).max_record_bytes
    return limit is None or record_bytes(record) <= limit


@st.composite
def records(
    draw: st.DrawFn,
    dimension: int,
    capabilities: StoreCapabilities | None = None,
    *,
    schema: Schema | None = None,
    id: str | None = None,
    text: st.SearchStrategy[str] | None = None,
) -> Record:
    """One valid record for a collection of ``dimension``, within the store's size limit; its text
    drawn from ``text`` (default `texts`; `lexical_texts` for lexical search)."""
    if schema is None:
        schema = draw(metadata_schemas(capabilities))
    record_id = id if id is not None else draw(ids())
    vector = draw(vectors(dimension))
    text = draw(texts() if text is None else text)
    metadata = draw(metadata_dicts(capabilities, schema=schema))
    record = Record(record_id, vector, text, metadata)
    if not _fits(record, capabilities):
        record = Record(record_id, vector, "", {})
    return record


@st.composite
def record_lists(
    draw: st.DrawFn,
    dimension: int,
    capabilities: StoreCapabilities | None = None,
    *,
    min_size: int = 0,
    max_size: int = 12,
    schema: Schema | None = None,
    unique_ids: bool = True,
    text: st.SearchStrategy[str] | None = None,
) -> list[Record]:
    """Records sharing one schema; ids unique unless ``unique_ids=False`` (then repeats are
    likely, to test newest-wins); texts from ``text`` (see `records`)."""
    if schema is None:
        schema = draw(metadata_schemas(capabilities))
    if unique_ids:
        id_list = draw(st.lists(ids(), min_size=min_size, max_size=max_size, unique=True))
    else:
        pool = draw(st.lists(ids(), min_size=1, max_size=max(1, max_size // 2), unique=True))
        id_list = draw(st.lists(st.sampled_from(pool), min_size=max(min_size, 1), max_size=max_size))
    return [draw(records(dimension, capabilities, schema=schema, id=i, text=text)) for i in id_list]


# --- filters ---------------------------------------------------------------------------------


def scalar_pool(metadatas: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Every scalar that occurs in the metadata (list elements included): filter values drawn from
    it hit records, so comparisons at exact boundaries are tested."""
    pool: list[Any] = []
    seen: set[tuple[str, Any]] = set()
    for metadata in metadatas:
        for value in metadata.values():
            for item in value if isinstance(value, list) else [value]:
                key = (type(item).__name__, item)
                if key not in seen:
                    seen.add(key)
                    pool.append(item)
    return pool


def field_values(metadatas: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """`scalar_pool` per field: filters whose operands come from the same field hit exact
    boundaries (``$lte`` on a stored value) far more often."""
    keys = dict.fromkeys(k for m in metadatas for k in m)
    return {k: scalar_pool([{k: m[k]} for m in metadatas if k in m]) for k in keys}


Values = Sequence[Any] | Mapping[str, Sequence[Any]]


def _pools(values: Values, field: str) -> tuple[list[Any], list[Any]]:
    """(values of this field, values of every field)."""
    if isinstance(values, Mapping):
        everything = [v for pool in values.values() for v in pool]
        return list(values.get(field, ())), everything
    return list(values), list(values)


def _scalar_values() -> st.SearchStrategy[Any]:
    return st.one_of(str_values(), int_values(), float_values(), bool_values())


def _operand(draw: st.DrawFn, op: FilterOp, own: Sequence[Any], every: Sequence[Any]) -> Any:
    def prefer(
        pool_own: list[Any], pool_every: list[Any], fresh: st.SearchStrategy[Any]
    ) -> st.SearchStrategy[Any]:
        # a weighted choice (st.one_of would flatten nested one_ofs and dilute the weights):
        # mostly this field's own values, sometimes another field's, sometimes a fresh value
        roll = draw(st.integers(0, 9))
        if pool_own and roll < 7:
            return st.sampled_from(pool_own)
        if pool_every and roll < 9:
            return st.sampled_from(pool_every)
        return fresh

    if op is FilterOp.EXISTS:
        return draw(st.booleans())
    dates = any(value_kind(v) == "datetime" for v in [*own, *every])
    if op in ORDERING_OPS:
        kind = "datetime" if dates and draw(st.integers(0, 3)) else "number"
        fresh_ordered = datetime_values() if kind == "datetime" else st.one_of(int_values(), float_values())
        return draw(
            prefer(
                [v for v in own if value_kind(v) == kind],
                [v for v in every if value_kind(v) == kind],
                fresh_ordered,
            )
        )
    if op in LIST_OPS:
        kinds = [*sorted({value_kind(v) for v in [*own, *every]}), "str", "number", "bool"]
        kind = draw(st.sampled_from(kinds))
        fresh = {
            "str": str_values(),
            "number": st.one_of(int_values(), float_values()),
            "bool": bool_values(),
            "datetime": datetime_values(),
        }[kind]
        element = prefer(
            [v for v in own if value_kind(v) == kind], [v for v in every if value_kind(v) == kind], fresh
        )
        return tuple(draw(st.lists(element, min_size=1, max_size=3)))
    return draw(prefer(list(own), list(every), _scalar_values()))


@st.composite
def comparisons(
    draw: st.DrawFn, fields: Sequence[str], values: Values = (), ops: Sequence[FilterOp] = COMPARISONS
) -> Comparison:
    """``field op value`` with an operand of the right shape for ``op``, drawn mostly from
    ``values`` (a list, or a mapping field → values to prefer each field's own values)."""
    op = draw(st.sampled_from(list(ops)))
    present = [f for f in fields if f != ABSENT_FIELD]
    # mostly fields records have; the absent one (missing-field rules) about one time in six
    field = draw(
        st.sampled_from(present) if present and draw(st.integers(0, 5)) else st.sampled_from(list(fields))
    )
    own, every = _pools(values, field)
    return Comparison(field, op, _operand(draw, op, own, every))


def _declared_ops(capabilities: StoreCapabilities | None) -> frozenset[FilterOp]:
    return (capabilities or DEFAULT_CAPABILITIES).filter_operators


def _random_tree(
    fields: Sequence[str], values: Values, ops: frozenset[FilterOp], max_leaves: int
) -> st.SearchStrategy[Node]:
    leaf_ops = [op for op in COMPARISONS if op in ops]
    if not leaf_ops:
        return st.nothing()
    leaf = comparisons(fields, values, leaf_ops)

    def extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
        options = []
        if FilterOp.AND in ops:
            options.append(st.lists(children, min_size=1, max_size=3).map(lambda cs: And(tuple(cs))))
        if FilterOp.OR in ops:
            options.append(st.lists(children, min_size=1, max_size=3).map(lambda cs: Or(tuple(cs))))
        if FilterOp.NOT in ops:
            options.append(children.map(Not))
        return st.one_of(*options)

    if not ops & LOGICAL_OPS:
        return leaf
    return st.recursive(leaf, extend, max_leaves=max_leaves)


@st.composite
def filter_trees(
    draw: st.DrawFn,
    fields: Sequence[str],
    values: Values = (),
    capabilities: StoreCapabilities | None = None,
    *,
    require: FilterOp | str | None = None,
    max_leaves: int = 6,
) -> Node:
    """A parsed filter tree over ``fields`` using only declared operators — except ``require``,
    which the tree always contains (declared or not: use an undeclared one to test that the store
    refuses it) — and within the store's ``max_filter_terms`` and ``max_filter_depth``."""
    tree = _tree(draw, fields, values, capabilities, require, max_leaves)
    caps = capabilities or DEFAULT_CAPABILITIES
    size = filter_size(tree)
    assume(size.terms <= caps.max_filter_terms and size.depth <= caps.max_filter_depth)
    return tree


def _tree(
    draw: st.DrawFn,
    fields: Sequence[str],
    values: Values,
    capabilities: StoreCapabilities | None,
    require: FilterOp | str | None,
    max_leaves: int,
) -> Node:
    ops = _declared_ops(capabilities)
    if require is None:
        return draw(_random_tree(fields, values, ops, max_leaves))
    require = FilterOp(require)
    helpers = ops if any(op in ops for op in COMPARISONS) else ops | frozenset(COMPARISONS)
    sub = _random_tree(fields, values, helpers - {require} if require in LOGICAL_OPS else helpers, 3)
    if require in COMPARISON_OPS:
        core: Node = draw(comparisons(fields, values, [require]))
    elif require is FilterOp.NOT:
        core = Not(draw(sub))
    else:
        children = tuple(draw(st.lists(sub, min_size=1, max_size=3)))
        core = And(children) if require is FilterOp.AND else Or(children)
    wrappers = [op for op in (FilterOp.AND, FilterOp.OR, FilterOp.NOT) if op in ops]
    if wrappers and draw(st.booleans()):
        wrapper = draw(st.sampled_from(wrappers))
        if wrapper is FilterOp.NOT:
            return Not(core)
        others = draw(st.lists(_random_tree(fields, values, ops, 3), max_size=2))
        position = draw(st.integers(0, len(others)))
        children = (*others[:position], core, *others[position:])
        return And(children) if wrapper is FilterOp.AND else Or(children)
    return core


def _is_operator_object(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(str(k).startswith("$") for k in value)


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key not in merged:
                merged[key] = dict(value) if _is_operator_object(value) else value
            elif (
                _is_operator_object(merged[key])
                and _is_operator_object(value)
                and not set(merged[key]) & set(value)
            ):
                merged[key].update(value)
            else:
                return None
    return merged


@st.composite
def render_filter(draw: st.DrawFn, node: Node) -> dict[str, Any]:
    """The JSON form of a tree, in any of the equivalent spellings: ``{"f": v}`` shorthand,
    ``{"f": {"$gt": 1, "$lt": 5}}``, several keys for an implicit ``$and``, or explicit
    ``$and``/``$or``/``$not``."""
    if isinstance(node, Comparison):
        value = list(node.value) if isinstance(node.value, tuple) else node.value
        if node.op is FilterOp.EXISTS:  # also Haystack's spellings with null
            spellings = [{node.field: {"$exists": value}}]
            spellings += (
                [{node.field: None}, {node.field: {"$eq": None}}]
                if not value
                else [{node.field: {"$ne": None}}]
            )
            return draw(st.sampled_from(spellings))
        if node.op is FilterOp.EQ and value_kind(value) != "list" and draw(st.booleans()):
            return {node.field: value}
        return {node.field: {node.op.value: value}}
    if isinstance(node, Not):
        return {"$not": draw(render_filter(node.child))}
    parts = [draw(render_filter(child)) for child in node.children]
    if isinstance(node, Or):
        return {"$or": parts}
    if len(parts) > 1 and draw(st.booleans()):  # one child: keep "$and" (it is the operator used)
        merged = _merge(parts)
        if merged is not None:
            return merged
    return {"$and": parts}


@st.composite
def filter_dicts(
    draw: st.DrawFn,
    fields: Sequence[str],
    values: Values = (),
    capabilities: StoreCapabilities | None = None,
    *,
    require: FilterOp | str | None = None,
    max_leaves: int = 6,
) -> dict[str, Any]:
    """`filter_trees`, rendered to the JSON form a caller passes to a store."""
    tree = draw(filter_trees(fields, values, capabilities, require=require, max_leaves=max_leaves))
    return draw(render_filter(tree))


#: Filters `vpa.filters.parse_filter` must refuse with `InvalidFilter`.
MALFORMED_FILTERS: tuple[Any, ...] = (
    {"$foo": 1},
    {"a": {"$regex": "x"}},
    {"a": {"$in": []}},
    {"a": {"$in": "x"}},
    {"a": {"$in": [1, "x"]}},
    {"a": {"$nin": [True, 1]}},
    {"a": {"$gt": "x"}},
    {"a": {"$lte": True}},
    {"a": {"$gte": [1]}},
    {"a": {"b": 1}},
    {"a": {}},
    {"a": [1, 2]},
    {"a": {"$eq": [1]}},
    {"a": math.nan},
    {"a": {"$lt": math.inf}},
    {"a": 2**60},
    {"$and": []},
    {"$and": {"a": 1}},
    {"$or": [1]},
    {"$or": []},
    {"$not": []},
    {"$not": {}},
    {"": 1},
    {"a\x00b": 1},
    {"k" * (MAX_KEY_LENGTH + 1): 1},
    {"a": {"$exists": "yes"}},
    {"a": {"$exists": 1}},
    {"a": {"$exists": None}},
    {"a": {"$in": [None]}},
    {"a": {"$gt": None}},
    {"a": {"$date": "not a date"}},
    {"a": {"$gte": {"$date": "2024-05-01T12:00:00"}}},  # naive
    {"a": {"$lt": {"$date": "9999-01-01T00:00:00Z"}}},  # outside the portable range
    [],
    [{"a": 1}],
    "a",
    5,
)


#: Filters a contract 1.0 store also refuses: field names that are not 1.0 metadata keys.
LEGACY_MALFORMED_FILTERS: tuple[Any, ...] = ({"1bad": 1}, {"a-b": 1}, {"k" * (LEGACY_KEY_LENGTH + 1): 1})


def malformed_filters(capabilities: StoreCapabilities | None = None) -> tuple[Any, ...]:
    """The filters this store must refuse with `InvalidFilter` (by its contract version)."""
    caps = capabilities or DEFAULT_CAPABILITIES
    return MALFORMED_FILTERS if caps.contract_1_1 else MALFORMED_FILTERS + LEGACY_MALFORMED_FILTERS


# --- declared limits -------------------------------------------------------------------------
#
# Deterministic shapes at (and just past) a store's declared bounds: what a backend must survive
# is a property of the whole filter or record, not of a small random one. The fields are those of
# `limit_records`: "s" str, "i" int, "x" float, "b" bool, "l" list of str (as declared).

#: The fields `limit_records` writes, by the type each holds.
LIMIT_FIELDS = {
    MetadataType.STR: "s",
    MetadataType.INT: "i",
    MetadataType.FLOAT: "x",
    MetadataType.BOOL: "b",
    MetadataType.STR_LIST: "l",
}


def limit_records(dimension: int, capabilities: StoreCapabilities | None = None, n: int = 12) -> list[Record]:
    """``n`` records over the `LIMIT_FIELDS` the store declares (record ``k``: ``s="v<k>"``,
    ``i=k``, ``x=k+0.5``, ``b=k even``, ``l=["v<k>", "all"]``); every third lacks ``s``."""
    caps = capabilities or DEFAULT_CAPABILITIES
    values = {
        "s": lambda k: f"v{k}",
        "i": lambda k: k,
        "x": lambda k: k + 0.5,
        "b": lambda k: k % 2 == 0,
        "l": lambda k: [f"v{k}", "all"],
    }
    fields = [f for t, f in LIMIT_FIELDS.items() if t in caps.metadata_types]
    rng = np.random.default_rng(7)
    out = []
    for k in range(n):
        metadata = {f: values[f](k) for f in fields if not (f == "s" and k % 3 == 2)}
        vector = rng.standard_normal(dimension).astype(np.float32) + 0.1
        out.append(Record(f"lim-{k}", vector, f"text {k}", metadata))
    return out


def _limit_fields(caps: StoreCapabilities) -> tuple[str | None, str | None]:
    """(a field holding strings, a field holding numbers), among those declared."""
    types = caps.metadata_types
    strings = "s" if MetadataType.STR in types else "l" if MetadataType.STR_LIST in types else None
    numbers = "i" if MetadataType.INT in types else "x" if MetadataType.FLOAT in types else None
    return strings, numbers


def _strings(n: int) -> list[str]:
    """``n`` distinct strings, the first few held by records, the rest by none."""
    hits = [f"v{k}" for k in range(min(n, 5))]
    return hits + [f"w{k}" for k in range(n - len(hits))]


def _numbers(n: int) -> list[int | float]:
    """``n`` distinct numbers, ints and floats, some held by records."""
    return [k if k % 2 == 0 else k + 0.5 for k in range(n)]


def wide_filters(capabilities: StoreCapabilities | None, terms: int) -> list[tuple[str, dict[str, Any]]]:
    """Named filters of exactly ``terms`` terms (see `vpa.filters`), in every shape the declared
    operators and types allow: wide ``$or`` of ``$eq``, ``$in``/``$nin`` of many values, ``$and``
    of ``$ne``, and ``$not`` of an ``$and`` of ordering comparisons (the shape that expands most
    in translations that push negations down)."""
    caps = capabilities or DEFAULT_CAPABILITIES
    ops = caps.filter_operators
    strings, numbers = _limit_fields(caps)
    shapes: list[tuple[str, dict[str, Any]]] = []
    if {FilterOp.OR, FilterOp.EQ} <= ops:
        if strings:
            shapes.append((f"$or of {terms} string $eq", {"$or": [{strings: v} for v in _strings(terms)]}))
        if numbers:
            shapes.append((f"$or of {terms} number $eq", {"$or": [{numbers: v} for v in _numbers(terms)]}))
    for op in (FilterOp.IN, FilterOp.NIN):
        if op in ops and strings:
            shapes.append((f"{op.value} of {terms} strings", {strings: {op.value: _strings(terms)}}))
        if op in ops and numbers:
            shapes.append((f"{op.value} of {terms} numbers", {numbers: {op.value: _numbers(terms)}}))
    if {FilterOp.AND, FilterOp.NE} <= ops and strings:
        shapes.append((f"$and of {terms} $ne", {"$and": [{strings: {"$ne": v}} for v in _strings(terms)]}))
    elif {FilterOp.AND, FilterOp.EQ} <= ops and (strings or numbers):
        field, values = (strings, _strings) if strings else (numbers, _numbers)
        shapes.append((f"$and of {terms} $eq", {"$and": [{field: v} for v in values(terms)]}))
    ordering = [op for op in (FilterOp.GT, FilterOp.GTE, FilterOp.LT, FilterOp.LTE) if op in ops]
    if {FilterOp.NOT, FilterOp.AND} <= ops and ordering and numbers:
        conditions = [{numbers: {ordering[k % len(ordering)].value: k - 3.5}} for k in range(terms)]
        shapes.append((f"$not of an $and of {terms} ordering comparisons", {"$not": {"$and": conditions}}))
    return shapes


def deep_filter(capabilities: StoreCapabilities | None, depth: int, terms: int) -> dict[str, Any] | None:
    """A filter of exactly ``depth`` levels and ``terms`` terms (None if the declared operators
    cannot nest): a chain of the declared ``$and``/``$or``/``$not`` in turn, each ``$and``/``$or``
    beside one comparison, around an ``$in`` (or an ``$or`` of ``$eq``) holding the other terms."""
    caps = capabilities or DEFAULT_CAPABILITIES
    ops = caps.filter_operators
    strings, numbers = _limit_fields(caps)
    field = strings or numbers
    wrappers = [op for op in (FilterOp.AND, FilterOp.OR, FilterOp.NOT) if op in ops]
    values = _strings if field == strings else _numbers
    if field is None or not ops & {FilterOp.EQ, FilterOp.IN}:
        return None

    def leaf(value: Any) -> dict[str, Any]:
        return {field: value} if FilterOp.EQ in ops else {field: {"$in": [value]}}

    if depth == 1:
        if terms == 1:
            return leaf(values(1)[0])
        return {field: {"$in": values(terms)}} if FilterOp.IN in ops else None
    if not wrappers:
        return None
    # the terms not beside a wrapper: one $in (depth 1), else one $or or $and of comparisons
    bottom = (
        FilterOp.IN
        if FilterOp.IN in ops
        else next((op for op in (FilterOp.OR, FilterOp.AND) if op in ops), None)
    )
    if bottom is None:
        return None
    bottom_depth = 1 if bottom is FilterOp.IN else 2
    plan = [wrappers[k % len(wrappers)] for k in range(depth - bottom_depth)]
    rest = terms - sum(op is not FilterOp.NOT for op in plan)
    if rest < bottom_depth:
        return None
    pool = values(rest + len(plan))
    inner: dict[str, Any] = (
        {field: {"$in": pool[:rest]}}
        if bottom is FilterOp.IN
        else {bottom.value: [leaf(v) for v in pool[:rest]]}
    )
    for k, op in enumerate(reversed(plan)):
        inner = {"$not": inner} if op is FilterOp.NOT else {op.value: [leaf(pool[rest + k]), inner]}
    return inner


def metadata_with_keys(capabilities: StoreCapabilities | None, keys: int) -> dict[str, Any]:
    """Metadata of exactly ``keys`` keys, their values cycling through the declared types."""
    caps = capabilities or DEFAULT_CAPABILITIES
    makers = {
        MetadataType.STR: lambda k: f"v{k}",
        MetadataType.INT: lambda k: k,
        MetadataType.FLOAT: lambda k: k + 0.25,
        MetadataType.BOOL: lambda k: k % 2 == 0,
        MetadataType.STR_LIST: lambda k: [f"t{k}"],
        MetadataType.EMPTY_LIST: lambda k: [],
        MetadataType.DATETIME: lambda k: from_micros(k * 1_000_003),
    }
    declared = [makers[t] for t in _TYPE_ORDER if t in caps.metadata_types]
    if not declared:
        return {}
    return {f"k{k:05d}": declared[k % len(declared)](k) for k in range(keys)}


def metadata_of_bytes(capabilities: StoreCapabilities | None, size: int) -> dict[str, Any] | None:
    """One key whose metadata is exactly ``size`` bytes (`vpa.validation.metadata_bytes`): a
    list of as many empty strings as fit (the most items a size allows: the worst case for a
    backend that stores each item apart), or else one long string. None if neither type is
    declared or ``size`` is too small."""
    from vpa.validation import metadata_bytes

    caps = capabilities or DEFAULT_CAPABILITIES
    if MetadataType.STR_LIST in caps.metadata_types and size >= 11:
        items = (size - 7) // 4  # {"l": ["", "", ...]} is 4 * items + 7 bytes
        values = [""] * items
        values[-1] = "a" * (size - 7 - 4 * items)
        metadata: dict[str, Any] = {"l": values}
    elif MetadataType.STR in caps.metadata_types and size >= 9:
        metadata = {"s": "a" * (size - 9)}  # {"s": ""} is 9 bytes
    else:
        return None
    assert metadata_bytes(metadata) == size, (metadata_bytes(metadata), size)
    return metadata

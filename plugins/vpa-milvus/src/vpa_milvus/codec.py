"""How VPA metadata is laid out in the collection's JSON field, and how collection names map.

**Typed keys.** Milvus compares a JSON value only with a literal of the same type (an int key
with an int literal, a float key with a float literal), treats a missing key as NULL (so ``not``
of a comparison on a missing key is NULL, not true, in Milvus Lite), and Python-style engines
consider ``True == 1``. VPA needs int and float to compare as numbers, bool never to equal a number,
and negation to be an exact complement. So each metadata value is stored under a key that names its
type — ``s_`` str, ``i_`` int, ``f_`` float, ``b_`` bool, ``l_`` list of str::

    {"year": 2020, "score": 0.5, "lang": "en", "draft": False, "tags": ["a"]}
    -> {"i_year": 2020, "f_score": 0.5, "s_lang": "en", "b_draft": False, "l_tags": ["a"]}

A filter then addresses exactly the typed key(s) a comparison can match, with a literal of that
key's type, and guards each comparison with ``exists`` so that it is never NULL (see filters.py).
The prefix also restores the exact Python type on the way back (``2.0`` stays a float even if a
JSON layer prints it as ``2``).

**Collection names.** VPA names may contain '-', Milvus names may not. A name without '-' is used
as it is; one with '-' becomes ``_`` + the name with '_' doubled and '-' written as '_0'. Milvus
names of the second kind start with '_', which no VPA name does, so the map is one-to-one and
`vpa_name` inverts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STR, INT, FLOAT, BOOL, LIST = "s", "i", "f", "b", "l"
PREFIXES = (STR, INT, FLOAT, BOOL, LIST)


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
    raise TypeError(f"not a portable metadata value: {type(value).__name__}")


def typed_key(tag: str, key: str) -> str:
    return f"{tag}_{key}"


def encode_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """VPA metadata (already validated) → the JSON object stored in Milvus."""
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        tag = type_tag(value)
        out[typed_key(tag, key)] = list(value) if tag == LIST else value
    return out


def decode_metadata(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """The stored JSON object → VPA metadata with the original Python types."""
    out: dict[str, Any] = {}
    for name, value in (stored or {}).items():
        tag, sep, key = name.partition("_")
        if not sep or not key:
            continue  # not written by VPA; ignore rather than guess a type
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
    return out


# --- collection names --------------------------------------------------------------------------


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

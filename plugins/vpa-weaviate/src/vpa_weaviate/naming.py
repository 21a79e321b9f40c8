"""How VPA names and values map onto Weaviate's schema, reversibly.

Collections
    Weaviate class names must match ``[A-Z][_0-9A-Za-z]*`` and Weaviate upper-cases the first
    letter; recent versions also refuse two classes whose names differ only in case. VPA names
    (``[A-Za-z][A-Za-z0-9_-]{0,62}``) are therefore encoded into an all-lowercase body after a
    prefix (default ``Vpa``): a lowercase letter or digit stands for itself, ``_`` is written
    ``__``, ``-`` is written ``_0`` and an uppercase letter ``X`` is written ``_x``. The code is
    prefix-free, so ``decode_collection(encode_collection(n)) == n`` for every portable name.

Properties
    A metadata key ``k`` is stored in the property ``m_<k encoded>``, with the same code as class
    names (``year`` is ``m_year``, ``myKey`` is ``m_my_key``, ``a_b`` is ``m_a__b``): Weaviate
    lower-cases a property's first letter and may compare names without regard to case, and the
    code keeps ``Case`` and ``case`` apart. The reserved properties start with
    ``vpa_``: the record's VPA id, its text, the norm of its vector and the list of metadata keys
    it carries (so an empty list round-trips even where a server drops empty arrays).

Text values
    Weaviate compares text through a tokenizer; the exact one, ``field``, still trims white space,
    so ``" a"`` would equal ``"a"`` and ``""`` would have no token at all. Text metadata values (and
    the items of text lists) are therefore stored framed by STX/ETX (``"\\x02" + s + "\\x03"``) and
    unframed on read: trimming never reaches the value and equality is exact. Filters frame their
    operands the same way.

Object ids
    Weaviate ids are UUIDs; a record's UUID is ``uuid5(VPA_NAMESPACE, record_id)``, so the same
    VPA id always lands on the same object (upsert by id), and the VPA id itself is kept in the
    ``vpa_id`` property to be returned as written.
"""

from __future__ import annotations

import re
import uuid

DEFAULT_PREFIX = "Vpa"
PREFIX_RE = re.compile(r"[A-Z][A-Za-z0-9]{0,15}")
VPA_NAMESPACE = uuid.UUID("6f1b4c2e-8d0a-5e57-9a3c-5657a1d0e1a7")

META_PREFIX = "m_"
ID_PROP = "vpa_id"
TEXT_PROP = "vpa_text"
NORM_PROP = "vpa_norm"
KEYS_PROP = "vpa_keys"
RESERVED_PROPS = (ID_PROP, TEXT_PROP, NORM_PROP, KEYS_PROP)

#: The single named vector of every VPA collection.
VECTOR_NAME = "default"

_STX, _ETX = "\x02", "\x03"


def _encode_body(name: str) -> str:
    out = []
    for ch in name:
        if ("a" <= ch <= "z") or ("0" <= ch <= "9"):
            out.append(ch)
        elif ch == "_":
            out.append("__")
        elif ch == "-":
            out.append("_0")
        elif "A" <= ch <= "Z":
            out.append("_" + ch.lower())
        else:  # the callers validated the name already
            raise ValueError(f"{name!r} has a character Weaviate names cannot hold: {ch!r}")
    return "".join(out)


def _decode_body(body: str) -> str | None:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "_":
            if i + 1 >= len(body):
                return None
            nxt = body[i + 1]
            if nxt == "_":
                out.append("_")
            elif nxt == "0":
                out.append("-")
            elif "a" <= nxt <= "z":
                out.append(nxt.upper())
            else:
                return None
            i += 2
        elif ("a" <= ch <= "z") or ("0" <= ch <= "9"):
            out.append(ch)
            i += 1
        else:
            return None
    return "".join(out)


def encode_collection(name: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The Weaviate class name of the VPA collection ``name``."""
    return prefix + _encode_body(name)


def decode_collection(class_name: str, prefix: str = DEFAULT_PREFIX) -> str | None:
    """The VPA name of a Weaviate class, or None if the class is not one of ours."""
    if not class_name.startswith(prefix):
        return None
    name = _decode_body(class_name[len(prefix) :])
    if not name or not name[0].isalpha():
        return None
    return name


def prop_name(key: str) -> str:
    """The property of metadata key ``key`` (encoded like collection names, so keys that differ
    only in case stay apart even where Weaviate compares property names case-insensitively)."""
    return META_PREFIX + _encode_body(key)


def key_of(prop: str) -> str | None:
    if not prop.startswith(META_PREFIX):
        return None
    key = _decode_body(prop[len(META_PREFIX) :])
    return key or None


def frame(text: str) -> str:
    return _STX + text + _ETX


def unframe(stored: str) -> str:
    if len(stored) >= 2 and stored[0] == _STX and stored[-1] == _ETX:
        return stored[1:-1]
    return stored  # written by something else: return it as it is


def object_uuid(record_id: str) -> uuid.UUID:
    return uuid.uuid5(VPA_NAMESPACE, record_id)

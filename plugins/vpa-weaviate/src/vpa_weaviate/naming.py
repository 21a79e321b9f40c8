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
    code keeps ``Case`` and ``case`` apart. Contract 1.1's wider keys (any Unicode, dots, colons,
    spaces) extend the code: any other character is ``_`` + the number of hex digits (1-6) + its
    code point in lowercase hex (``.`` is ``_22e``, ``é`` is ``_2e9``, ``😀`` is ``_51f600``), so
    ``page.number`` is ``m_page_22enumber``. Weaviate names hold at most 231 characters and must
    not end in a suffix it reserves for its own indexes (``_searchable``, ``_rangeable``,
    ``_temp``, ``__meta_count``, ...); a key whose code would break either rule is stored in
    ``h_<26 base-32 characters of its SHA-256>`` instead, and the key itself is kept in the
    property's description (`property_description`), from which `key_of` reads it back. Every
    property's description carries its key, so the schema alone says which key a property holds.
    The reserved properties start with ``vpa_``: the record's VPA id, its text, the norm of its
    vector and (in collections created before 0.3) the list of metadata keys it carries.

Text values
    Weaviate compares text through a tokenizer; the exact one, ``field``, still trims white space,
    so ``" a"`` would equal ``"a"`` and ``""`` would have no token at all. Text metadata values (and
    the items of text lists) are therefore stored framed by STX/ETX (``"\\x02" + s + "\\x03"``) and
    unframed on read: trimming never reaches the value and equality is exact. Filters frame their
    operands the same way.

Empty lists
    Weaviate's ``IsNull`` counts an empty array as null, so ``[]`` would be indistinguishable from
    a missing key. In collections created by 0.3 an empty list is stored as ``[EMPTY_LIST]``, one
    lone ETX: no framed item equals it (a framed item has at least two characters), so ``$eq``
    and ``$in`` never match it, and ``IsNull`` sees a value. It reads back as ``[]``. Collections
    created before 0.3 keep storing ``[]`` (their readers know no mark, and they have no null-state
    index for ``$exists`` anyway).

Object ids
    Weaviate ids are UUIDs; a record's UUID is ``uuid5(VPA_NAMESPACE, record_id)``, so the same
    VPA id always lands on the same object (upsert by id), and the VPA id itself is kept in the
    ``vpa_id`` property to be returned as written.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import uuid

DEFAULT_PREFIX = "Vpa"
PREFIX_RE = re.compile(r"[A-Z][A-Za-z0-9]{0,15}")
VPA_NAMESPACE = uuid.UUID("6f1b4c2e-8d0a-5e57-9a3c-5657a1d0e1a7")

META_PREFIX = "m_"
HASH_PREFIX = "h_"
#: Weaviate's longest property name, and the suffixes it reserves for its own index buckets.
MAX_PROPERTY_NAME = 231
RESERVED_SUFFIXES = ("_searchable", "_rangeable", "_temp", "__meta_count", "_propertyLength", "_nullState")
#: What a property's description says (JSON): the metadata key it holds.
DESCRIPTION_KEY = "vpa_key"
ID_PROP = "vpa_id"
TEXT_PROP = "vpa_text"
NORM_PROP = "vpa_norm"
KEYS_PROP = "vpa_keys"
#: The record's text as VPA's tokens (`vpa.lexical.tokenize`) joined by spaces: the one searchable
#: property, tokenized ``whitespace``, which Weaviate's BM25 scores (0.3.1 classes).
TERMS_PROP = "vpa_terms"
RESERVED_PROPS = (ID_PROP, TEXT_PROP, NORM_PROP, KEYS_PROP, TERMS_PROP)

#: The single named vector of every VPA collection.
VECTOR_NAME = "default"

_STX, _ETX = "\x02", "\x03"
#: How an empty list is stored (see the module docstring).
EMPTY_LIST = _ETX


def _encode_body(name: str, *, wide: bool = False) -> str:
    """The case-free code of ``name``; ``wide`` escapes any other character by its code point
    (metadata keys), else such a character is an error (collection names are validated)."""
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
        elif wide:
            digits = f"{ord(ch):x}"
            out.append(f"_{len(digits)}{digits}")
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
            elif "1" <= nxt <= "6":
                digits = body[i + 2 : i + 2 + int(nxt)]
                if len(digits) != int(nxt) or not re.fullmatch(r"[0-9a-f]+", digits):
                    return None
                if int(digits, 16) > 0x10FFFF:
                    return None
                out.append(chr(int(digits, 16)))
                i += len(digits)
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
    try:
        canonical = encode_collection(name, prefix)
    except ValueError:  # a character no collection name holds
        return None
    return name if canonical == class_name else None


@functools.lru_cache(maxsize=8192)
def prop_name(key: str) -> str:
    """The property of metadata key ``key``: ``m_<code>`` (encoded like collection names, so keys
    that differ only in case stay apart even where Weaviate compares property names
    case-insensitively), or ``h_<digest>`` where the code would be too long for Weaviate or end
    in a suffix it reserves."""
    name = META_PREFIX + _encode_body(key, wide=True)
    if len(name) <= MAX_PROPERTY_NAME and not name.endswith(RESERVED_SUFFIXES):
        return name
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return HASH_PREFIX + base64.b32encode(digest).decode("ascii").lower()[:26]


def property_description(key: str) -> str:
    """The description of ``key``'s property: the key itself, as JSON."""
    return json.dumps({DESCRIPTION_KEY: key}, ensure_ascii=False, separators=(",", ":"))


def _described_key(description: str | None) -> str | None:
    try:
        document = json.loads(description or "")
    except ValueError:
        return None
    key = document.get(DESCRIPTION_KEY) if isinstance(document, dict) else None
    return key if isinstance(key, str) and key else None


def key_of(prop: str, description: str | None = None) -> str | None:
    """The metadata key a property holds, or None if it is not a metadata property of VPA's. A
    ``m_`` name decodes by itself (only its one canonical code is accepted); a ``h_`` name needs
    its ``description``, which must name a key that hashes to it."""
    if prop.startswith(META_PREFIX):
        key = _decode_body(prop[len(META_PREFIX) :])
        return key if key and prop_name(key) == prop else None
    if prop.startswith(HASH_PREFIX):
        key = _described_key(description)
        return key if key is not None and prop_name(key) == prop else None
    return None


def frame(text: str) -> str:
    return _STX + text + _ETX


def unframe(stored: str) -> str:
    if len(stored) >= 2 and stored[0] == _STX and stored[-1] == _ETX:
        return stored[1:-1]
    return stored  # written by something else: return it as it is


def frame_list(items: list[str], *, mark_empty: bool = True) -> list[str]:
    """A text list as stored: each item framed; ``[]`` as ``[EMPTY_LIST]`` (``mark_empty``, in
    0.3 collections) or as ``[]``."""
    if not items:
        return [EMPTY_LIST] if mark_empty else []
    return [frame(v) for v in items]


def unframe_list(stored: list[str] | None) -> list[str]:
    """A stored text list as written (``[EMPTY_LIST]`` and ``[]`` both read as ``[]``)."""
    if not stored or list(stored) == [EMPTY_LIST]:
        return []
    return [unframe(str(v)) for v in stored]


def object_uuid(record_id: str) -> uuid.UUID:
    return uuid.uuid5(VPA_NAMESPACE, record_id)

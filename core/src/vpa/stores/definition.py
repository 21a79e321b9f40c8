"""A collection's definition as one versioned string, the same in every store.

Every store keeps, with each collection, what VPA needs to open it in any process: dimension,
metric and the embedder fingerprint. A plugin stores the string `dump_definition` returns under
one key of whatever its engine offers (Chroma collection metadata, Milvus collection properties,
Qdrant collection metadata, a Weaviate class description, ...) and rebuilds the
`CollectionInfo` with `load_definition`. The format is JSON with a version number::

    {"vpa": 1, "dimension": 384, "metric": "cosine",
     "fingerprint": {"name": "sentence-transformers", "model": "all-MiniLM-L6-v2", "dimension": 384}}

A definition of a newer format, or one that does not parse, is an `InvalidCollection` naming the
collection: VPA never guesses a dimension.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from vpa.errors import InvalidCollection
from vpa.models import CollectionInfo, EmbedderFingerprint, Metric

DEFINITION_FORMAT = 1
#: The key (or property name) plugins store the definition under, where the engine has keys.
DEFINITION_KEY = "vpa_definition"


def dump_definition(info: CollectionInfo) -> str:
    data: dict[str, Any] = {"vpa": DEFINITION_FORMAT, "dimension": info.dimension, "metric": str(info.metric)}
    fp = info.fingerprint
    data["fingerprint"] = None if fp is None else {"name": fp.name, "model": fp.model, "dimension": fp.dimension}
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def load_definition(name: str, text: str | Mapping[str, Any]) -> CollectionInfo:
    """The `CollectionInfo` of collection ``name`` from its stored definition."""
    try:
        data = json.loads(text) if isinstance(text, str) else dict(text)
        version = data["vpa"]
        if not isinstance(version, int) or version > DEFINITION_FORMAT:
            raise InvalidCollection(
                f"collection {name!r} was defined by a newer VPA (definition format {version}): "
                "upgrade vpa-core"
            )
        fp = data.get("fingerprint")
        fingerprint = (
            None if fp is None else EmbedderFingerprint(str(fp["name"]), str(fp["model"]), int(fp["dimension"]))
        )
        dimension = data["dimension"]
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
            raise ValueError(f"dimension {dimension!r}")
        return CollectionInfo(name=name, dimension=dimension, metric=Metric(data.get("metric", "cosine")),
                              fingerprint=fingerprint)
    except InvalidCollection:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidCollection(f"collection {name!r} has an unreadable VPA definition ({exc})") from None

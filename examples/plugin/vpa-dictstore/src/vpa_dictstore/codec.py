"""Records ↔ the backend's rows, and the collection definition (core's one versioned codec)."""

from __future__ import annotations

from typing import Any

import numpy as np
from vpa.models import CollectionInfo, Hit, Record
from vpa.stores.definition import dump_definition, load_definition

__all__ = ["dump_definition", "hit", "load_definition", "record", "row"]


def row(record: Record) -> dict[str, Any]:
    return {"id": record.id, "vector": np.asarray(record.vector, dtype=np.float32), "text": record.text,
            "metadata": dict(record.metadata)}


def record(data: dict[str, Any]) -> Record:
    return Record(data["id"], data["vector"], data["text"], data["metadata"])


def hit(score: float, data: dict[str, Any]) -> Hit:
    return Hit(data["id"], min(1.0, max(-1.0, score)), data["text"], data["metadata"])


def info(name: str, definition: str) -> CollectionInfo:
    return load_definition(name, definition)

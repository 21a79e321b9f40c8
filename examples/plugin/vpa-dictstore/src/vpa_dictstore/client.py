"""Stands in for a vendor's synchronous client: blocking calls, its own errors, its own filter
(a predicate over a row's metadata). A real plugin imports the vendor's package instead."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np


class NoSuchCollection(KeyError):
    """The vendor's "not found"."""


class DictClient:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._collections: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {}

    def describe(self, name: str) -> str | None:
        entry = self._collections.get(name)
        return entry[0] if entry else None

    def create(self, name: str, definition: str) -> None:
        with self._lock:
            self._collections.setdefault(name, (definition, {}))

    def names(self) -> list[str]:
        return list(self._collections)

    def drop(self, name: str) -> bool:
        with self._lock:
            return self._collections.pop(name, None) is not None

    def _rows(self, name: str) -> dict[str, dict[str, Any]]:
        try:
            return self._collections[name][1]
        except KeyError:
            raise NoSuchCollection(name) from None

    def put(self, name: str, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self._rows(name).update({row["id"]: row for row in rows})

    def fetch(self, name: str, ids: list[str]) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._rows(name)
            return [rows[i] for i in ids if i in rows]

    def select(self, name: str, where: Callable[[dict[str, Any]], bool] | None) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self._rows(name).values() if where is None or where(r["metadata"])]

    def remove(self, name: str, ids: list[str]) -> int:
        with self._lock:
            rows = self._rows(name)
            return sum(rows.pop(i, None) is not None for i in ids)

    def search(self, name: str, vector: np.ndarray, k: int, where: Any) -> list[tuple[float, dict[str, Any]]]:
        rows = self.select(name, where)
        if not rows:
            return []
        matrix = np.stack([r["vector"] for r in rows]).astype(np.float64)
        query = vector.astype(np.float64)
        scores = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
        order = np.argsort(-scores, kind="stable")[:k]
        return [(float(scores[i]), rows[i]) for i in order]

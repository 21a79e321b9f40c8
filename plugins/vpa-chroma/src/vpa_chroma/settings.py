"""The ``[providers.chroma]`` options (all optional; an unknown one is a `ConfigError`).

Import-light: no chromadb here. ``VPA_VECTOR_DB_HOST``/``_PORT`` take precedence over ``host`` and
``port``; the API key is ``VPA_VECTOR_DB_API_KEY`` only (a secret is never a settings field).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs
from vpa.settings import setting

#: Embedded Chroma holds the GIL for the whole of a write call (upsert, update, delete), which
#: stalls the event loop however the call is dispatched; writes are therefore cut into calls of
#: about this many seconds. A call also has a fixed cost (about 50 ms measured at 5k records,
#: growing with the collection), so longer calls write faster: 5,000 records took 10.0 s in
#: 0.12 s calls, 8.6 s in 0.25 s calls and 8.1 s in 0.4 s calls (384-d, ~1.4 kB texts, 10 keys).
WRITE_CALL_SECONDS = 0.2


def _path(value: Any) -> Path | None:
    if value is not None and not isinstance(value, str | os.PathLike):
        raise ValueError(f"path must be a folder name, got {value!r}")
    return None if value is None else Path(value).expanduser()


def _positive(_: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:  # also refuses NaN
        raise ValueError(f"{attribute.name} must be a positive number of seconds, got {value!r}")


def _index(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in ("hnsw", "spann"):
        raise ValueError(f"{attribute.name} must be 'hnsw' or 'spann', not {value!r}")


@attrs.frozen
class ChromaSettings:
    """``[providers.chroma]``: embedded on ``path`` unless a host is set."""

    path: Path | None = setting(None, "embedded: the folder (<VPA_DATA_DIR>/chroma)", converter=_path)  # noqa: RUF009
    host: str | None = setting(None, "a Chroma server (client/server mode); VPA_VECTOR_DB_HOST wins")
    port: int = setting(8000, "the server's port; VPA_VECTOR_DB_PORT wins")
    ssl: bool = setting(False, "client/server: https")
    headers: dict[str, str] = setting({}, "client/server: extra headers on every request")  # noqa: RUF009
    api_key_header: str = setting("Authorization", "the API key's header ('Bearer <key>' in Authorization)")
    tenant: str = setting("default_tenant", "the Chroma tenant")
    database: str = setting("default_database", "the Chroma database")
    timeout: float | None = setting(60.0, "client/server: seconds a call may take", validator=_positive)
    index: str = setting("hnsw", "index of new collections: 'hnsw' or 'spann'", validator=_index)
    ef_search: int | None = setting(None, "HNSW ef_search of new collections (default 200)")
    ef_construction: int | None = setting(None, "HNSW ef_construction of new collections")
    max_neighbors: int | None = setting(None, "HNSW max_neighbors of new collections")
    lexical: bool | None = setting(
        None,
        "embedded: keep VPA's BM25 index beside the folder for lexical and hybrid search (default on); "
        "false turns it off; true with a host is a ConfigError (a server's other clients bypass it)",
    )
    write_call_seconds: float = setting(
        WRITE_CALL_SECONDS,
        "embedded: writes are cut into calls of about this many seconds",
        validator=_positive,
    )

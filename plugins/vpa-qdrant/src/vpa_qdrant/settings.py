"""``[providers.qdrant]``: the options of the `qdrant` store, and the mode they select.

The embedded-or-server rule lives here, once (`QdrantSettings.mode`, completed by `resolve` with
the main config's VPA_VECTOR_DB_HOST/PORT and VPA_DATA_DIR). Embedded means qdrant-client's local
mode (``local``, the default, ``engine = "client"``: pure Python, stores every value exactly) or,
opted into with ``engine = "edge"``, Qdrant Edge (``edge``: Qdrant's own Rust engine, faster, but
qdrant-edge-py 0.9 stores some 17-significant-digit floats one ulp off, so it is not the default;
see the README). No vendor import: the settings are read (``vpa config``, the registry's
declaration) without loading them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import attrs
from vpa.errors import ConfigError
from vpa.settings import setting

Mode = Literal["edge", "local", "memory", "server"]
ENGINES = ("client", "edge")
#: The folder under VPA_DATA_DIR of each embedded engine.
FOLDERS = {"edge": "qdrant-edge", "client": "qdrant"}

SECTION = "[providers.qdrant]"
READ_CONSISTENCY = ("all", "majority", "quorum")
WRITE_ORDERING = ("weak", "medium", "strong")


def _at_least_one(_: Any, attribute: attrs.Attribute, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{SECTION}.{attribute.name} must be at least 1, not {value!r}")


def _recall(_: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ConfigError(f"{SECTION}.{attribute.name} must be in (0, 1], not {value!r}")


def _read_consistency(value: Any) -> str | int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    if isinstance(value, str) and value.lower() in READ_CONSISTENCY:
        return value.lower()
    raise ConfigError(
        f"{SECTION}.read_consistency must be all, majority, quorum or a number of replicas, not {value!r}"
    )


def _write_ordering(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in WRITE_ORDERING:
        return value.lower()
    raise ConfigError(f"{SECTION}.write_ordering must be weak, medium or strong, not {value!r}")


def _engine(value: Any) -> str:
    if isinstance(value, str) and value.lower() in ENGINES:
        return value.lower()
    raise ConfigError(f"{SECTION}.engine must be client or edge, not {value!r}")


@attrs.frozen
class QdrantSettings:
    """``[providers.qdrant]``, every option optional (an unknown one is an error)."""

    # embedded
    engine: str = setting(
        "client",
        "embedded engine: 'client' (qdrant-client's pure-Python local mode, exact round trips) or "
        "'edge' (Qdrant Edge, Qdrant's Rust engine: faster, but 0.9 stores some 17-digit floats one ulp off)",
        converter=_engine,
    )
    path: str | None = setting(
        None,
        "embedded: the data folder (default VPA_DATA_DIR/qdrant; VPA_DATA_DIR/qdrant-edge for 'edge')",
    )
    in_memory: bool = setting(
        False, "embedded without persistence (':memory:'; a private temporary folder for Edge)"
    )
    # server mode
    url: str | None = setting(None, "server mode: the server's URL, instead of VPA_VECTOR_DB_HOST/PORT")
    https: bool | None = setting(None, "server mode: use TLS when the URL is built from host and port")
    grpc_port: int | None = setting(None, "server mode: the gRPC port (6334 on a default server)")
    prefer_grpc: bool | None = setting(None, "server mode: talk gRPC (default: true when grpc_port is set)")
    prefix: str | None = setting(None, "server mode: a path prefix of the REST API")
    timeout: float = setting(30.0, "server mode: request timeout in seconds")
    check_compatibility: bool = setting(True, "server mode: warn when client and server versions differ")
    exact: bool = setting(False, "server mode: exact (full-scan) search instead of HNSW")
    hnsw_ef: int | None = setting(None, "server mode: HNSW beam size at query time")
    min_recall: float = setting(0.9, "server mode: the recall@k declared for HNSW search", validator=_recall)
    read_consistency: str | int | None = setting(
        None, "server mode: 'all', 'majority', 'quorum' or a number of replicas", converter=_read_consistency
    )
    write_ordering: str | None = setting(
        None, "server mode: 'weak', 'medium' or 'strong'", converter=_write_ordering
    )
    # new collections (server mode; on_disk in both modes)
    shard_number: int | None = setting(None, "new collections: number of shards")
    replication_factor: int | None = setting(None, "new collections: copies of each shard")
    write_consistency_factor: int | None = setting(
        None, "new collections: replicas that must confirm a write"
    )
    on_disk: bool | None = setting(None, "new collections: keep vectors on disk (memmap)")
    on_disk_payload: bool | None = setting(None, "new collections: keep payloads on disk")
    hnsw_m: int | None = setting(None, "new collections: HNSW graph degree")
    hnsw_ef_construct: int | None = setting(None, "new collections: HNSW build beam size")
    # both modes
    max_batch_size: int = setting(256, "points per upsert request", validator=_at_least_one)

    @property
    def mode(self) -> Mode:
        """``memory`` with ``in_memory`` (it wins), ``server`` with a ``url``, else ``local`` (or
        ``edge`` with ``engine = "edge"``)."""
        if self.in_memory:
            return "memory"
        if self.url is not None:
            return "server"
        return "edge" if self.engine == "edge" else "local"

    @property
    def embedded(self) -> bool:
        return self.mode != "server"

    def resolve(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
    ) -> QdrantSettings:
        """These settings completed by the main config: without a ``url``, VPA_VECTOR_DB_HOST (and
        PORT) select server mode; without either, the embedded engine keeps its data in ``path``
        or ``VPA_DATA_DIR/qdrant`` (``VPA_DATA_DIR/qdrant-edge`` for ``engine = "edge"``)."""
        if self.mode not in ("edge", "local"):
            return self
        if host:
            return attrs.evolve(self, url=build_url(host, port, https=self.https))
        if self.path is None and data_dir is not None:
            return attrs.evolve(self, path=os.fspath(Path(data_dir) / FOLDERS[self.engine]))
        return self


def build_url(host: str, port: int | None, *, https: bool | None = None) -> str:
    """A server URL from VPA_VECTOR_DB_HOST and VPA_VECTOR_DB_PORT (default port 6333)."""
    host = host.strip().rstrip("/")
    if host.startswith(("http://", "https://")):
        scheme, rest = host.split("://", 1)
        if port is not None and ":" not in rest.split("/", 1)[0]:
            authority, _, tail = rest.partition("/")
            rest = f"{authority}:{port}" + (f"/{tail}" if tail else "")
        return f"{scheme}://{rest}"
    scheme = "https" if https else "http"
    return f"{scheme}://{host}:{port or 6333}"

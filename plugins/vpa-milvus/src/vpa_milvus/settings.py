"""The `milvus` store's options (the ``[providers.milvus]`` table), and where a store connects.

pymilvus talks to a server over one gRPC channel (one HTTP/2 connection, calls multiplexed on
it): it has no connection pool to size, so ``VPA_CONNECTION_POOL_SIZE`` does not apply here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
from vpa.settings import setting

DEFAULT_PORT = 19530


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@attrs.frozen
class MilvusSettings:
    """``[providers.milvus]``; every option is optional."""

    uri: str | None = setting(
        None,
        "a Milvus Lite file (a path ending in .db) or http(s)://host:port of a server; "
        "overrides VPA_VECTOR_DB_HOST/PORT and VPA_DATA_DIR",
    )
    db_name: str = setting("", "the Milvus database (server mode); empty: the server's default")
    timeout: float = setting(30.0, "seconds per call, retries included", validator=_positive)
    shards_num: int | None = setting(
        None, "shards of a new collection (server mode); default: the server's", validator=_positive
    )
    replica_number: int | None = setting(
        None, "in-memory replicas when a collection is loaded (server mode)", validator=_positive
    )
    lexical: bool | None = setting(
        None,
        "lexical (BM25) and hybrid search: default on in Milvus Lite; on a server, declared once a "
        "call has found it to be 2.5 or later; true declares it up front (a server older than 2.5 "
        "is then an error); false: not declared, new collections get no BM25 field",
        validator=attrs.validators.optional(attrs.validators.instance_of(bool)),
    )


def store_uri(settings: MilvusSettings, config: Any) -> str:
    """The ``uri`` option, else the server at VPA_VECTOR_DB_HOST/PORT, else the Milvus Lite file
    ``<VPA_DATA_DIR>/milvus/vpa.db``."""
    if settings.uri:
        return settings.uri
    if config.host:
        return server_uri(config.host, config.port)
    return str(Path(config.data_dir) / "milvus" / "vpa.db")


def server_uri(host: str, port: int | None) -> str:
    """``http://host:port`` from VPA_VECTOR_DB_HOST/PORT (a scheme or port in host is kept)."""
    uri = host if "://" in host else f"http://{host}"
    parts = urlsplit(uri)
    if parts.port is None:
        netloc = f"{parts.netloc}:{port or DEFAULT_PORT}"
        uri = parts._replace(netloc=netloc).geturl()
    return uri


def is_lite(uri: str) -> bool:
    """A ``.db`` path is a Milvus Lite file; anything else names a server."""
    return uri.endswith(".db")


def redact_uri(uri: str) -> str:
    """The URI without credentials, for messages and logs."""
    if is_lite(uri):
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"

"""``[providers.weaviate]``: where the server is and how VPA lays its collections out there.

The address comes from ``url`` (``http(s)://host[:port]``) or from ``host``/``port``/``secure``,
which `WeaviateStore.from_config` fills from ``VPA_VECTOR_DB_HOST``/``PORT`` when the table does not
set them; gRPC from ``grpc_url`` or ``grpc_host``/``grpc_port``/``grpc_secure`` (by default the REST
host on 50051, or ``grpc-<host>:443`` for a Weaviate Cloud URL). `endpoints` resolves both. The API
key is not an option here: it is ``VPA_VECTOR_DB_API_KEY``, passed to the store beside the settings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import attrs
from vpa.errors import ConfigError
from vpa.settings import setting

from vpa_weaviate.naming import DEFAULT_PREFIX, PREFIX_RE

#: Weaviate's default QUERY_MAXIMUM_RESULTS: the most objects one search (or delete) may touch.
QUERY_MAXIMUM_RESULTS = 10_000
CONSISTENCY_LEVELS = ("one", "quorum", "all")
HTTP = ("http", "https")


def _must_be(rule: str, ok: Callable[[Any], Any]) -> Any:
    """A validator whose error names the option and the rule (unset, None, is always fine)."""

    def check(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not ok(value):
            raise ConfigError(f"[providers.weaviate].{attribute.name}: must be {rule}, not {value!r}")

    return check


_positive = _must_be("a positive integer", lambda v: v >= 1)


def _split(url: str, option: str, schemes: tuple[str, ...]) -> tuple[str, int | None, bool]:
    """Host, port and TLS of ``url``; ``schemes`` are the ones allowed (any when empty)."""
    parts = urlsplit(url if "://" in url or not schemes else f"{schemes[0]}://{url}")
    if (schemes and parts.scheme not in schemes) or not parts.hostname:
        shape = f"{'|'.join(schemes) or 'scheme'}://host[:port]"
        raise ConfigError(f"[providers.weaviate].{option}: {url!r} must look like {shape}")
    return parts.hostname, parts.port, parts.scheme in ("https", "grpcs")


def _url(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _split(value, attribute.name, HTTP if attribute.name == "url" else ())


@attrs.frozen
class Endpoints:
    """Where the client connects: REST and gRPC."""

    http_host: str
    http_port: int
    http_secure: bool
    grpc_host: str
    grpc_port: int
    grpc_secure: bool


def _default_grpc(host: str, secure: bool) -> tuple[str, int]:
    """Weaviate Cloud serves gRPC on ``grpc-<host>:443``; a self-hosted server on port 50051."""
    if secure and host.endswith(".weaviate.network"):  # as weaviate.connect_to_weaviate_cloud does
        ident, domain = host.split(".", 1)
        return f"{ident}.grpc.{domain}", 443
    if secure and host.endswith((".weaviate.cloud", ".semi.technology")):
        return f"grpc-{host}", 443
    return host, 50051


@attrs.frozen
class WeaviateSettings:
    """``[providers.weaviate]``; every option is optional, an unknown one is an error."""

    url: str | None = setting(
        None,
        "the server's REST address, http(s)://host[:port] (instead of host, port and secure)",
        validator=_url,
    )
    host: str | None = setting(None, "the REST host (default: VPA_VECTOR_DB_HOST, else localhost)")
    port: int | None = setting(None, "the REST port (default: VPA_VECTOR_DB_PORT, else 8080)")
    secure: bool = setting(False, "TLS when the address comes from host and port")
    grpc_url: str | None = setting(
        None, "grpc(s)://host[:port], instead of grpc_host, grpc_port and grpc_secure", validator=_url
    )
    grpc_host: str | None = setting(
        None, "the gRPC host (default: the REST host; grpc-<host> for Weaviate Cloud)"
    )
    grpc_port: int | None = setting(None, "the gRPC port (default 50051; 443 for Weaviate Cloud)")
    grpc_secure: bool | None = setting(None, "TLS for gRPC (default: as for REST)")
    tenant: str | None = setting(
        None,
        "multi-tenant collections; this store reads and writes only this tenant",
        validator=_must_be("1-64 letters, digits, '-' or '_'", re.compile(r"[A-Za-z0-9_-]{1,64}").fullmatch),
    )
    class_prefix: str = setting(
        DEFAULT_PREFIX,
        "Weaviate class names are <prefix><encoded collection name>",
        validator=_must_be("an uppercase letter, then letters or digits (at most 16)", PREFIX_RE.fullmatch),
    )
    index: str = setting(
        "hnsw",
        "vector index of new collections: hnsw, or flat (exact; small collections)",
        validator=_must_be("hnsw or flat", ("hnsw", "flat").__contains__),
    )
    timeout: float = setting(60.0, "seconds per query or write request")
    init_timeout: float = setting(10.0, "seconds to connect")
    batch_bytes: int | None = setting(
        None, "cap on one write request in bytes (default: 80% of the server's gRPC message limit)"
    )
    max_results: int = setting(
        QUERY_MAXIMUM_RESULTS, "the server's QUERY_MAXIMUM_RESULTS, if an operator lowered it"
    )
    replication_factor: int | None = setting(
        None, "copies of each shard, for new collections", validator=_positive
    )
    shards: int | None = setting(None, "shards of new collections (not with tenant)", validator=_positive)
    consistency_level: str | None = setting(
        None,
        "one, quorum or all, for reads and writes (server default: quorum)",
        validator=_must_be("one, quorum or all", CONSISTENCY_LEVELS.__contains__),
    )

    @property
    def endpoints(self) -> Endpoints:
        """The REST and gRPC addresses these settings name (``localhost:8080`` by default)."""
        if self.url is not None:
            host, port, secure = _split(self.url, "url", HTTP)
            http = (host, port or (443 if secure else 8080), secure)
        else:
            http = (self.host or "localhost", self.port or 8080, self.secure)
        if self.grpc_url is not None:
            host, port, scheme_secure = _split(self.grpc_url, "grpc_url", ())
            secure = scheme_secure if self.grpc_secure is None else self.grpc_secure
            grpc = (host, port or (443 if secure else 50051), secure)
        else:
            default_host, default_port = _default_grpc(http[0], http[2])
            secure = http[2] if self.grpc_secure is None else self.grpc_secure
            grpc = (self.grpc_host or default_host, self.grpc_port or default_port, secure)
        return Endpoints(*http, *grpc)

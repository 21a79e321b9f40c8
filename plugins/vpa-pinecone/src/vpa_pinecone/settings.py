"""``[providers.pinecone]``: the pinecone store's options (no vendor import here)."""

from __future__ import annotations

import re
from typing import Any

import attrs
from vpa.errors import ConfigError
from vpa.settings import setting

#: Pinecone's largest dense index dimension.
MAX_INDEX_DIMENSION = 20_000
INDEX_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,43}[a-z0-9])?")


def _index_name(_: Any, attribute: attrs.Attribute, value: str) -> None:
    if not INDEX_NAME_RE.fullmatch(value):
        raise ConfigError(
            f"[providers.pinecone].{attribute.name} {value!r} is not a Pinecone index name: 1-45 "
            "lowercase letters, digits or '-', starting and ending with a letter or digit"
        )


def _dimension(_: Any, attribute: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INDEX_DIMENSION:
        raise ConfigError(
            f"[providers.pinecone].{attribute.name} must be an integer in 1..{MAX_INDEX_DIMENSION}"
        )


def _prefix(_: Any, attribute: attrs.Attribute, value: str) -> None:
    if not isinstance(value, str) or not value.isascii() or "\x00" in value:
        raise ConfigError(f"[providers.pinecone].{attribute.name} must be ASCII without NUL")


def _seconds(_: Any, attribute: attrs.Attribute, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"[providers.pinecone].{attribute.name} must be a positive number of seconds")


def _retries(_: Any, attribute: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"[providers.pinecone].{attribute.name} must be a non-negative integer")


@attrs.frozen
class PineconeSettings:
    """``[providers.pinecone]``. The API key is ``VPA_VECTOR_DB_API_KEY``, never an option here."""

    index: str = setting("vpa", "the index that holds every collection", validator=_index_name)
    dimension: int = setting(
        1536,
        "dimension of the index when the plugin creates it (collections up to it share it)",
        validator=_dimension,
    )
    cloud: str = setting("aws", "cloud of a new serverless index")
    region: str = setting("us-east-1", "region of a new serverless index")
    host: str | None = setting(
        None, "control-plane URL (default: VPA_VECTOR_DB_HOST/PORT, else api.pinecone.io)"
    )
    namespace_prefix: str = setting("", "prefix of every namespace this store uses", validator=_prefix)
    timeout: float = setting(30.0, "seconds per HTTP attempt", validator=_seconds)
    max_retries: int = setting(3, "retries of control-plane requests on 408/429/5xx", validator=_retries)
    settle_timeout: float = setting(
        60.0, "the longest settle() and collection create/drop wait for visibility", validator=_seconds
    )
    create_index: bool = setting(True, "create the index on the first create_collection if missing")
    deletion_protection: bool = setting(False, "create the index with deletion protection")


def control_plane_url(host: str | None, port: int | None) -> str | None:
    """``VPA_VECTOR_DB_HOST``/``PORT`` as a control-plane URL (https unless a scheme is given)."""
    if not host:
        return None
    url = host if "://" in host else f"https://{host}"
    if port and not re.search(r":\d+$", url.split("://", 1)[1].split("/", 1)[0]):
        scheme, rest = url.split("://", 1)
        netloc, _, path = rest.partition("/")
        url = f"{scheme}://{netloc}:{port}" + (f"/{path}" if path else "")
    return url

"""Configuration: defaults < a TOML file < ``VPA_*`` environment variables < explicit overrides.

The TOML file is ``$VPA_CONFIG_FILE`` or ``./vpa.toml`` when present. Its top-level keys are the
field names below; ``[providers.<name>]`` tables hold a plugin's own options (read by the plugin
with `VPAConfig.provider_options`). cattrs structures the merged mapping into `VPAConfig`, so a
wrong type fails with a message naming the variable.
"""

from __future__ import annotations

import difflib
import functools
import os
import tomllib
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs

from vpa.errors import ConfigError

ENVIRONMENTS = ("development", "testing", "staging", "production")

#: Environment variable → field. Every variable VPA reads is listed here.
ENV_VARS: dict[str, str] = {
    "VPA_ENVIRONMENT": "environment",
    "VPA_VECTOR_DB_PROVIDER": "provider",
    "VPA_VECTOR_DB_HOST": "host",
    "VPA_VECTOR_DB_PORT": "port",
    "VPA_VECTOR_DB_API_KEY": "api_key",
    "VPA_COLLECTION": "collection",
    "VPA_DATA_DIR": "data_dir",
    "VPA_EMBEDDER": "embedder",
    "VPA_EMBEDDING_MODEL": "embedding_model",
    "VPA_EMBEDDING_BATCH_SIZE": "embedding_batch_size",
    "VPA_EMBEDDING_BACKEND": "embedding_backend",
    "VPA_QUERY_BATCH_SIZE": "query_batch_size",
    "VPA_QUERY_BATCH_WINDOW_MS": "query_batch_window_ms",
    "VPA_CHUNKER": "chunker",
    "VPA_CHUNK_SIZE": "chunk_size",
    "VPA_CHUNK_OVERLAP": "chunk_overlap",
    "VPA_CACHE": "cache",
    "VPA_CACHE_SIZE": "cache_size",
    "VPA_CACHE_TTL_SECONDS": "cache_ttl_seconds",
    "VPA_AUTH": "authenticator",
    "VPA_AUTH_ENABLED": "auth_enabled",
    "VPA_ENCRYPT_AT_REST": "encrypt_at_rest",
    "VPA_ENCRYPTION_KEY": "encryption_key",
    "VPA_MAX_CONCURRENT_REQUESTS": "max_concurrent_requests",
    "VPA_MAX_BATCH_SIZE": "max_batch_size",
    "VPA_MAX_DOCUMENT_BYTES": "max_document_bytes",
    "VPA_MAX_EXPORT_RECORDS": "max_export_records",
    "VPA_RATE_LIMIT_PER_MINUTE": "rate_limit_per_minute",
    "VPA_LOG_LEVEL": "log_level",
    "VPA_LOG_FORMAT": "log_format",
    "VPA_METRICS_ENABLED": "metrics_enabled",
    "VPA_SEARCH_HISTORY_SIZE": "search_history_size",
    "VPA_CACHE_SIZE_MB": "cache_size_mb",
    "VPA_CONNECTION_POOL_SIZE": "connection_pool_size",
    "VPA_ENCRYPT_IN_TRANSIT": "encrypt_in_transit",
    "VPA_ENABLE_TRACING": "enable_tracing",
    "VPA_DEBUG": "debug",
    "VPA_REDIS_URL": "redis_url",
}

#: The original VPA reference's names for settings VPA spells otherwise: same meaning.
ENV_ALIASES: dict[str, str] = {
    "VPA_ENABLE_AUTH": "VPA_AUTH_ENABLED",
    "VPA_REQUIRE_API_KEY": "VPA_AUTH_ENABLED",
    "VPA_ENABLE_METRICS": "VPA_METRICS_ENABLED",
}
#: Variables read elsewhere (``vpa serve`` options, the test suites), never reported as unknown;
#: so are ``VPA_<PLUGIN>_*`` variables of installed plugins (``VPA_QDRANT_URL``, ...).
OTHER_VARIABLES = frozenset({
    "VPA_CONFIG_FILE", "VPA_TESTING", "VPA_SERVER_HOST", "VPA_SERVER_PORT", "VPA_AUDIT_LOG",
    "VPA_MAX_BODY_BYTES", "VPA_PUBLIC_METRICS", "VPA_RATE_LIMIT_BURST", "VPA_TLS_CERT_FILE",
    "VPA_TLS_KEY_FILE", "VPA_HEADER_TIMEOUT", "VPA_BODY_TIMEOUT", "VPA_MAX_CONNECTIONS", "VPA_HTTP",
    "VPA_ALLOW_ANONYMOUS", "VPA_FUZZ_EXAMPLES",
})
#: Provider names of the original reference → the plugin that serves them.
PROVIDER_ALIASES = {"chromadb": "chroma"}

SECRET_FIELDS = frozenset({"api_key", "encryption_key", "redis_url"})
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@attrs.frozen
class VPAConfig:
    """Every setting of VPA. Secrets are excluded from ``repr`` so they never reach a log."""

    environment: str = "development"
    provider: str = "memory"
    host: str | None = None
    port: int | None = None
    api_key: str | None = attrs.field(default=None, repr=False)
    collection: str = "vpa"
    data_dir: Path = Path(".vpa")
    embedder: str = "sentence-transformers"
    embedding_model: str | None = None
    embedding_batch_size: int = 64
    #: What runs the sentence-transformers model: ``torch``, ``onnx`` (same fingerprint, proven
    #: at export) or ``onnx-int8`` (its own fingerprint); see `vpa.embedders.onnx`.
    embedding_backend: str = "torch"
    #: Queries of concurrent searches encoded in one embedder call, at most this many (1: each
    #: alone); a lone search never waits (`vpa.embedders.batching`).
    query_batch_size: int = 32
    #: How long a short batch of queued queries may wait for more, from its oldest query's arrival.
    query_batch_window_ms: float = 2.0
    chunker: str = "recursive"
    chunk_size: int = 1000
    chunk_overlap: int = 200
    cache: str = "lru"
    cache_size: int = 1024
    cache_ttl_seconds: float = 300.0
    authenticator: str = "api-keys"
    auth_enabled: bool = False
    encrypt_at_rest: bool = False
    encryption_key: str | None = attrs.field(default=None, repr=False)
    max_concurrent_requests: int = 64
    max_batch_size: int = 1000
    max_document_bytes: int = 10_000_000
    #: The most records one REST export (GET /api/v1/admin/export) may hold; the CLI has no bound.
    max_export_records: int = 1_000_000
    rate_limit_per_minute: int = 600
    log_level: str = "INFO"
    log_format: str = "auto"
    metrics_enabled: bool = True
    search_history_size: int = 100
    #: Bound the cache by memory (MiB) instead of by entries; 0 = by entries (``cache_size``).
    cache_size_mb: float = 0.0
    #: Connections each plugin keeps to its engine (HTTP pool, gRPC channels); 0 = the client's default.
    connection_pool_size: int = 0
    #: Refuse to serve plain HTTP on anything but loopback.
    encrypt_in_transit: bool = False
    enable_tracing: bool = False
    debug: bool = False
    #: Redis for the state replicas share: API keys and rate-limit buckets (`vpa.auth.redis_store`;
    #: extra ``redis``). Unset: a key file and in-memory buckets, right for one process only.
    redis_url: str | None = attrs.field(default=None, repr=False)
    providers: dict[str, dict[str, Any]] = attrs.field(factory=dict, repr=False)
    #: What loading the configuration noticed: unknown ``VPA_*`` variables (with the closest
    #: known name), aliases used. Warnings outside production, errors in it (`validate_config`).
    notices: tuple[str, ...] = attrs.field(default=(), repr=False, eq=False)

    def provider_options(self, name: str, known: Iterable[str] | None = None) -> dict[str, Any]:
        """A plugin's own ``[providers.<name>]`` table from the TOML file (empty if none).

        With ``known``, an option outside it is a `ConfigError` naming it and listing the known
        ones, so a typo in the file never silently falls back to a default.
        """
        options = dict(self.providers.get(name, {}))
        if known is not None:
            allowed = set(known)
            unknown = sorted(set(options) - allowed)
            if unknown:
                raise ConfigError(
                    f"unknown option(s) {', '.join(unknown)} in [providers.{name}]; "
                    f"known: {', '.join(sorted(allowed))}"
                )
        return options

    def replace(self, **changes: Any) -> VPAConfig:
        return attrs.evolve(self, **changes)

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict, with secrets shown only as set or not set."""
        data = _converter.unstructure(self)
        for name in SECRET_FIELDS:
            data[name] = "<set>" if data.get(name) else None
        return data


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean (use true or false)")


_converter = cattrs.Converter(forbid_extra_keys=True)
_converter.register_structure_hook(bool, _structure_bool)
_converter.register_structure_hook(Path, lambda v, _: Path(v).expanduser())
_converter.register_unstructure_hook(Path, str)


def _from_environment(environ: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The settings the environment gives, and the notices about it (unknown names, aliases)."""
    values: dict[str, Any] = {}
    notices: list[str] = []
    for alias, var in ENV_ALIASES.items():
        if alias in environ:
            if var in environ and _truthy(environ[var]) != _truthy(environ[alias]):
                raise ConfigError(f"{alias}={environ[alias]!r} contradicts {var}={environ[var]!r}; set one")
            values[ENV_VARS[var]] = environ[alias] if var not in environ else environ[var]
    values.update({field: environ[var] for var, field in ENV_VARS.items() if var in environ})
    if "VPA_TESTING" in environ and "VPA_ENVIRONMENT" not in environ and _truthy(environ["VPA_TESTING"]):
        values["environment"] = "testing"
    if "debug" in values and "VPA_LOG_LEVEL" not in environ and _truthy(values["debug"]):
        values["log_level"] = "DEBUG"
    known = [*ENV_VARS, *ENV_ALIASES, *OTHER_VARIABLES]
    plugin_prefixes = _plugin_prefixes()
    for name in sorted(environ):
        if name.startswith("VPA_") and name not in known and not name.startswith(plugin_prefixes):
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            notices.append(f"unknown variable {name}{hint}")
    return values, notices


def _uninstalled_components(config: VPAConfig) -> list[str]:
    from vpa.plugins import get_registry

    registry = get_registry()
    out = []
    for kind, field in (("store", "provider"), ("embedder", "embedder"), ("chunker", "chunker"),
                        ("cache", "cache"), ("auth", "authenticator")):
        name = getattr(config, field)
        if name not in registry.names(kind):
            out.append(f"{_var(field)}: unknown {kind} {name!r}; installed: {', '.join(registry.names(kind))}")
    return out


def _not_honoured(config: VPAConfig) -> list[str]:
    """Settings that are set but that this installation cannot honour: said, never ignored."""
    out = []
    if config.enable_tracing:
        try:
            import opentelemetry.sdk  # noqa: F401
        except ImportError:
            out.append("VPA_ENABLE_TRACING is set but OpenTelemetry is not installed: pip install 'vpa-core[tracing]'")
    return out


@functools.cache
def _plugin_prefixes() -> tuple[str, ...]:
    import importlib.metadata as md

    return tuple(f"VPA_{ep.name.upper().replace('-', '_')}_" for ep in md.entry_points(group="vpa"))


def _truthy(value: Any) -> bool | None:
    text = str(value).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def _from_toml(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc


def load_config(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> VPAConfig:
    """Merge defaults, the TOML file, the environment and ``overrides`` into a `VPAConfig`."""
    environ = os.environ if environ is None else environ
    file = config_file or environ.get("VPA_CONFIG_FILE") or ("vpa.toml" if Path("vpa.toml").is_file() else None)
    merged: dict[str, Any] = {}
    merged.update(_from_toml(Path(file) if file else None))
    from_env, notices = _from_environment(environ)
    merged.update(from_env)
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    merged.pop("notices", None)
    provider = merged.get("provider")
    if isinstance(provider, str) and provider in PROVIDER_ALIASES:
        merged["provider"] = PROVIDER_ALIASES[provider]
    try:
        config = _converter.structure(merged, VPAConfig)
    except Exception as exc:
        raise ConfigError(_describe_config_error(exc)) from exc
    notices.extend(_not_honoured(config))
    config = attrs.evolve(config, notices=tuple(notices))
    if notices and config.environment != "production":
        for notice in notices:
            warnings.warn(f"VPA configuration: {notice}", ConfigWarning, stacklevel=2)
    return config


class ConfigWarning(UserWarning):
    """A setting VPA does not know or will not honour, outside production (where it is an error)."""


def not_applicable(config: VPAConfig, field: str, why: str) -> None:
    """Say (a `ConfigWarning` naming the variable) that a setting the user set means nothing for
    this component — a plugin calls it rather than ignoring the setting in silence."""
    if getattr(config, field) not in (None, 0, 0.0, False, ""):
        warnings.warn(f"VPA configuration: {_var(field)} is set but {why}", ConfigWarning, stacklevel=3)


def _describe_config_error(exc: Exception) -> str:
    messages = cattrs.transform_error(exc, path="config") if isinstance(exc, cattrs.BaseValidationError) else [str(exc)]
    fields = {v: k for k, v in ENV_VARS.items()}
    out = []
    for message in messages:
        for field, var in fields.items():
            message = message.replace(f"config.{field}", f"{var} (config.{field})")
        out.append(message)
    return "invalid configuration: " + "; ".join(out)


def get_config(environment: str | None = None, **overrides: Any) -> VPAConfig:
    """The configuration for ``environment`` (default: ``VPA_ENVIRONMENT`` or development)."""
    if environment is not None:
        overrides["environment"] = environment
    return load_config(overrides)


def validate_config(config: VPAConfig) -> list[str]:
    """Every problem with ``config``, as readable sentences; empty when it is fine.

    Production refuses insecure settings: auth off, encryption without a key, debug logging.
    """
    errors: list[str] = []
    if config.environment == "production":
        errors.extend(config.notices)
    if config.environment not in ENVIRONMENTS:
        errors.append(f"VPA_ENVIRONMENT must be one of {', '.join(ENVIRONMENTS)}, not {config.environment!r}")
    if config.port is not None and not 0 < config.port < 65536:
        errors.append(f"VPA_VECTOR_DB_PORT must be between 1 and 65535, not {config.port}")
    if config.chunk_size < 1:
        errors.append("VPA_CHUNK_SIZE must be positive")
    if not 0 <= config.chunk_overlap < config.chunk_size:
        errors.append("VPA_CHUNK_OVERLAP must be at least 0 and smaller than VPA_CHUNK_SIZE")
    for name in ("cache_size", "max_concurrent_requests", "max_batch_size", "embedding_batch_size",
                 "max_document_bytes", "max_export_records", "rate_limit_per_minute", "search_history_size"):
        if getattr(config, name) < 1:
            errors.append(f"{_var(name)} must be positive")
    from vpa.embedders.batching import query_batching_problems

    errors.extend(query_batching_problems(config.query_batch_size, config.query_batch_window_ms))
    from vpa.embedders.onnx import backend_problem

    if problem := backend_problem(config.embedding_backend, config.embedder):
        errors.append(problem)
    if config.cache_ttl_seconds <= 0:
        errors.append("VPA_CACHE_TTL_SECONDS must be positive")
    if config.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        errors.append(f"VPA_LOG_LEVEL {config.log_level!r} is not a log level")
    if config.log_format not in ("auto", "json", "console"):
        errors.append("VPA_LOG_FORMAT must be auto, json or console")
    errors.extend(_uninstalled_components(config))
    if config.cache_size_mb < 0:
        errors.append("VPA_CACHE_SIZE_MB must not be negative")
    if config.connection_pool_size < 0:
        errors.append("VPA_CONNECTION_POOL_SIZE must not be negative")
    from vpa.auth.redis_store import url_problems

    errors.extend(url_problems(config.redis_url))
    if config.encrypt_at_rest and not config.encryption_key:
        errors.append("VPA_ENCRYPT_AT_REST is on but VPA_ENCRYPTION_KEY is not set")
    if config.environment == "production":
        if not config.auth_enabled:
            errors.append("production requires VPA_AUTH_ENABLED=true")
        if config.log_level.upper() == "DEBUG" or config.debug:
            errors.append("production must not run with VPA_DEBUG or log at DEBUG")
        if config.embedder == "hashing":
            errors.append("production must not use the hashing embedder (it is for tests and demos)")
    return errors


def _var(field: str) -> str:
    return next((var for var, f in ENV_VARS.items() if f == field), field)

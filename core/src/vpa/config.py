"""Configuration: defaults < a TOML file < ``VPA_*`` environment variables < explicit overrides.

The TOML file is ``$VPA_CONFIG_FILE`` or ``./vpa.toml`` when present. Its top-level keys are the
field names below; ``[providers.<name>]`` tables hold a plugin's own options (read by the plugin
with `VPAConfig.provider_options`). cattrs structures the merged mapping into `VPAConfig`, so a
wrong type fails with a message naming the variable.
"""

from __future__ import annotations

import os
import tomllib
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
    "VPA_RATE_LIMIT_PER_MINUTE": "rate_limit_per_minute",
    "VPA_LOG_LEVEL": "log_level",
    "VPA_LOG_FORMAT": "log_format",
    "VPA_METRICS_ENABLED": "metrics_enabled",
    "VPA_SEARCH_HISTORY_SIZE": "search_history_size",
}

SECRET_FIELDS = frozenset({"api_key", "encryption_key"})
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
    rate_limit_per_minute: int = 600
    log_level: str = "INFO"
    log_format: str = "auto"
    metrics_enabled: bool = True
    search_history_size: int = 100
    providers: dict[str, dict[str, Any]] = attrs.field(factory=dict, repr=False)

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


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    return {field: environ[var] for var, field in ENV_VARS.items() if var in environ}


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
    merged.update(_from_environment(environ))
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return _converter.structure(merged, VPAConfig)
    except Exception as exc:
        raise ConfigError(_describe_config_error(exc)) from exc


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
    if config.environment not in ENVIRONMENTS:
        errors.append(f"VPA_ENVIRONMENT must be one of {', '.join(ENVIRONMENTS)}, not {config.environment!r}")
    if config.port is not None and not 0 < config.port < 65536:
        errors.append(f"VPA_VECTOR_DB_PORT must be between 1 and 65535, not {config.port}")
    if config.chunk_size < 1:
        errors.append("VPA_CHUNK_SIZE must be positive")
    if not 0 <= config.chunk_overlap < config.chunk_size:
        errors.append("VPA_CHUNK_OVERLAP must be at least 0 and smaller than VPA_CHUNK_SIZE")
    for name in ("cache_size", "max_concurrent_requests", "max_batch_size", "embedding_batch_size",
                 "max_document_bytes", "rate_limit_per_minute", "search_history_size"):
        if getattr(config, name) < 1:
            errors.append(f"{_var(name)} must be positive")
    if config.cache_ttl_seconds <= 0:
        errors.append("VPA_CACHE_TTL_SECONDS must be positive")
    if config.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        errors.append(f"VPA_LOG_LEVEL {config.log_level!r} is not a log level")
    if config.log_format not in ("auto", "json", "console"):
        errors.append("VPA_LOG_FORMAT must be auto, json or console")
    if config.encrypt_at_rest and not config.encryption_key:
        errors.append("VPA_ENCRYPT_AT_REST is on but VPA_ENCRYPTION_KEY is not set")
    if config.environment == "production":
        if not config.auth_enabled:
            errors.append("production requires VPA_AUTH_ENABLED=true")
        if config.log_level.upper() == "DEBUG":
            errors.append("production must not log at DEBUG")
        if config.embedder == "hashing":
            errors.append("production must not use the hashing embedder (it is for tests and demos)")
    return errors


def _var(field: str) -> str:
    return next((var for var, f in ENV_VARS.items() if f == field), field)

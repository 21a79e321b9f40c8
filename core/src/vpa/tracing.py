"""Tracing with OpenTelemetry when ``VPA_ENABLE_TRACING=true`` (the ``tracing`` extra).

The exporter is chosen by the standard variables: ``OTEL_TRACES_EXPORTER`` (``otlp``, the default,
over gRPC to ``OTEL_EXPORTER_OTLP_ENDPOINT``; ``console``; or ``none``) and the service name by
``OTEL_SERVICE_NAME`` (default ``vpa``). Spans: one per REST request, and under it one per ingest
and search, with children for chunking, embedding, each store call and the cache. Their attributes
are counts and names only — provider, collection, record count, top_k — never text, queries or keys.

Off (the default), `span` returns a shared no-op context manager: nothing is imported, nothing is
recorded.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

_NOOP = contextlib.nullcontext()
_tracer: Any = None
_provider: Any = None


def enabled() -> bool:
    return _tracer is not None


def configure(config: Any, *, exporter: Any = None) -> bool:
    """Start tracing if ``config.enable_tracing`` (or an ``exporter`` is given, as tests do);
    returns whether spans are now recorded. Raises `DependencyMissing` without the SDK."""
    global _tracer, _provider
    if exporter is None and not getattr(config, "enable_tracing", False):
        return enabled()
    if _tracer is not None and exporter is None:
        return True
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as exc:
        from vpa.errors import DependencyMissing

        raise DependencyMissing("VPA_ENABLE_TRACING needs OpenTelemetry: pip install 'vpa-core[tracing]'") from exc
    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "vpa")}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        chosen = _exporter_from_environment()
        if chosen is not None:
            provider.add_span_processor(BatchSpanProcessor(chosen))
    if _provider is not None:
        _provider.shutdown()
    _provider = provider
    _tracer = provider.get_tracer("vpa")
    return True


def _exporter_from_environment() -> Any:
    kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if kind == "none":
        return None
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind != "otlp":
        from vpa.errors import ConfigError

        raise ConfigError(f"OTEL_TRACES_EXPORTER={kind!r} is not supported by VPA: use otlp, console or none")
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        from vpa.errors import DependencyMissing

        raise DependencyMissing("the OTLP exporter is missing: pip install 'vpa-core[tracing]'") from exc
    return OTLPSpanExporter()


def shutdown() -> None:
    """Flush and stop (tests, and the end of `vpa serve`)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def span(name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A child span of the current one (a no-op when tracing is off). Attributes that are None
    are left out."""
    if _tracer is None:
        return _NOOP
    return _tracer.start_as_current_span(name, attributes={k: v for k, v in attributes.items() if v is not None})


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits (for the audit log and error envelopes), if any."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def current_span_if_enabled() -> Any:
    """The current span while tracing is on, else None."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    return trace.get_current_span()

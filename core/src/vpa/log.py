"""structlog set-up: readable on a terminal, JSON in production or when asked.

A redaction processor drops secrets and document text from every event by default: keys named
like a secret or a text field are replaced with a marker, whatever code logged them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

REDACTED = "[redacted]"
SECRET_KEYS = frozenset({"api_key", "key", "secret", "token", "password", "authorization", "encryption_key"})
TEXT_KEYS = frozenset({"text", "content", "document", "query", "title", "body"})


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: never let a secret or a document's text reach the output."""
    for name in list(event):
        lowered = name.lower()
        if lowered in SECRET_KEYS or lowered.endswith(("_key", "_token", "_secret")) or lowered in TEXT_KEYS:
            event[name] = REDACTED
    return event


def configure_logging(level: str = "INFO", fmt: str = "auto", *, stream: Any = None) -> None:
    """Configure structlog once per process; ``fmt`` is json, console or auto (console on a TTY)."""
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)

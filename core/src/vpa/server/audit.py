"""The audit log: one JSON line per request — who (key id, role, tenant, client address), did what
(action, route, document ids, counts), with what outcome (status, error code) and how long it took.

It never contains a key, a document's text or a query: only ids, counts and hashes. It is a
structlog logger of its own, always JSON, with VPA's redaction processor as a second guard, so the
application log's format and level do not affect it. It goes to stderr or to a file (``--audit-log``).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, TextIO

import structlog

from vpa.log import redact


class AuditLog:
    def __init__(self, path: Path | None = None) -> None:
        self._file: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed in close()
        stream = self._file or sys.stderr
        self._logger = structlog.wrap_logger(
            structlog.WriteLogger(stream),
            processors=[
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                redact,
                structlog.processors.JSONRenderer(sort_keys=True),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),  # not the app's level
        )

    def record(self, event: str, **fields: Any) -> None:
        self._logger.info(event, log="audit", **{k: v for k, v in fields.items() if v is not None})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

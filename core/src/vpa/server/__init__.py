"""The REST service: `vpa serve` runs `create_app` under uvicorn (needs the ``server`` extra).

- `settings` — what the server itself needs beyond `VPAConfig` (bind address, TLS, limits);
- `schemas` — request and response models, hence the OpenAPI document;
- `security` — API keys through the auth hook, roles, tenants, rate limits, concurrency and body caps;
- `metrics` — Prometheus metrics; `audit` — the audit log;
- `app` — the application factory and the routes.
"""

from __future__ import annotations

from vpa.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]


def create_app(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Build the FastAPI application (imported lazily so `vpa` works without the extra)."""
    from vpa.server.app import create_app as factory

    return factory(*args, **kwargs)

"""Settings of the HTTP server itself; everything else comes from `VPAConfig`.

``vpa serve`` fills these from its options (each with a ``VPA_*`` variable). The request limits
that also matter outside the server — ``VPA_MAX_CONCURRENT_REQUESTS``, ``VPA_RATE_LIMIT_PER_MINUTE``,
``VPA_MAX_BATCH_SIZE``, ``VPA_MAX_DOCUMENT_BYTES`` — live in `VPAConfig`.
"""

from __future__ import annotations

from pathlib import Path

import attrs

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


@attrs.frozen
class ServerSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    #: TLS is on when both are given (PEM files).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    #: Largest request body accepted; None means 2 x VPA_MAX_DOCUMENT_BYTES + 1 MiB (JSON escaping).
    max_body_bytes: int | None = None
    #: Token-bucket capacity per key; None means VPA_RATE_LIMIT_PER_MINUTE (a minute's worth).
    rate_limit_burst: int | None = None
    #: Where the audit log (JSON lines) goes; None means stderr.
    audit_log: Path | None = None
    #: Serve /api/v1/metrics without a key (for a scraper on a private network).
    public_metrics: bool = False
    #: Seconds a client has to send a request's line and headers (from connecting, or from the
    #: request's first byte on a keep-alive connection); then 408 and the connection is closed.
    header_timeout: float = 10.0
    #: Seconds a client has to send a request body after its headers, plus one per 64 KiB sent.
    body_timeout: float = 30.0
    #: Open connections at most; None means what RLIMIT_NOFILE allows after a reserve.
    max_connections: int | None = None
    #: uvicorn's HTTP/1.1 implementation: auto (httptools when installed), httptools or h11.
    http: str = "auto"

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None and self.tls_key_file is not None

    def body_limit(self, max_document_bytes: int) -> int:
        return self.max_body_bytes if self.max_body_bytes is not None else 2 * max_document_bytes + 2**20

    def problems(self) -> list[str]:
        out = []
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            out.append("TLS needs both --tls-cert and --tls-key (VPA_TLS_CERT_FILE, VPA_TLS_KEY_FILE)")
        for path in (self.tls_cert_file, self.tls_key_file):
            if path is not None and not Path(path).is_file():
                out.append(f"TLS file {path} does not exist")
        if not 0 <= self.port < 65536:
            out.append(f"port must be between 0 and 65535, not {self.port}")
        if self.max_body_bytes is not None and self.max_body_bytes < 1024:
            out.append("--max-body-bytes must be at least 1024")
        if self.rate_limit_burst is not None and self.rate_limit_burst < 1:
            out.append("--rate-limit-burst must be positive")
        for name, value in (("--header-timeout", self.header_timeout), ("--body-timeout", self.body_timeout)):
            if not 0 < value <= 3600:
                out.append(f"{name} must be more than 0 and at most 3600 seconds, not {value:g}")
        if self.max_connections is not None and self.max_connections < 1:
            out.append("--max-connections must be positive")
        if self.http not in ("auto", "httptools", "h11"):
            out.append(f"--http must be auto, httptools or h11, not {self.http!r}")
        return out

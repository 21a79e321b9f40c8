"""/api/v1/live: the liveness probe's route. It answers without a key while the store is down,
writes no audit line, and is not held by the concurrency cap."""

from __future__ import annotations

from server_helpers import free_port, ok


def test_live_answers_without_key_store_or_audit(server_factory) -> None:
    server, _ = server_factory(
        "live", VPA_VECTOR_DB_PROVIDER="qdrant", VPA_VECTOR_DB_HOST="127.0.0.1",
        VPA_VECTOR_DB_PORT=str(free_port()),  # nothing listens: the store is down
    )
    with server.client() as anonymous:
        assert ok(anonymous.get("/live")) == {"status": "ok"}
        assert anonymous.get("/health").status_code == 503
        anonymous.get("/stats")  # an audited request, for contrast
    audit = server.audit_path.read_text() if server.audit_path.exists() else ""
    assert "/stats" in audit and "/live" not in audit

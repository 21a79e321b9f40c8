"""What the server tells whom: a key sent twice is refused, /health names no backend to the
public, /stats and /metrics are per tenant (the process's figures for an operator key only), an
operator key reaches no document, and tenant names never carry control characters."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from server_helpers import error, free_port, make_key, ok, vpa
from vpa.auth.api_keys import ApiKeyAuthenticator
from vpa.errors import ValidationError


def test_a_key_sent_twice_is_refused(server, keys):
    key, other = keys["acme_reader"], keys["acme_writer"]
    twice = [
        [("Authorization", f"Bearer {key}"), ("Authorization", "Bearer vpa_000000000000_junk")],
        [("Authorization", "Bearer vpa_000000000000_junk"), ("Authorization", f"Bearer {key}")],
        [("Authorization", f"Bearer {key}"), ("Authorization", f"Bearer {key}")],
        [("X-API-Key", key), ("X-API-Key", other)],
        [("X-API-Key", key), ("X-API-Key", key), ("Authorization", f"Bearer {key}")],
    ]
    with server.client() as client:
        for headers in twice:
            for response in (
                client.get("/stats", headers=headers),
                client.post("/search", json={"query": "x"}, headers=headers),
            ):
                err = error(response, 400, "duplicate_credentials")
                assert err["field"] in ("Authorization", "X-API-Key") and "once" in err["message"]
        ok(client.get("/stats", headers=[("Authorization", f"Bearer {key}"), ("X-API-Key", key)]))


def test_health_says_ok_and_nothing_more_but_to_an_operator(server, keys):
    with server.client() as anonymous:
        health = ok(anonymous.get("/health"))
    assert health["store"]["detail"] == health["embedder"]["detail"] == "ok"
    with server.client(keys["acme_admin"]) as admin:  # a tenant's admin runs no infrastructure
        assert ok(admin.get("/health"))["embedder"]["detail"] == "ok"
    with server.client(keys["operator"]) as operator:
        assert "hashing" in ok(operator.get("/health"))["embedder"]["detail"]
    with server.client("vpa_000000000000_junk") as junk:  # a bad key on a probe is no error
        assert ok(junk.get("/health"))["embedder"]["detail"] == "ok"


def test_a_down_store_is_503_without_its_address(server_factory):
    closed = free_port()
    down, made = server_factory(
        "down-health",
        keys={"operator": ("operator", None), "admin": ("admin", "t")},
        VPA_VECTOR_DB_PROVIDER="qdrant",
        VPA_VECTOR_DB_HOST="127.0.0.1",
        VPA_VECTOR_DB_PORT=str(closed),
    )
    for key in (None, made["admin"]["key"]):
        with down.client(key) as client:
            response = client.get("/health")
        err = error(response, 503, "store_unavailable")
        assert {d["field"]: d["message"] for d in err["details"]} == {
            "store": "unavailable",
            "embedder": "ok",
        }
        for secret in ("127.0.0.1", str(closed), "qdrant", "Qdrant", "Connect"):
            assert secret not in response.text
    with down.client(made["operator"]["key"]) as operator:
        err = error(operator.get("/health"), 503, "store_unavailable")
        assert next(d["message"] for d in err["details"] if d["field"] == "store") != "unavailable"


def test_stats_and_metrics_are_per_tenant(server, keys):
    a = make_key(server.env, "admin", "figures-a")["key"]
    b = make_key(server.env, "admin", "figures-b")["key"]
    with server.client(a) as client_a, server.client(b) as client_b:
        ok(client_a.post("/documents", json={"id": "only-a", "content": "alpaca wool from figures a"}), 201)
        for _ in range(3):
            ok(client_a.post("/search", json={"query": "alpaca wool"}))
        stats_a, stats_b = ok(client_a.get("/stats")), ok(client_b.get("/stats"))
        assert (stats_a["documents"], stats_a["total_searches"]) == (1, 3)
        assert (stats_b["documents"], stats_b["total_searches"]) == (0, 0)
        assert stats_a["cache_hit_rate"] is None and stats_b["cache_hit_rate"] is None  # process-wide
        metrics_a, metrics_b = client_a.get("/metrics").text, client_b.get("/metrics").text
    search = 'vpa_http_requests_total{method="POST",route="/api/v1/search",status="200"}'
    assert f"{search} 3.0" in metrics_a and search not in metrics_b
    assert "vpa_documents 1.0" in metrics_a and "vpa_documents 0.0" in metrics_b
    assert "vpa_search_duration_seconds_count 3.0" in metrics_a
    assert "vpa_search_duration_seconds_count 0.0" in metrics_b
    with server.client(keys["operator"]) as operator:
        everything = ok(operator.get("/stats"))
        assert (
            everything["documents"] >= stats_a["documents"] + stats_b["documents"]
            and everything["total_searches"] >= 3
        )
        assert isinstance(everything["cache_hit_rate"], float)
        text = operator.get("/metrics").text
    total = next(line for line in text.splitlines() if line.startswith(search))
    assert float(total.rsplit(" ", 1)[1]) >= 3


def test_an_operator_key_reaches_no_document_and_no_key(server, keys):
    with server.client(keys["operator"]) as operator:
        for response in (
            operator.post("/search", json={"query": "anything"}),
            operator.get("/documents/only-a"),
            operator.post("/documents", json={"id": "op", "content": "no"}),
            operator.get("/search/history"),
            operator.get("/keys"),
            operator.post("/keys", json={"role": "admin"}),
        ):
            error(response, 403, "forbidden")
    with server.client(keys["acme_admin"]) as admin:  # a tenant's admin cannot mint one
        error(admin.post("/keys", json={"role": "operator"}), 422, "invalid_input")
        assert all(k["role"] != "operator" for k in ok(admin.get("/keys")))


def test_operator_keys_from_the_cli(server):
    made = json.loads(
        vpa(server.env, "keys", "create", "--role", "operator", "--name", "ops", "--json").stdout
    )
    assert made["role"] == "operator" and made["tenant"] is None
    with server.client(made["key"]) as operator:
        ok(operator.get("/stats"))
    listing = vpa(server.env, "keys", "list").stdout
    assert any(made["key_id"] in line and "operator" in line for line in listing.splitlines())
    rows = json.loads(vpa(server.env, "keys", "list", "--json").stdout)
    assert next(r for r in rows if r["key_id"] == made["key_id"])["tenant"] is None
    bad = vpa(server.env, "keys", "create", "--role", "operator", "--tenant", "acme", check=False)
    assert bad.returncode == 2 and "tenant" in bad.stderr
    bad = vpa(server.env, "keys", "create", "--role", "reader", check=False)
    assert bad.returncode == 2 and "need a tenant" in bad.stderr


@pytest.mark.parametrize(
    "tenant",
    [
        "acme\n",
        "acme\nadmin",
        "acme\r",
        "ac\tme",
        "acme\x1b[2J",
        "acme\x7f",
        "acme\x85",
        "\u202eemca",
        "acme\u200b",
        " acme",
    ],
)
def test_tenant_names_refuse_control_characters(server, tenant):
    keys_file = Path(server.env["VPA_DATA_DIR"]) / "keys.json"
    before = keys_file.read_text()
    bad = vpa(server.env, "keys", "create", "--role", "reader", "--tenant", tenant, check=False)
    assert bad.returncode == 2 and "tenant" in bad.stderr
    assert keys_file.read_text() == before  # nothing was written
    with pytest.raises(ValidationError):
        ApiKeyAuthenticator(None).create_key("reader", tenant)


def test_tenant_names_refuse_nul_and_names_refuse_escapes(server, tmp_path):
    # NUL cannot travel in a command's arguments; the key store refuses it itself.
    for tenant in ("acme\x00", "\x00"):
        with pytest.raises(ValidationError):
            ApiKeyAuthenticator(tmp_path / "keys.json").create_key("writer", tenant)
    assert not (tmp_path / "keys.json").exists()
    bad = vpa(
        server.env,
        "keys",
        "create",
        "--role",
        "reader",
        "--tenant",
        "acme",
        "--name",
        "x\x1b[31m",
        check=False,
    )
    assert bad.returncode == 2 and "name" in bad.stderr


def test_a_stored_key_with_a_bad_tenant_is_refused(server):
    """A key file edited by hand (or written by an older version) cannot smuggle a tenant in."""
    from vpa.server.security import key_file_lock

    made = make_key(server.env, "writer", "tampered")
    path = Path(server.env["VPA_DATA_DIR"]) / "keys.json"
    with key_file_lock(path):
        rows = json.loads(path.read_text())
        for row in rows:
            if row["info"]["key_id"] == made["key_id"]:
                row["info"]["tenant"] = "tampered\x00acme"
        tmp = path.with_name("keys.json.edit")
        tmp.write_text(json.dumps(rows))
        os.replace(tmp, path)
    with server.client(made["key"]) as client:
        err = error(client.get("/stats"), 401, "unauthenticated")
        assert "not usable" in err["message"]


def test_with_tracing_a_failed_request_carries_its_trace_id(tmp_path):
    """VPA_ENABLE_TRACING (the original reference's variable): a span per request, its trace id in
    the error envelope and in the audit log, so a user can hand a failed request's id to an operator."""
    import json
    import re

    from server_helpers import Server, base_env, error, make_key

    env = base_env(tmp_path, VPA_ENABLE_TRACING="true", OTEL_TRACES_EXPORTER="none")
    key = make_key(env, "reader", "acme")["key"]
    server = Server(tmp_path, env).start()
    try:
        with server.client(key) as client:
            failure = error(client.post("/search", json={"query": ""}), 422, "invalid_input")
    finally:
        server.stop()
    assert re.fullmatch(r"[0-9a-f]{32}", failure["trace_id"])
    audit = [json.loads(line) for line in server.audit_path.read_text().splitlines() if line.strip()]
    assert any(entry.get("trace_id") == failure["trace_id"] for entry in audit)

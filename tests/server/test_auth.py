"""Keys through the auth hook: 401 without a valid key, 403 for a role that may not act, key
management (CLI and admin API) taking effect on a running server, and the audit log."""

from __future__ import annotations

import json

import httpx
import pytest
from server_helpers import error, make_key, ok, vpa

WRITE = ("post", "/documents", {"id": "role-doc", "content": "written by a writer"})
READ = ("post", "/search", {"query": "anything"})


def _call(client: httpx.Client, action: tuple[str, str, dict]) -> httpx.Response:
    method, path, body = action
    return client.request(method.upper(), path, json=body)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer vpa_000000000000_forged-secret"},
        {"X-API-Key": "not-a-vpa-key"},
        {"X-API-Key": "vpa_nothex_x"},
    ],
)
def test_missing_or_bad_key_is_401(server, headers):
    with server.client() as client:
        for action in (WRITE, READ):
            response = client.request(action[0].upper(), action[1], json=action[2], headers=headers)
            err = error(response, 401, "unauthenticated")
            assert response.headers["www-authenticate"] == "Bearer"
            assert "forged-secret" not in err["message"]
        error(client.get("/stats", headers=headers), 401, "unauthenticated")
        error(client.get("/documents/x", headers=headers), 401, "unauthenticated")


def test_bearer_and_x_api_key_both_work(server, keys):
    key = keys["acme_reader"]
    with server.client() as client:
        ok(client.post("/search", json={"query": "x"}, headers={"Authorization": f"Bearer {key}"}))
        ok(client.post("/search", json={"query": "x"}, headers={"X-API-Key": key}))
        ok(
            client.post(
                "/search", json={"query": "x"}, headers={"Authorization": f"bearer {key}", "X-API-Key": key}
            )
        )
        error(
            client.post(
                "/search",
                json={"query": "x"},
                headers={"Authorization": f"Bearer {key}", "X-API-Key": keys["acme_writer"]},
            ),
            401,
        )


def test_roles(server, keys):
    with server.client(keys["acme_reader"]) as reader:
        ok(_call(reader, READ))
        ok(reader.get("/stats"))
        assert error(_call(reader, WRITE), 403, "forbidden")["message"] == "a reader key may not write"
        error(reader.put("/documents/role-doc", json={"title": "x"}), 403, "forbidden")
        error(reader.delete("/documents/role-doc"), 403, "forbidden")
        error(reader.post("/documents/batch", json={"documents": [WRITE[2]]}), 403, "forbidden")
    with server.client(keys["acme_writer"]) as writer:
        ok(_call(writer, WRITE), 201)
        ok(_call(writer, READ))
        error(writer.get("/metrics"), 403, "forbidden")
        error(writer.get("/keys"), 403, "forbidden")
        error(writer.post("/keys", json={"role": "admin"}), 403, "forbidden")
        error(writer.delete("/keys/abc"), 403, "forbidden")
    with server.client(keys["acme_admin"]) as admin:
        ok(_call(admin, WRITE), 201)
        metrics = admin.get("/metrics")
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")


def test_admin_manages_only_its_tenants_keys(server, keys, key_ids):
    with server.client(keys["acme_admin"]) as admin:
        made = ok(admin.post("/keys", json={"role": "reader", "name": "ci"}), 201)
        assert made["tenant"] == "acme" and made["role"] == "reader" and made["key"].startswith("vpa_")
        listed = ok(admin.get("/keys"))
        assert {k["tenant"] for k in listed} == {"acme"} and made["key_id"] in {k["key_id"] for k in listed}
        assert all("key" not in k for k in listed)  # secrets are never listed
        with server.client(made["key"]) as fresh:
            ok(_call(fresh, READ))
            ok(admin.delete(f"/keys/{made['key_id']}"))
            error(_call(fresh, READ), 401, "unauthenticated")
        # another tenant's key cannot be seen or revoked
        error(admin.delete(f"/keys/{key_ids['globex_writer']}"), 404, "key_not_found")
        error(admin.post("/keys", json={"role": "root"}), 422, "invalid_input")
    with server.client(keys["globex_writer"]) as globex:
        ok(_call(globex, READ))


def test_cli_keys_take_effect_on_a_running_server(server):
    created = json.loads(
        vpa(
            server.env, "keys", "create", "--role", "writer", "--tenant", "acme", "--name", "cli", "--json"
        ).stdout
    )
    listing = vpa(server.env, "keys", "list").stdout
    assert created["key_id"] in listing and created["key"] not in listing
    assert created["key"] not in (server.folder / "data" / "keys.json").read_text()  # only a hash is stored
    rows = json.loads(vpa(server.env, "keys", "list", "--json").stdout)
    assert {"key_id", "role", "tenant", "name", "created_at", "revoked"} == set(rows[0])
    with server.client(created["key"]) as client:
        ok(client.post("/documents", json={"id": "cli-doc", "content": "made with a CLI key"}), 201)
        assert (
            vpa(server.env, "keys", "revoke", created["key_id"]).stdout.strip()
            == f"revoked {created['key_id']}"
        )
        error(client.get("/documents/cli-doc"), 401, "unauthenticated")
    again = vpa(server.env, "keys", "revoke", created["key_id"], check=False)
    assert again.returncode == 2 and "no active key" in again.stderr
    bad = vpa(server.env, "keys", "create", "--role", "writer", "--tenant", "a/b", check=False)
    assert bad.returncode == 2 and "tenant" in bad.stderr
    bad = vpa(server.env, "keys", "create", "--role", "owner", "--tenant", "a", check=False)
    assert bad.returncode == 2


def test_auth_disabled_means_unscoped_admin_but_no_key_api(server_factory):
    server, _ = server_factory("noauth", VPA_AUTH_ENABLED="false")
    with server.client() as client:
        ok(client.post("/documents", json={"id": "open", "content": "no key needed"}), 201)
        assert ok(client.get("/documents/open"))["content"] == "no key needed"
        assert client.get("/metrics").status_code == 200
        error(client.post("/keys", json={"role": "admin"}), 403, "forbidden")


def test_audit_log_records_who_did_what_without_text_or_keys(server, keys, key_ids):
    secret_text = "the-launch-code-is-4711"
    with server.client(keys["globex_writer"]) as client:
        ok(
            client.post(
                "/documents", json={"id": "audited", "content": secret_text, "title": "Top secret title"}
            ),
            201,
        )
        ok(client.post("/search", json={"query": "launch code query words"}))
        ok(client.delete("/documents/audited"))
    with server.client() as client:
        error(client.get("/stats", headers={"X-API-Key": "vpa_abc_def"}), 401)
    text = server.audit_path.read_text()
    assert secret_text not in text and "Top secret" not in text and "launch code" not in text
    assert all(key not in text for key in keys.values())
    assert "vpa_abc_def" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    mine = [line for line in lines if line.get("key_id") == key_ids["globex_writer"]]
    events = [(line["event"], line["status"]) for line in mine]
    assert (
        ("add_document", 201) in events and ("search", 200) in events and ("delete_document", 200) in events
    )
    added = next(
        line for line in mine if line["event"] == "add_document" and line.get("document_id") == "audited"
    )
    assert (
        added["tenant"] == "globex"
        and added["role"] == "writer"
        and added["chunks"] == 1
        and added["log"] == "audit"
    )
    assert any(line["status"] == 401 and line.get("error_code") == "unauthenticated" for line in lines)


def test_metrics_exposition(server, keys):
    with server.client(keys["acme_writer"]) as writer:
        ok(writer.post("/search", json={"query": "metrics warm-up"}))
        error(writer.get("/documents/surely-missing"), 404)
    with server.client(keys["acme_admin"]) as admin:
        text = admin.get("/metrics").text  # the tenant's own view
    with server.client(keys["operator"]) as operator:
        everything = operator.get("/metrics").text  # the whole process's
    for view in (text, everything):
        assert 'vpa_http_requests_total{method="POST",route="/api/v1/search",status="200"}' in view
        assert 'route="/api/v1/documents/{document_id:path}",status="404"' in view
        assert "surely-missing" not in view  # route templates, never raw paths
        for name in (
            "vpa_http_request_duration_seconds_bucket",
            "vpa_search_duration_seconds_count",
            "vpa_documents",
            "vpa_chunks",
            'vpa_errors_total{code="document_not_found"}',
        ):
            assert name in view, name
        documents = next(line for line in view.splitlines() if line.startswith("vpa_documents "))
        assert float(documents.split()[1]) >= 1
    for name in ("vpa_cache_hit_ratio", "vpa_requests_in_progress", "vpa_open_connections"):
        assert name in everything and name not in text, name  # process-wide figures: operator only


def test_key_file_written_by_hand_is_picked_up(server):
    made = make_key(server.env, "reader", "acme", "late")  # another process writes the file meanwhile
    with server.client(made["key"]) as client:
        ok(client.get("/stats"))

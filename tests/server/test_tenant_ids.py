"""A tenant never reads or takes over an untenanted document whose id starts with its name.

Reproduced with real processes: `vpa ingest docs` without a tenant stored `acme/secret.txt`; a key
of tenant `acme` then GOT `/documents/secret.txt` (200, the untenanted text) and could PUT over it.
Chunk ids were `{tenant}/{id}`, the same for both; now the tenant is checked by field and an
untenanted id can never collide with a tenant's.
"""

from __future__ import annotations

import subprocess

from server_helpers import VPA, Server, base_env, error, make_key, ok


def test_tenant_cannot_read_or_overwrite_an_untenanted_document_named_like_it(tmp_path):
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "secret.txt").write_text("the untenanted secret text")
    env = base_env(tmp_path / "data")
    ingest = subprocess.run([VPA, "ingest", "acme"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert ingest.returncode == 0, ingest.stderr
    key = make_key(env, "writer", "acme")["key"]
    server = Server(tmp_path, env).start()
    try:
        with server.client(key) as acme:
            error(acme.get("/documents/secret.txt"), 404, "document_not_found")
            assert ok(acme.post("/search", json={"query": "untenanted secret"}))["results"] == []
            ok(acme.post("/documents", json={"id": "secret.txt", "content": "acme's own text"}), 201)
            assert ok(acme.get("/documents/secret.txt"))["content"] == "acme's own text"
    finally:
        server.stop()
    shown = subprocess.run([VPA, "get", "acme/secret.txt"], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0 and "the untenanted secret text" in shown.stdout

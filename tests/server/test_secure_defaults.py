"""`vpa serve` is secure by default: no anonymous admin where keys exist or beyond loopback, and
VPA_ENCRYPT_IN_TRANSIT means TLS beyond loopback (issue: settings accepted and silently ignored)."""

from __future__ import annotations

import subprocess

from server_helpers import VPA, base_env, make_key


def _serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    # each refusal happens before the server binds (192.0.2.1 is a documentation address no
    # interface here has, so even a regression could not listen beyond loopback)
    return subprocess.run([VPA, "serve", "--port", "1", *args], env=env, capture_output=True, text=True, timeout=60)


def test_no_anonymous_server_where_keys_exist(tmp_path):
    env = base_env(tmp_path, VPA_AUTH_ENABLED="false")
    make_key(env, "writer", "acme")
    refused = _serve(env)
    assert refused.returncode == 2 and "refusing to serve without authentication: API keys exist" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_no_anonymous_server_beyond_loopback(tmp_path):
    env = base_env(tmp_path, VPA_AUTH_ENABLED="false")
    refused = _serve(env, "--host", "192.0.2.1")
    assert refused.returncode == 2 and "192.0.2.1 is not a loopback address" in refused.stderr


def test_the_original_auth_variables_turn_authentication_on(tmp_path):
    """VPA_ENABLE_AUTH / VPA_REQUIRE_API_KEY were ignored: an anonymous POST got 201."""
    import httpx
    from server_helpers import Server, error

    for alias in ("VPA_ENABLE_AUTH", "VPA_REQUIRE_API_KEY"):
        env = {k: v for k, v in base_env(tmp_path / alias).items() if k != "VPA_AUTH_ENABLED"}
        env[alias] = "true"
        server = Server(tmp_path, env).start()
        try:
            with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as anonymous:
                error(anonymous.post("/documents", json={"id": "d", "content": "x"}), 401, "unauthenticated")
        finally:
            server.stop()


def test_encrypt_in_transit_refuses_plain_http_beyond_loopback(tmp_path):
    env = base_env(tmp_path, VPA_ENCRYPT_IN_TRANSIT="true")
    refused = _serve(env, "--host", "192.0.2.1")
    assert refused.returncode == 2 and "VPA_ENCRYPT_IN_TRANSIT is on" in refused.stderr

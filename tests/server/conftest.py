"""Real servers for the REST API tests: `vpa serve` subprocesses on free loopback ports.

Each server runs with the `hashing` embedder and the `memory` store in its own temporary data
folder (unless a test asks otherwise), is waited for by polling /api/v1/health, and is stopped by
its own PID at the end of the session. Keys are made with `vpa keys create`, as a user would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from server_helpers import Server, base_env, make_key


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Start servers on demand; every one still running is stopped at the end of the session."""
    started: list[Server] = []

    def start(
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
        keys: dict[str, tuple[str, str]] | None = None,
        scheme: str = "http",
        verify: Any = True,
        preexec_fn: Any = None,
        **variables: str,
    ) -> tuple[Server, dict[str, dict[str, Any]]]:
        folder = tmp_path_factory.mktemp(name)
        server_env = env or base_env(folder / "data", **variables)
        made = {
            label: make_key(server_env, role, tenant, label) for label, (role, tenant) in (keys or {}).items()
        }
        server = Server(folder, server_env, args, scheme, preexec_fn)
        started.append(server)
        return server.start(verify=verify), made

    yield start
    for server in started:
        server.stop()


#: The keys of the main server: label → (role, tenant); an operator key has no tenant.
MAIN_KEYS = {
    "acme_reader": ("reader", "acme"),
    "acme_writer": ("writer", "acme"),
    "acme_admin": ("admin", "acme"),
    "globex_writer": ("writer", "globex"),
    "globex_admin": ("admin", "globex"),
    "fuzz_admin": ("admin", "fuzz"),
    "operator": ("operator", None),
}


@pytest.fixture(scope="session")
def main_server(server_factory: Any) -> tuple[Server, dict[str, dict[str, Any]]]:
    """The shared server: auth on, tenants acme and globex (and fuzz for schemathesis)."""
    return server_factory("main", keys=MAIN_KEYS)


@pytest.fixture(scope="session")
def server(main_server: Any) -> Server:
    return main_server[0]


@pytest.fixture(scope="session")
def keys(main_server: Any) -> dict[str, str]:
    return {label: info["key"] for label, info in main_server[1].items()}


@pytest.fixture(scope="session")
def key_ids(main_server: Any) -> dict[str, str]:
    return {label: info["key_id"] for label, info in main_server[1].items()}


@pytest.fixture
def acme(server: Server, keys: dict[str, str]) -> Iterator[httpx.Client]:
    with server.client(keys["acme_writer"]) as client:
        yield client


@pytest.fixture
def globex(server: Server, keys: dict[str, str]) -> Iterator[httpx.Client]:
    with server.client(keys["globex_writer"]) as client:
        yield client

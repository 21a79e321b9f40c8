"""The store contract against a store chosen by its registered name (``--vpa-store NAME``).

Collected only when the option is given (see `vpa_conformance.pytest_plugin`). The store is
built like an application builds it: ``get_registry().create("store", NAME, config)`` with a
config from `vpa.config.load_config` (so ``VPA_*`` variables and ``vpa.toml`` apply, e.g. the
host of a server) whose ``data_dir`` is a fresh temporary folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from vpa.config import VPAConfig, load_config
from vpa.plugins import get_registry
from vpa.stores.base import VectorStore

from vpa_conformance.checks import fail
from vpa_conformance.harness import StoreHarness
from vpa_conformance.store import StoreContract


def _name(config: pytest.Config) -> str:
    return str(config.getoption("vpa_store"))


class TestRegisteredStore(StoreContract):
    @pytest.fixture
    def vpa_config(self, request: pytest.FixtureRequest, tmp_path: Path) -> VPAConfig:
        name = _name(request.config)
        return load_config({"data_dir": str(tmp_path / "vpa-data"), "provider": name})

    @pytest.fixture
    def store(self, request: pytest.FixtureRequest, vpa_config: VPAConfig) -> VectorStore:
        return get_registry().create("store", _name(request.config), vpa_config)

    @pytest.fixture
    def store_factory(
        self, request: pytest.FixtureRequest, vpa_config: VPAConfig
    ) -> Callable[[], VectorStore]:
        return lambda: get_registry().create("store", _name(request.config), vpa_config)

    def test_registration(
        self, vpa_store: StoreHarness, vpa_config: VPAConfig, request: pytest.FixtureRequest
    ) -> None:
        """The store is registered with the capabilities its instances declare (for this
        configuration, when they depend on the mode)."""
        vpa_store.examples += 1
        registration = get_registry().get("store", _name(request.config))
        declared = registration.declared(vpa_config)
        if declared != vpa_store.capabilities:
            fail(
                f"registered capabilities {declared!r} differ from the store's own {vpa_store.capabilities!r}"
            )

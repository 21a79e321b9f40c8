"""vpa-conformance: the VPA contracts as executable, hypothesis-based tests.

    from vpa_conformance import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(path=tmp_path / "db")

Also `EmbedderContract`, `ChunkerContract`, `CacheContract` (with `FakeClock`) and
`AuthContract`; `vpa_conformance.strategies` for plugin authors' own tests;
`vpa_conformance.oracle` for the reference model; `vpa_conformance.runner.run` behind
``vpa conformance NAME``.

Names are imported lazily, so that the pytest plugin this package installs costs nothing (and
changes nothing) in test runs that do not use it.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.3.2"

_EXPORTS = {
    "StoreContract": "vpa_conformance.store",
    "StoreStateMachine": "vpa_conformance.store",
    "EmbedderContract": "vpa_conformance.components",
    "ChunkerContract": "vpa_conformance.components",
    "CacheContract": "vpa_conformance.components",
    "AuthContract": "vpa_conformance.components",
    "FakeClock": "vpa_conformance.components",
    "Oracle": "vpa_conformance.oracle",
    "StoreHarness": "vpa_conformance.harness",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'vpa_conformance' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

"""The plugin author's guide is true: its example store, registration and strategy test work,
and the example store passes the store contract."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
from vpa_conformance import StoreContract

README = Path(__file__).resolve().parent.parent / "README.md"


def _block(first_line: str) -> str:
    for block in re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"README has no python block starting with {first_line!r}")


def _module(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = f"<README {name}>"
    sys.modules[name] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


package = types.ModuleType("vpa_dictstore")
package.__path__ = []
sys.modules["vpa_dictstore"] = package
store_module = _module("vpa_dictstore.store", _block("# src/vpa_dictstore/store.py"))
package.DictStore = store_module.DictStore


class TestReadmeDictStore(StoreContract):
    @pytest.fixture
    def store(self):
        return store_module.DictStore()


def test_registration_block() -> None:
    plugin = _module("vpa_dictstore.plugin", _block("# src/vpa_dictstore/plugin.py"))
    calls = []
    plugin.vpa_register_stores(lambda name, factory, **kw: calls.append((name, factory, kw)))
    ((name, factory, kw),) = calls
    assert name == "dictstore" and kw["capabilities"] == store_module.DictStore.capabilities
    assert isinstance(factory(None), store_module.DictStore)


def test_strategy_block() -> None:
    source = _block("from hypothesis import given\nfrom vpa.filters import evaluate")
    namespace: dict = {}
    exec(compile(source, "<README strategies>", "exec"), namespace)
    namespace["test_translation_agrees"]()


def test_conformance_block_is_the_one_tested() -> None:
    block = _block("# tests/test_conformance.py")
    assert "class TestDictStore(StoreContract)" in block and "return DictStore()" in block

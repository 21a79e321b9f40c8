"""The plugin author's guide is true: the blocks it shows are the template plugin's own files
(examples/plugin/vpa-dictstore), the template registers by a string without importing its store,
passes the whole store contract, and the strategy example of the guide works."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from vpa_conformance import StoreContract

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "conformance" / "README.md"
TEMPLATE = ROOT / "examples" / "plugin" / "vpa-dictstore"
sys.path.insert(0, str(TEMPLATE / "src"))

from vpa_dictstore.store import DictStore  # noqa: E402


def _blocks() -> list[str]:
    return re.findall(r"```(?:python|toml)\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def _block(first_line: str) -> str:
    for block in _blocks():
        if block.startswith(first_line):
            return block
    raise AssertionError(f"README has no block starting with {first_line!r}")


class TestTemplateDictStore(StoreContract):
    @pytest.fixture
    def store(self):
        return DictStore()


@pytest.mark.parametrize(
    "relative",
    ["pyproject.toml", "src/vpa_dictstore/store.py", "src/vpa_dictstore/filters.py", "src/vpa_dictstore/errors.py",
     "src/vpa_dictstore/settings.py", "src/vpa_dictstore/plugin.py", "tests/test_conformance.py"],
)
def test_the_guide_shows_the_templates_files(relative: str) -> None:
    shown = _block(f"# {relative}\n").split("\n", 1)[1]
    assert shown == (TEMPLATE / relative).read_text(encoding="utf-8"), f"README's {relative} is out of date"


def test_the_template_registers_by_string_and_builds_from_its_settings() -> None:
    import types

    from vpa.config import load_config
    from vpa.errors import ConfigError
    from vpa.plugins import Registry

    import vpa_dictstore.plugin as plugin

    registry = Registry(load_entry_points=False)
    registry.register_plugin(plugin, "dictstore", ("vpa-dictstore", "0.1.0"))
    registration = registry.get("store", "dictstore")
    assert registration.target == "vpa_dictstore.store:DictStore"
    config = load_config({"providers": {"dictstore": {"max_batch_size": 7}}}, environ={})
    assert registration.declared(config).max_batch_size == 7
    assert registry.create("store", "dictstore", config).capabilities.max_batch_size == 7
    with pytest.raises(ConfigError, match=r"\[providers.dictstore\].max_batch"):
        registry.create("store", "dictstore", load_config({"providers": {"dictstore": {"max_batch": 7}}}, environ={}))
    assert isinstance(types.ModuleType, type)


def test_strategy_block() -> None:
    source = _block("from hypothesis import given\nfrom vpa.filters import evaluate")
    namespace: dict = {}
    exec(compile(source, "<README strategies>", "exec"), namespace)
    namespace["test_translation_agrees"]()

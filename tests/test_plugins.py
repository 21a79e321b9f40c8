import types

import pytest

from vpa.errors import PluginError, PluginNotFound
from vpa.hookspecs import hookimpl
from vpa.models import StoreCapabilities
from vpa.plugins import Registry, get_registry


def test_builtins_register_through_the_hooks():
    registry = get_registry()
    assert "memory" in registry.names("store")
    assert {"hashing", "sentence-transformers"} <= set(registry.names("embedder"))
    assert "recursive" in registry.names("chunker")
    assert "lru" in registry.names("cache")
    assert "api-keys" in registry.names("auth")
    memory = registry.get("store", "memory")
    assert memory.package == "vpa-core" and memory.capabilities.exact


def test_unknown_name_lists_what_is_installed():
    with pytest.raises(PluginNotFound, match=r"unknown store 'nope'; installed: .*memory"):
        get_registry().get("store", "nope")


def _plugin(name: str, caps: StoreCapabilities | None) -> types.ModuleType:
    module = types.ModuleType(name)

    @hookimpl
    def vpa_register_stores(register):
        if caps is None:
            register("faulty", lambda config: None)
        else:
            register("third", lambda config: ("built", config), capabilities=caps)

    module.vpa_register_stores = vpa_register_stores
    return module


def test_third_party_plugin_registers_and_resolves():
    registry = Registry(load_entry_points=False)
    registry.register_plugin(_plugin("third_party", StoreCapabilities(exact=False, min_recall=0.9)), "third_party", ("vpa-third", "1.2.3"))
    registration = registry.get("store", "third")
    assert (registration.package, registration.version) == ("vpa-third", "1.2.3")
    assert registry.create("store", "third", "cfg") == ("built", "cfg")


def test_store_without_capabilities_and_duplicates_are_refused():
    registry = Registry(load_entry_points=False)
    registry.register_plugin(_plugin("faulty", None), "faulty")
    with pytest.raises(PluginError, match="does not declare its capabilities"):
        registry.get("store", "faulty").capabilities
    registry.register_plugin(_plugin("one", StoreCapabilities()), "one", ("vpa-one", "1"))
    with pytest.raises(PluginError, match="registered by both"):
        registry.register_plugin(_plugin("two", StoreCapabilities()), "two", ("vpa-two", "1"))


def test_a_string_target_is_imported_on_first_use_and_declares_its_own_capabilities(tmp_path, monkeypatch):
    package = tmp_path / "lazy_store_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "store.py").write_text(
        "from vpa.models import StoreCapabilities\n"
        "from vpa.stores.memory import MemoryStore\n"
        "class LazyStore(MemoryStore):\n"
        "    capabilities = StoreCapabilities(exact=True, max_batch_size=7)\n"
        "    @classmethod\n"
        "    def from_config(cls, config):\n"
        "        return cls()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = types.ModuleType("lazy")

    @hookimpl
    def vpa_register_stores(register):
        register("lazy", "lazy_store_pkg.store:LazyStore", description="imported on first use")

    module.vpa_register_stores = vpa_register_stores
    registry = Registry(load_entry_points=False)
    registry.register_plugin(module, "lazy", ("vpa-lazy", "0.1"))
    import sys

    assert "lazy_store_pkg.store" not in sys.modules
    registration = registry.get("store", "lazy")
    assert registration.capabilities.max_batch_size == 7
    assert registration.declared(None).max_batch_size == 7
    assert type(registry.create("store", "lazy", None)).__name__ == "LazyStore"


def test_a_misspelt_hook_fails_loading_with_an_error_that_names_it():
    module = types.ModuleType("typo")

    @hookimpl
    def vpa_register_store(register):  # singular: not a VPA hook
        register("typo", lambda config: None)

    module.vpa_register_store = vpa_register_store
    registry = Registry(load_entry_points=False)
    with pytest.raises(PluginError, match=r"plugin 'typo' implements vpa_register_store.*vpa_register_stores"):
        registry.register_plugin(module, "typo", ("vpa-typo", "1"))
    assert "typo" not in registry.names("store")


def test_a_plugin_that_registers_nothing_is_an_error():
    registry = Registry(load_entry_points=False)
    with pytest.raises(PluginError, match="registers nothing"):
        registry.register_plugin(types.ModuleType("empty"), "empty", ("vpa-empty", "1"))


def test_an_entry_point_that_fails_loading_is_named_when_its_name_is_asked_for():
    registry = Registry(load_entry_points=False)
    from vpa.plugins import LoadError

    registry.errors.append(LoadError("broken", "vpa-broken", "PluginError: plugin 'broken' implements vpa_register_store"))
    with pytest.raises(PluginNotFound, match="vpa-broken failed to load"):
        registry.get("store", "broken")


def test_a_bad_target_string_is_a_plugin_error():
    from vpa.plugins import resolve

    with pytest.raises(PluginError, match="not of the form"):
        resolve("no_colon_here")
    with pytest.raises(PluginError, match="cannot load"):
        resolve("vpa.nope_module:Thing")


def test_core_never_imports_the_conformance_suite_which_adds_its_own_command():
    from pathlib import Path

    import vpa

    core = Path(vpa.__file__).parent
    offenders = [str(p.relative_to(core)) for p in core.rglob("*.py") if "vpa_conformance" in p.read_text()]
    assert offenders == []
    from click.testing import CliRunner

    from vpa.cli import main

    result = CliRunner().invoke(main, ["conformance", "--help"])
    assert result.exit_code == 0 and "conformance suite" in result.output

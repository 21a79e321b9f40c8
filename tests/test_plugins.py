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
    with pytest.raises(PluginError, match="must declare its capabilities"):
        registry.register_plugin(_plugin("faulty", None), "faulty")
    registry.register_plugin(_plugin("one", StoreCapabilities()), "one", ("vpa-one", "1"))
    with pytest.raises(PluginError, match="registered by both"):
        registry.register_plugin(_plugin("two", StoreCapabilities()), "two", ("vpa-two", "1"))

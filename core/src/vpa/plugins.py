"""The plugin manager: built-ins and entry-point plugins, registered through the same hooks.

`get_registry()` builds the registry once per process: it registers the built-in plugin modules,
loads every module of the ``vpa`` entry-point group (a broken plugin is reported, not fatal),
calls each registration hook and indexes the factories by kind and name.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata as md
from collections.abc import Callable
from typing import Any

import attrs
import pluggy

from vpa import hookspecs
from vpa.errors import PluginError, PluginNotFound
from vpa.hookspecs import PROJECT_NAME
from vpa.models import StoreCapabilities

ENTRY_POINT_GROUP = "vpa"

BUILTIN_MODULES = (
    "vpa.stores.memory",
    "vpa.embedders.hashing",
    "vpa.embedders.sentence_transformers",
    "vpa.chunkers.recursive",
    "vpa.caches.lru",
    "vpa.auth.api_keys",
)

#: kind → the hook that registers it
HOOKS = {
    "store": "vpa_register_stores",
    "embedder": "vpa_register_embedders",
    "chunker": "vpa_register_chunkers",
    "cache": "vpa_register_caches",
    "auth": "vpa_register_authenticators",
}


@attrs.frozen
class Registration:
    kind: str
    name: str
    factory: Callable[..., Any] = attrs.field(repr=False)
    plugin: str
    package: str
    version: str
    description: str = ""
    capabilities: StoreCapabilities | None = None
    #: For stores whose capabilities depend on their mode (say embedded vs server): the
    #: declaration for a given config. ``capabilities`` is then the default mode's.
    capabilities_for: Callable[[Any], StoreCapabilities] | None = attrs.field(default=None, repr=False)

    def declared(self, config: Any) -> StoreCapabilities | None:
        """What a store built from ``config`` declares it can do."""
        return self.capabilities_for(config) if self.capabilities_for is not None else self.capabilities


@attrs.frozen
class LoadError:
    plugin: str
    package: str
    error: str


def _core_version() -> str:
    try:
        return md.version("vpa-core")
    except md.PackageNotFoundError:
        return "0+unknown"


class Registry:
    """Every registered component, by kind and name."""

    def __init__(self, load_entry_points: bool = True) -> None:
        self.manager = pluggy.PluginManager(PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self._by_kind: dict[str, dict[str, Registration]] = {kind: {} for kind in HOOKS}
        self._origin: dict[str, tuple[str, str]] = {}
        self.errors: list[LoadError] = []
        core = ("vpa-core", _core_version())
        for module_name in BUILTIN_MODULES:
            self.register_plugin(importlib.import_module(module_name), module_name, core)
        if load_entry_points:
            self._load_entry_points()

    def _load_entry_points(self) -> None:
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist
            origin = (dist.name, dist.version) if dist is not None else (ep.value, "0+unknown")
            if self.manager.has_plugin(ep.name):
                continue
            try:
                self.register_plugin(ep.load(), ep.name, origin)
            except Exception as exc:  # one broken plugin must not take the others down
                self.errors.append(LoadError(ep.name, origin[0], f"{type(exc).__name__}: {exc}"))

    def register_plugin(self, plugin: object, name: str, origin: tuple[str, str] = ("", "")) -> None:
        """Register a plugin object (module) and index what its hooks register."""
        self.manager.register(plugin, name=name)
        self._origin[name] = origin
        for kind, hook_name in HOOKS.items():
            for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
                if impl.plugin_name == name:
                    impl.function(register=self._registrar(kind, name))

    def _registrar(self, kind: str, plugin: str) -> Callable[..., None]:
        package, version = self._origin[plugin]

        def register(
            name: str,
            factory: Callable[..., Any],
            *,
            capabilities: StoreCapabilities | None = None,
            description: str = "",
            capabilities_for: Callable[[Any], StoreCapabilities] | None = None,
        ) -> None:
            if kind == "store" and not isinstance(capabilities, StoreCapabilities):
                raise PluginError(f"store {name!r} from {package} must declare its capabilities")
            table = self._by_kind[kind]
            if name in table:
                raise PluginError(
                    f"{kind} {name!r} is registered by both {table[name].package} and {package}"
                )
            table[name] = Registration(
                kind, name, factory, plugin, package, version, description, capabilities, capabilities_for
            )

        return register

    def names(self, kind: str) -> list[str]:
        return sorted(self._by_kind[kind])

    def get(self, kind: str, name: str) -> Registration:
        if kind not in self._by_kind:
            raise PluginNotFound("plugin kind", kind, self._by_kind)
        try:
            return self._by_kind[kind][name]
        except KeyError:
            raise PluginNotFound(kind, name, self._by_kind[kind]) from None

    def all(self) -> list[Registration]:
        return [reg for kind in HOOKS for reg in sorted(self._by_kind[kind].values(), key=lambda r: r.name)]

    def create(self, kind: str, name: str, config: Any) -> Any:
        """Build a component: resolve the name, call its factory with the config."""
        return self.get(kind, name).factory(config)


@functools.cache
def get_registry() -> Registry:
    """The process-wide registry (built on first use)."""
    return Registry()

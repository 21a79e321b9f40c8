"""The plugin manager: built-ins and entry-point plugins, registered through the same hooks.

`get_registry()` builds the registry once per process: it registers the built-in plugin modules,
loads every module of the ``vpa`` entry-point group (a broken plugin is reported, not fatal),
calls each registration hook and indexes the factories by kind and name.
"""

from __future__ import annotations

import difflib
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


Target = str | Callable[..., Any]


def resolve(target: Target) -> Any:
    """``"package.module:Attribute"`` imported (on first use), or the object itself."""
    if not isinstance(target, str):
        return target
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise PluginError(f"registration target {target!r} is not of the form 'package.module:Attribute'")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"cannot load {target!r}: {type(exc).__name__}: {exc}") from exc
    return obj


@attrs.define(eq=False)
class Registration:
    """One registered component. ``target`` is a class or factory, or the string naming one,
    resolved on first use (so registering a plugin never imports its vendor client)."""

    kind: str
    name: str
    target: Target = attrs.field(repr=False)
    plugin: str
    package: str
    version: str
    description: str = ""
    #: Legacy (0.1) registrations declared capabilities beside the factory; a store class now
    #: declares them itself (``capabilities``, ``declared(config)``).
    legacy_capabilities: StoreCapabilities | None = attrs.field(default=None, repr=False)
    legacy_capabilities_for: Callable[[Any], StoreCapabilities] | None = attrs.field(default=None, repr=False)
    _loaded: Any = attrs.field(default=None, repr=False, alias="_loaded")

    def load(self) -> Any:
        if self._loaded is None:
            self._loaded = resolve(self.target)
        return self._loaded

    @property
    def factory(self) -> Callable[[Any], Any]:
        """``factory(config)`` builds the component: ``from_config`` of a class, or the callable."""
        obj = self.load()
        return getattr(obj, "from_config", obj)

    @property
    def capabilities(self) -> StoreCapabilities | None:
        """A store's declaration in its default mode (its class's ``capabilities``)."""
        if self.legacy_capabilities is not None:
            return self.legacy_capabilities
        caps = getattr(self.load(), "capabilities", None)
        if isinstance(caps, StoreCapabilities):
            return caps
        if self.kind == "store":
            raise PluginError(f"store {self.name!r} from {self.package} does not declare its capabilities")
        return None

    def declared(self, config: Any) -> StoreCapabilities | None:
        """What a store built from ``config`` declares it can do (before connecting)."""
        if self.legacy_capabilities_for is not None:
            return self.legacy_capabilities_for(config)
        if self.legacy_capabilities is not None:
            return self.legacy_capabilities
        declared = getattr(self.load(), "declared", None)
        return declared(config) if callable(declared) else self.capabilities


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
        #: ``vpa_register_commands`` implementations, called by the ``vpa`` command.
        self.commands: list[Callable[..., None]] = []
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
            except PluginError as exc:
                self.errors.append(LoadError(ep.name, origin[0], str(exc)))
            except Exception as exc:  # one broken plugin must not take the others down
                self.errors.append(LoadError(ep.name, origin[0], f"{type(exc).__name__}: {exc}"))

    def register_plugin(self, plugin: object, name: str, origin: tuple[str, str] = ("", "")) -> None:
        """Register a plugin object (module) and index what its hooks register.

        A ``@hookimpl`` whose name is no VPA hook (a misspelt ``vpa_register_store``) is a
        `PluginError` naming the plugin and the hook, and so is a plugin that registers nothing."""
        self.manager.register(plugin, name=name)
        try:
            self._check_hooks(name)
        except PluginError:
            self.manager.unregister(name=name)
            raise
        self._origin[name] = origin
        before = sum(len(table) for table in self._by_kind.values())
        for kind, hook_name in HOOKS.items():
            for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
                if impl.plugin_name == name:
                    impl.function(register=self._registrar(kind, name))
        commands = [
            impl.function for impl in self.manager.hook.vpa_register_commands.get_hookimpls()
            if impl.plugin_name == name
        ]
        self.commands.extend(commands)
        registered = sum(len(table) for table in self._by_kind.values()) - before
        if not registered and not commands:
            raise PluginError(f"plugin {name!r} ({origin[0] or name}) registers nothing: it has no VPA hook")

    def _check_hooks(self, plugin: str) -> None:
        """pluggy's ``check_pending``, for one plugin, with the closest real hook named."""
        for hook_name, caller in vars(self.manager.hook).items():
            if hook_name.startswith("_") or caller.has_spec():
                continue
            if any(impl.plugin_name == plugin for impl in caller.get_hookimpls()):
                close = difflib.get_close_matches(hook_name, [*HOOKS.values(), "vpa_register_commands"], n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise PluginError(f"plugin {plugin!r} implements {hook_name}, which is not a VPA hook{hint}")

    def _registrar(self, kind: str, plugin: str) -> Callable[..., None]:
        package, version = self._origin[plugin]

        def register(
            name: str,
            target: Target,
            *,
            description: str = "",
            capabilities: StoreCapabilities | None = None,
            capabilities_for: Callable[[Any], StoreCapabilities] | None = None,
        ) -> None:
            if not isinstance(target, str) and not callable(target):
                raise PluginError(
                    f"{kind} {name!r} from {package}: the target must be 'module:Attribute' or a class"
                )
            if capabilities is not None and not isinstance(capabilities, StoreCapabilities):
                raise PluginError(f"store {name!r} from {package}: capabilities must be StoreCapabilities")
            table = self._by_kind[kind]
            if name in table:
                raise PluginError(
                    f"{kind} {name!r} is registered by both {table[name].package} and {package}"
                )
            table[name] = Registration(
                kind, name, target, plugin, package, version, description, capabilities, capabilities_for
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
            broken = "; ".join(f"{e.package or e.plugin} failed to load: {e.error}" for e in self.errors)
            raise PluginNotFound(kind, name, self._by_kind[kind], broken=broken) from None

    def all(self) -> list[Registration]:
        return [reg for kind in HOOKS for reg in sorted(self._by_kind[kind].values(), key=lambda r: r.name)]

    def create(self, kind: str, name: str, config: Any) -> Any:
        """Build a component: resolve the name, call its factory with the config."""
        return self.get(kind, name).factory(config)


@functools.cache
def get_registry() -> Registry:
    """The process-wide registry (built on first use)."""
    return Registry()

"""The five extension points of VPA, as pluggy hookspecs.

A plugin is a module (or object) with ``@hookimpl`` functions named like the specs below, listed
under the ``vpa`` entry-point group of its distribution::

    [project.entry-points.vpa]
    chroma = "vpa_chroma.plugin"

Each registration hook is called once per plugin when the registry is first built, with a
``register`` callable that takes a name and a target: a string ``"package.module:Class"``
(resolved on first use, so the entry-point module stays a few lines and never imports a vendor
client) or the class/factory itself. A ``@hookimpl`` with a name that is no hook below is an error
naming the plugin. Components connect lazily on first use, so listing plugins never opens a
network connection. The built-in plugins in ``vpa.stores``, ``vpa.embedders``, ... use these same
hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from vpa.config import VPAConfig

PROJECT_NAME = "vpa"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class Factory(Protocol):
    def __call__(self, config: VPAConfig, /) -> Any: ...


class Register(Protocol):
    def __call__(self, name: str, target: str | Factory, *, description: str = "") -> None: ...


@hookspec
def vpa_register_stores(register: Register) -> None:
    """Register vector stores: ``register(name, "package.store:StoreClass", description=...)``.

    The target — a `vpa.stores.base.VectorStore` subclass, or the ``"module:Class"`` string naming
    it, imported on first use — is built with ``StoreClass.from_config(config)``. The class
    declares what it can do itself: ``StoreClass.capabilities`` for its default mode and
    ``StoreClass.declared(config)`` for a given configuration (from its typed settings); the
    conformance suite holds the store to exactly that declaration.
    """


@hookspec
def vpa_register_embedders(register: Register) -> None:
    """Register embedders: ``register(name, target)``; the target (a class with
    ``from_config(config)``, a factory ``f(config)``, or a ``"module:attr"`` string naming one)
    builds a `vpa.embedders.base.Embedder` (text → fixed-dimension vectors)."""


@hookspec
def vpa_register_chunkers(register: Register) -> None:
    """Register chunkers: ``register(name, target)``; the target builds a
    `vpa.chunkers.base.Chunker` (text → chunks with character offsets)."""


@hookspec
def vpa_register_caches(register: Register) -> None:
    """Register caches: ``register(name, target)``; the target builds a `vpa.caches.base.Cache`
    for query embeddings and search results."""


@hookspec
def vpa_register_authenticators(register: Register) -> None:
    """Register authenticators: ``register(name, target)``; the target builds a
    `vpa.auth.base.Authenticator` (API key → principal with role and tenant)."""


@hookspec
def vpa_register_commands(cli: Any) -> None:
    """Add subcommands to the ``vpa`` command: ``cli`` is its click group
    (``cli.add_command(command)``). Called when the ``vpa`` command starts; the conformance suite
    adds ``vpa conformance`` this way, so the core never imports it."""

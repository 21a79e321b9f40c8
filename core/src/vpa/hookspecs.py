"""The five extension points of VPA, as pluggy hookspecs.

A plugin is a module (or object) with ``@hookimpl`` functions named like the specs below, listed
under the ``vpa`` entry-point group of its distribution::

    [project.entry-points.vpa]
    chroma = "vpa_chroma.plugin"

Each hook is called once per plugin when the registry is first built, with a ``register``
callable. A factory takes the `vpa.config.VPAConfig` and returns a ready (not yet connected)
component; components connect lazily on first use, so listing plugins never opens a network
connection. The built-in plugins in ``vpa.stores``, ``vpa.embedders``, ... use these same hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from vpa.config import VPAConfig
    from vpa.models import StoreCapabilities

PROJECT_NAME = "vpa"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class Factory(Protocol):
    def __call__(self, config: VPAConfig, /) -> Any: ...


class RegisterStore(Protocol):
    def __call__(
        self,
        name: str,
        factory: Factory,
        *,
        capabilities: StoreCapabilities,
        description: str = "",
        capabilities_for: Any = None,
    ) -> None: ...


class Register(Protocol):
    def __call__(self, name: str, factory: Factory, *, description: str = "") -> None: ...


@hookspec
def vpa_register_stores(register: RegisterStore) -> None:
    """Register vector stores: ``register(name, factory, capabilities=...)``.

    ``factory(config)`` returns a `vpa.stores.base.VectorStore`. ``capabilities`` declares the
    contract version met and what the store can do (filter operators, metadata types, exact or
    approximate search, batch limit, eventual consistency); the conformance suite holds the store
    to exactly that declaration. A store whose capabilities depend on its mode (embedded or
    server) also passes ``capabilities_for=f``, ``f(config) -> StoreCapabilities``;
    ``capabilities`` is then the default mode's declaration.
    """


@hookspec
def vpa_register_embedders(register: Register) -> None:
    """Register embedders: ``register(name, factory)``; ``factory(config)`` returns an
    `vpa.embedders.base.Embedder` (text → fixed-dimension vectors)."""


@hookspec
def vpa_register_chunkers(register: Register) -> None:
    """Register chunkers: ``register(name, factory)``; ``factory(config)`` returns a
    `vpa.chunkers.base.Chunker` (text → chunks with character offsets)."""


@hookspec
def vpa_register_caches(register: Register) -> None:
    """Register caches: ``register(name, factory)``; ``factory(config)`` returns a
    `vpa.caches.base.Cache` for query embeddings and search results."""


@hookspec
def vpa_register_authenticators(register: Register) -> None:
    """Register authenticators: ``register(name, factory)``; ``factory(config)`` returns a
    `vpa.auth.base.Authenticator` (API key → principal with role and tenant)."""

"""Every provider plugin package has the shape DESIGN.md asks for, and is cheap to register.

Registering plugins happens on every `vpa` command and server start, so a plugin's entry-point
module must not import its vendor's client (chromadb, qdrant_client, ... take seconds to import).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = sorted(p for p in (ROOT / "plugins").glob("vpa-*") if (p / "pyproject.toml").is_file())
VENDOR_MODULES = ["chromadb", "qdrant_client", "pymilvus", "milvus_lite", "pinecone", "weaviate", "grpc", "torch"]


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_package_shape(plugin: Path):
    meta = tomllib.loads((plugin / "pyproject.toml").read_text())["project"]
    name = plugin.name.removeprefix("vpa-")
    assert meta["name"] == plugin.name and meta["version"]
    assert any(dep.replace(" ", "").startswith("vpa-core>=") and "<" in dep for dep in meta["dependencies"]), \
        "depends on vpa-core with a compatible range"
    assert not [d for d in meta["dependencies"] if d.startswith("vpa-") and not d.startswith("vpa-core")], \
        "depends on nothing else of ours"
    assert meta["entry-points"]["vpa"] == {name: f"vpa_{name}.plugin"}
    for required in ("README.md", "CHANGELOG.md", f"src/vpa_{name}/plugin.py", "tests/test_conformance.py"):
        assert (plugin / required).is_file(), f"{plugin.name} lacks {required}"
    assert "StoreContract" in (plugin / "tests/test_conformance.py").read_text()


def test_registering_every_plugin_imports_no_vendor_client():
    code = (
        "import json, sys; from vpa.plugins import get_registry; r = get_registry(); "
        f"print(json.dumps({{'stores': r.names('store'), 'errors': [e.error for e in r.errors], "
        f"'loaded': [m for m in {VENDOR_MODULES!r} if m in sys.modules]}}))"
    )
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert out["errors"] == []
    assert {p.name.removeprefix("vpa-") for p in PLUGINS} <= set(out["stores"])
    assert out["loaded"] == []


#: The public store API: a plugin implements the underscore methods behind it, never these.
PUBLIC_STORE_METHODS = (
    "create_collection", "open_collection", "list_collections", "drop_collection", "upsert", "query", "get",
    "delete", "count", "prepare_filter", "check_records", "health", "settle", "close", "run_vendor",
    "vendor_errors", "split_batch", "declared", "settings_from",
)
LAYOUT = ("plugin.py", "settings.py", "store.py", "codec.py", "filters.py", "errors.py")


def _overridden(store_class: type) -> list[str]:
    from vpa.stores.base import VectorStore

    own = [k for k in store_class.__mro__ if k is not VectorStore and issubclass(k, VectorStore)]
    return [m for m in PUBLIC_STORE_METHODS if any(m in vars(k) for k in own)]


def _source(plugin: Path) -> Path:
    return plugin / "src" / f"vpa_{plugin.name.removeprefix('vpa-')}"


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_one_layout_and_one_vocabulary(plugin: Path):
    """plugin.py, settings.py, store.py, codec.py, filters.py (`to_native`), errors.py
    (`translate_error`); no capabilities module, no lazy __init__ shim; a short entry point that
    registers a 'module:Class' string."""
    src = _source(plugin)
    for name in LAYOUT:
        assert (src / name).is_file(), f"{plugin.name} lacks {name}"
    assert not (src / "capabilities.py").exists(), "capabilities are declared by the store class"
    init = (src / "__init__.py").read_text()
    assert "__getattr__" not in init and "import" not in init.split('"""')[-1], "__init__ is a docstring and __version__"
    entry = (src / "plugin.py").read_text()
    assert len(entry.strip().splitlines()) <= 15, "the entry-point module is a few lines"
    name = plugin.name.removeprefix("vpa-")
    assert f'"vpa_{name}.store:' in entry and "capabilities" not in entry
    assert "def to_native(" in (src / "filters.py").read_text()
    assert "def translate_error(" in (src / "errors.py").read_text()


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_a_plugin_overrides_no_public_method_and_touches_no_base_state(plugin: Path):
    from vpa.plugins import get_registry
    from vpa.stores.base import VectorStore

    src = _source(plugin)
    for path in src.glob("*.py"):
        touches = re.search(r"\._collections\b", path.read_text())
        assert touches is None, f"{path.name} touches the base class's collection cache"
    store_class = get_registry().get("store", plugin.name.removeprefix("vpa-")).load()
    assert issubclass(store_class, VectorStore)
    assert _overridden(store_class) == [], f"{store_class.__name__} overrides {_overridden(store_class)}"


def test_the_memory_store_follows_the_same_rules():
    from vpa.stores.base import VectorStore
    from vpa.stores.memory import MemoryStore

    assert issubclass(MemoryStore, VectorStore) and _overridden(MemoryStore) == []

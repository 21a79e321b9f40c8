"""Every provider plugin package has the shape DESIGN.md asks for, and is cheap to register.

Registering plugins happens on every `vpa` command and server start, so a plugin's entry-point
module must not import its vendor's client (chromadb, qdrant_client, ... take seconds to import).
"""

from __future__ import annotations

import json
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

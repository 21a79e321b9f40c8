"""ONNX Runtime backend of the sentence-transformers embedder (``VPA_EMBEDDING_BACKEND``).

``onnx`` runs the same model in ONNX Runtime, exported here from the local model (nothing is
downloaded): the transformer, mean pooling and L2 normalisation in one graph, so a query is one
``InferenceSession.run``. ``onnx-int8`` quantises that graph's weights to int8 (dynamic
quantisation of the MatMuls), smaller and faster, and a different model to the fingerprint guard.

**The export is proven, not assumed.** It is written once into ``<cache>/<model>-<digest>/``
(the digest covers the model's files and the export settings) with a ``vpa-onnx.json`` manifest;
before that folder is published (written under a temporary name, fsynced, renamed) the exported
graph embeds a fixed set of probe texts and is compared with torch. fp32 must agree to
``FP32_MAX_DIFF`` per component: it then keeps the torch backend's fingerprint, so a collection
embedded by one is searched by the other without a reindex. int8 records how far it is (its
smallest cosine to torch over the probes) and carries its own model id.

At run time only ``onnxruntime`` and ``tokenizers`` are needed (the ``onnx`` extra); the export
itself also needs torch and transformers (the ``sentence-transformers`` extra). A folder exported
elsewhere can be named directly as the model (``VPA_EMBEDDING_MODEL=/models/minilm-onnx``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vpa.errors import ConfigError, DependencyMissing

BACKENDS = ("torch", "onnx", "onnx-int8")
MANIFEST = "vpa-onnx.json"
#: Largest per-component difference from torch that still counts as the same model (fp32).
FP32_MAX_DIFF = 1e-4
#: Export settings; changing any of them is a new export (they are in the folder's digest).
EXPORT_VERSION = 1
OPSET = 17
PROBES = (
    "hello world",
    "Vector databases store embeddings for similarity search.",
    "Ångström, naïve café — 東京 and emoji 🙂 mixed with numbers 3.14159",
    "A much longer passage about retrieval augmented generation, chunking, embedding and the way a "
    "query is answered from the passages that are nearest to it in the embedding space. " * 8,
    "",
)


def backend_problem(backend: str, embedder: str) -> str | None:
    """Why ``VPA_EMBEDDING_BACKEND`` cannot be used as set, or None."""
    if backend not in BACKENDS:
        return f"VPA_EMBEDDING_BACKEND must be one of {', '.join(BACKENDS)}, not {backend!r}"
    if backend != "torch" and embedder != "sentence-transformers":
        return (f"VPA_EMBEDDING_BACKEND={backend} applies to the sentence-transformers embedder only, "
                f"not to VPA_EMBEDDER={embedder}")
    return None


def _require_runtime() -> tuple[Any, Any]:
    try:
        import onnxruntime
        import tokenizers
    except ImportError as exc:
        raise DependencyMissing(
            "VPA_EMBEDDING_BACKEND=onnx needs the extra: pip install 'vpa-core[onnx]'"
        ) from exc
    return onnxruntime, tokenizers


def _digest(source: Path, quantize: bool) -> str:
    """A digest of the model's files (names, sizes and contents) and the export settings."""
    h = hashlib.sha256(f"v{EXPORT_VERSION} opset{OPSET} int8={quantize}".encode())
    for path in sorted(p for p in source.rglob("*") if p.is_file() and p.name != "README.md"):
        h.update(str(path.relative_to(source)).encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def is_export(path: Path) -> bool:
    """Whether ``path`` is a folder this module exported (here or on another machine)."""
    return (path / MANIFEST).is_file()


def export_identity(path: Path) -> tuple[str, bool]:
    """The model name and quantisation recorded in an export's manifest."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        return str(manifest["model"]), manifest["quantization"] == "int8"
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{path.name}: unreadable {MANIFEST}") from exc


class OnnxModel:
    """An exported model folder: ``model.onnx``, ``tokenizer.json`` and the manifest."""

    def __init__(self, folder: Path) -> None:
        ort, tokenizers = _require_runtime()
        try:
            self.manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{folder.name} is not a VPA ONNX export: no readable {MANIFEST}") from exc
        self.folder = folder
        self.dimension = int(self.manifest["dimension"])
        self.max_length = int(self.manifest["max_seq_length"])
        tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(self.max_length)
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}

    @property
    def same_as_torch(self) -> bool:
        return bool(self.manifest.get("same_as_torch"))

    def embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(list(texts))
        # Sorted by length, each batch padded only to its own longest text (as sentence-transformers
        # does): padding is work, and a batch of one is never padded.
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(encodings), self.dimension), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(encodings[i].ids) for i in idx)
            feed = {name: np.zeros((len(idx), width), dtype=np.int64)
                    for name in ("input_ids", "attention_mask", "token_type_ids")}
            for row, i in enumerate(idx):
                e = encodings[i]
                n = len(e.ids)
                feed["input_ids"][row, :n] = e.ids
                feed["attention_mask"][row, :n] = e.attention_mask
                feed["token_type_ids"][row, :n] = e.type_ids
            result = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
            out[idx] = result
        return out


def export(source: Path, cache: Path, *, model: str, quantize: bool) -> Path:
    """The export folder of ``model`` (its sentence-transformers folder at ``source``), made once."""
    digest = _digest(source, quantize)
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in model.rsplit("/", 1)[-1])[:64]
    target = cache / f"{slug}-{'int8' if quantize else 'fp32'}-{digest}"
    if (target / MANIFEST).is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    _sweep_partials(cache)
    work = Path(tempfile.mkdtemp(prefix=f".partial-{os.getpid()}-", dir=cache))
    try:
        _export_into(source, work, model=model, quantize=quantize)
        for path in work.iterdir():
            with path.open("rb") as f:
                os.fsync(f.fileno())
        try:
            os.rename(work, target)
        except OSError:  # another process published the same export first: theirs is as good
            if not (target / MANIFEST).is_file():
                raise
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _sweep_partials(cache: Path) -> None:
    """Remove what exports killed half-way left behind (their process is gone)."""
    for path in cache.glob(".partial-*"):
        try:
            pid = int(path.name.split("-")[1])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue


def _export_into(source: Path, work: Path, *, model: str, quantize: bool) -> None:
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise DependencyMissing(
            "exporting a model to ONNX needs torch and sentence-transformers: "
            "pip install 'vpa-core[sentence-transformers,onnx]' (or name an exported folder)"
        ) from exc
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    st = SentenceTransformer(str(source), device="cpu")
    transformer = st[0].auto_model.eval()
    max_length = int(st.max_seq_length or 512)
    if not (source / "tokenizer.json").is_file():
        raise ConfigError(f"{model} has no tokenizer.json (a fast tokenizer) to export with")
    shutil.copyfile(source / "tokenizer.json", work / "tokenizer.json")

    class Pooled(torch.nn.Module):
        """The transformer, masked mean pooling and L2 normalisation: sentence-transformers'
        pipeline for this model family, checked against it below."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = st.tokenizer(["hello world", "a second, longer sentence"], padding=True, return_tensors="pt")
    fp32 = work / ("model-fp32.onnx" if quantize else "model.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on this graph are for its authors
        torch.onnx.export(
            Pooled(transformer), tuple(sample[n] for n in names), str(fp32), input_names=names,
            output_names=["embedding"], opset_version=OPSET, dynamo=False,
            dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "embedding": {0: "batch"}},
        )
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        root = logging.getLogger()  # the quantiser advises on the root logger; not for VPA's users
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            quantize_dynamic(str(fp32), str(work / "model.onnx"), weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul"], per_channel=True)
        finally:
            root.setLevel(level)
        fp32.unlink()
    reference = st.encode(list(PROBES), convert_to_numpy=True, normalize_embeddings=True,
                          show_progress_bar=False).astype(np.float32)
    manifest: dict[str, Any] = {
        "format": EXPORT_VERSION, "opset": OPSET, "quantization": "int8" if quantize else "none",
        "dimension": int(reference.shape[1]), "max_seq_length": max_length, "model": model,
    }
    (work / MANIFEST).write_text(json.dumps(manifest))
    got = OnnxModel(work).embed(list(PROBES), batch_size=2)
    max_diff = float(np.abs(got - reference).max())
    min_cos = float((got * reference).sum(axis=1).min())
    if not quantize and max_diff > FP32_MAX_DIFF:
        raise ConfigError(
            f"the ONNX export of {model} differs from torch by {max_diff:.2e} (limit "
            f"{FP32_MAX_DIFF:.0e}); use VPA_EMBEDDING_BACKEND=torch for this model"
        )
    manifest.update(max_abs_diff=max_diff, min_cosine=min_cos, probes=len(PROBES),
                    same_as_torch=not quantize and max_diff <= FP32_MAX_DIFF)
    (work / MANIFEST).write_text(json.dumps(manifest, indent=2))


class OnnxRunner:
    """Loads (exporting on first use) and runs one model; thread-safe like the torch backend."""

    def __init__(self, source: Path, cache: Path, *, model: str, quantize: bool) -> None:
        self._source, self._cache, self._model_name, self._quantize = source, cache, model, quantize
        self._model: OnnxModel | None = None
        self._lock = threading.Lock()

    def load(self) -> OnnxModel:
        with self._lock:
            if self._model is None:
                folder = self._source if is_export(self._source) else export(
                    self._source, self._cache, model=self._model_name, quantize=self._quantize
                )
                self._model = OnnxModel(folder)
            return self._model

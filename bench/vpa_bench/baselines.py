"""What users would pick instead of VPA: the bare vendor client, and LangChain's vector store.

Each baseline does the same work as VPA on the same data, the way that library's documentation
shows it, with the library's defaults:

- bare clients (synchronous, called directly): ``chromadb.PersistentClient``, ``qdrant_client``
  local mode (``QdrantClient(path=...)``), ``pymilvus.MilvusClient`` on a Milvus Lite file; a
  cosine collection with the same index settings as VPA's (Chroma: VPA's HNSW ``ef_search``, so
  both do the same search work), upserts in the vendor's batch size, top-k queries returning ids,
  texts and metadata;
- LangChain (``langchain-chroma``, ``langchain-qdrant``): ``add_texts`` / ``similarity_search_with_score``
  over the same embedder, wrapped as a LangChain ``Embeddings``.

`BASELINES[provider]` lists the factories for a VPA provider name.
"""

from __future__ import annotations

import importlib.metadata as md
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

NAMESPACE = uuid.UUID("0b3a7d59-2c51-4e0e-9b0f-7f2a8c1d5e44")


def _chroma_configuration() -> dict[str, Any]:
    """The HNSW settings VPA's chroma plugin creates collections with (cosine, its ef_search)."""
    from vpa_chroma.store import HNSW_DEFAULTS

    return {"hnsw": {"space": "cosine", **HNSW_DEFAULTS}}


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


class Baseline:
    """A fresh collection on one library; ``close`` drops it and releases the client."""

    kind = "bare"  # or "langchain"
    library = ""

    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        texts: Sequence[str],
        metadatas: Sequence[dict[str, Any]],
    ) -> None:
        raise NotImplementedError

    def query(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        raise NotImplementedError

    def add_texts(
        self, texts: Sequence[str], metadatas: Sequence[dict[str, Any]], ids: Sequence[str]
    ) -> None:
        raise NotImplementedError

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    @property
    def label(self) -> str:
        return f"{self.library} {_version(self.library)}"


# --- bare clients ------------------------------------------------------------------------------


class BareChroma(Baseline):
    library = "chromadb"

    def __init__(self, workdir: Path, name: str, dimension: int, embedder: Any) -> None:
        import chromadb
        from chromadb.config import Settings

        self.embedder = embedder
        self.client = chromadb.PersistentClient(
            path=str(workdir / "bare-chroma"), settings=Settings(anonymized_telemetry=False)
        )
        self.name = name
        self.collection = self.client.create_collection(
            name, configuration=_chroma_configuration(), embedding_function=None
        )
        self.batch = int(self.client.get_max_batch_size())

    def upsert(self, ids, vectors, texts, metadatas) -> None:
        for s in range(0, len(ids), self.batch):
            self.collection.upsert(
                ids=list(ids[s : s + self.batch]),
                embeddings=vectors[s : s + self.batch],
                documents=list(texts[s : s + self.batch]),
                metadatas=list(metadatas[s : s + self.batch]),
            )

    def query(self, vector, k):
        r = self.collection.query(
            query_embeddings=[vector], n_results=k, include=["documents", "metadatas", "distances"]
        )
        return [(i, 1.0 - d) for i, d in zip(r["ids"][0], r["distances"][0], strict=True)]

    def add_texts(self, texts, metadatas, ids) -> None:
        self.upsert(ids, self.embedder.embed(texts), texts, metadatas)

    def search(self, query, k):
        return self.query(self.embedder.embed([query])[0], k)

    def close(self) -> None:
        try:
            self.client.delete_collection(self.name)
        finally:
            self.collection = None


class BareQdrant(Baseline):
    library = "qdrant-client"
    batch = 256  # the same points per request as vpa-qdrant (the client's upload helpers use 64)

    def __init__(self, workdir: Path, name: str, dimension: int, embedder: Any) -> None:
        from qdrant_client import QdrantClient, models

        self.models = models
        self.embedder = embedder
        self.client = QdrantClient(path=str(workdir / f"bare-qdrant-{name}"))
        self.name = name
        self.client.create_collection(
            name, vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE)
        )

    def upsert(self, ids, vectors, texts, metadatas) -> None:
        m = self.models
        for s in range(0, len(ids), self.batch):
            points = [
                m.PointStruct(
                    id=str(uuid.uuid5(NAMESPACE, i)), vector=v.tolist(), payload={"id": i, "text": t, **md_}
                )
                for i, v, t, md_ in zip(
                    ids[s : s + self.batch],
                    vectors[s : s + self.batch],
                    texts[s : s + self.batch],
                    metadatas[s : s + self.batch],
                    strict=True,
                )
            ]
            self.client.upsert(self.name, points=points, wait=True)

    def query(self, vector, k):
        r = self.client.query_points(self.name, query=vector.tolist(), limit=k, with_payload=True)
        return [(p.payload["id"], p.score) for p in r.points]

    def add_texts(self, texts, metadatas, ids) -> None:
        self.upsert(ids, self.embedder.embed(texts), texts, metadatas)

    def search(self, query, k):
        return self.query(self.embedder.embed([query])[0], k)

    def close(self) -> None:
        try:
            self.client.delete_collection(self.name)
        finally:
            self.client.close()


class BareMilvus(Baseline):
    library = "pymilvus"
    batch = 1000

    def __init__(self, workdir: Path, name: str, dimension: int, embedder: Any) -> None:
        from pymilvus import DataType, MilvusClient

        self.embedder = embedder
        (workdir / "bare-milvus").mkdir(parents=True, exist_ok=True)
        self.client = MilvusClient(uri=str(workdir / "bare-milvus" / f"{name}.db"))
        self.name = name
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
        schema.add_field("text", DataType.VARCHAR, max_length=65535)
        schema.add_field("metadata", DataType.JSON)
        self.client.create_collection(name, schema=schema, consistency_level="Strong")
        index = self.client.prepare_index_params()
        index.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")
        self.client.create_index(name, index)
        self.client.load_collection(name)

    def upsert(self, ids, vectors, texts, metadatas) -> None:
        for s in range(0, len(ids), self.batch):
            rows = [
                {"id": i, "vector": v.tolist(), "text": t, "metadata": md_}
                for i, v, t, md_ in zip(
                    ids[s : s + self.batch],
                    vectors[s : s + self.batch],
                    texts[s : s + self.batch],
                    metadatas[s : s + self.batch],
                    strict=True,
                )
            ]
            self.client.upsert(self.name, rows)

    def query(self, vector, k):
        r = self.client.search(
            self.name,
            data=[vector.tolist()],
            limit=k,
            output_fields=["text", "metadata"],
            search_params={"metric_type": "COSINE"},
        )
        return [(h["id"], h["distance"]) for h in r[0]]

    def add_texts(self, texts, metadatas, ids) -> None:
        self.upsert(ids, self.embedder.embed(texts), texts, metadatas)

    def search(self, query, k):
        return self.query(self.embedder.embed([query])[0], k)

    def close(self) -> None:
        try:
            self.client.drop_collection(self.name)
        finally:
            self.client.close()


# --- LangChain ---------------------------------------------------------------------------------


def langchain_embeddings(embedder: Any) -> Any:
    """The VPA embedder as a LangChain ``Embeddings`` (same vectors, no extra work)."""
    from langchain_core.embeddings import Embeddings

    class VPAEmbeddings(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embedder.embed(texts).tolist()

        def embed_query(self, text: str) -> list[float]:
            return embedder.embed([text])[0].tolist()

    return VPAEmbeddings()


class LangChainChroma(Baseline):
    kind = "langchain"
    library = "langchain-chroma"

    def __init__(self, workdir: Path, name: str, dimension: int, embedder: Any) -> None:
        import chromadb
        from chromadb.config import Settings
        from langchain_chroma import Chroma

        self.client = chromadb.PersistentClient(
            path=str(workdir / "lc-chroma"), settings=Settings(anonymized_telemetry=False)
        )
        self.name = name
        self.store = Chroma(
            collection_name=name,
            embedding_function=langchain_embeddings(embedder),
            client=self.client,
            collection_configuration=_chroma_configuration(),
        )

    def add_texts(self, texts, metadatas, ids) -> None:
        self.store.add_texts(list(texts), metadatas=list(metadatas), ids=list(ids))

    def search(self, query, k):
        return [(d.id, s) for d, s in self.store.similarity_search_with_score(query, k=k)]

    def close(self) -> None:
        self.client.delete_collection(self.name)


class LangChainQdrant(Baseline):
    kind = "langchain"
    library = "langchain-qdrant"

    def __init__(self, workdir: Path, name: str, dimension: int, embedder: Any) -> None:
        from langchain_qdrant import QdrantVectorStore
        from qdrant_client import QdrantClient, models

        self.client = QdrantClient(path=str(workdir / f"lc-qdrant-{name}"))
        self.name = name
        self.client.create_collection(
            name, vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE)
        )
        self.store = QdrantVectorStore(
            client=self.client, collection_name=name, embedding=langchain_embeddings(embedder)
        )

    def add_texts(self, texts, metadatas, ids) -> None:
        self.store.add_texts(
            list(texts), metadatas=list(metadatas), ids=[str(uuid.uuid5(NAMESPACE, i)) for i in ids]
        )

    def search(self, query, k):
        return [
            (d.metadata.get("_id", ""), s) for d, s in self.store.similarity_search_with_score(query, k=k)
        ]

    def close(self) -> None:
        try:
            self.client.delete_collection(self.name)
        finally:
            self.client.close()


#: VPA provider → (bare factory, LangChain factory or None), with the import that must work.
BASELINES: dict[str, dict[str, tuple[str, Callable[..., Baseline]]]] = {
    "chroma": {"bare": ("chromadb", BareChroma), "langchain": ("langchain_chroma", LangChainChroma)},
    "qdrant": {"bare": ("qdrant_client", BareQdrant), "langchain": ("langchain_qdrant", LangChainQdrant)},
    "milvus": {"bare": ("pymilvus", BareMilvus)},
}

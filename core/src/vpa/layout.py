"""How a document is laid out as chunk records in a store — pure functions, no I/O.

A document becomes one **head** record and zero or more **body** records, one per chunk:

- the head is chunk 0, under the stable id ``{tenant}/{document_id}#0`` (the tenant is empty for
  an untenanted document, so ``/{document_id}#0``; a tenant never holds ``/``, so a tenant's ids
  can never collide with an untenanted document whose id starts with the tenant's name);
- body chunk ``i`` of a version lives under ``{tenant}/{document_id}#{i}@{generation}``, where the
  generation is a prefix of the version's content hash. Two versions of a document never share a
  body id, so writing a new version never touches the old one.

Every chunk carries reserved metadata (``vpa_*``): document id, chunk index and count, offsets,
title, content hash and tenant (``""`` for an untenanted document, so that one filter selects
exactly one tenant's or the untenanted documents). The head is the version's **completion
marker**: the RAG layer writes every body chunk first and the head last, so a head exists only
once all of its version's chunks were acknowledged. Readers trust a body chunk only if the head of its document carries the
same content hash; the unchanged check reads only the head. A crash between chunk writes
therefore leaves the previous version (or nothing) visible, whole, and the next ingest repairs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vpa.errors import IncompleteDocument, ValidationError
from vpa.models import Chunk, Document, Record

#: Part of every content hash: a new layout makes every stored document "changed" once.
LAYOUT_VERSION = 2
RESERVED_PREFIX = "vpa_"
DOC_ID = "vpa_document_id"
CHUNK_INDEX = "vpa_chunk_index"
CHUNK_COUNT = "vpa_chunk_count"
START = "vpa_start"
END = "vpa_end"
TITLE = "vpa_title"
CONTENT_HASH = "vpa_content_hash"
TENANT = "vpa_tenant"
#: Reserved keys every chunk carries.
RESERVED_KEYS = (DOC_ID, CHUNK_INDEX, CHUNK_COUNT, START, END, TITLE, CONTENT_HASH, TENANT)
#: Hex digits of the content hash that name a generation in body ids (64 bits: collisions between
#: two versions of one document are out of reach).
GENERATION_CHARS = 16
MAX_TENANT_LENGTH = 64


def check_tenant(tenant: Any) -> None:
    """A tenant is a short printable name without ``/`` (or None: no tenant)."""
    if tenant is None:
        return
    if (
        not isinstance(tenant, str)
        or not tenant
        or len(tenant) > MAX_TENANT_LENGTH
        or "/" in tenant
        or not tenant.isprintable()
    ):
        raise ValidationError(
            f"tenant must be 1-{MAX_TENANT_LENGTH} printable characters without '/', got {tenant!r}"
        )


def head_id(document_id: str, tenant: str | None) -> str:
    return f"{tenant or ''}/{document_id}#0"


def body_id(document_id: str, index: int, tenant: str | None, content_hash: str) -> str:
    return f"{tenant or ''}/{document_id}#{index}@{content_hash[:GENERATION_CHARS]}"


def record_id(document_id: str, index: int, tenant: str | None, content_hash: str) -> str:
    return head_id(document_id, tenant) if index == 0 else body_id(document_id, index, tenant, content_hash)


def public_chunk_id(metadata: Mapping[str, Any]) -> str:
    """The id a caller sees for a chunk: ``{document_id}#{index}`` (no tenant, no generation)."""
    return f"{metadata[DOC_ID]}#{metadata[CHUNK_INDEX]}"


def user_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh copy of the user's metadata (lists copied too), without VPA's own keys."""
    return {
        k: list(v) if isinstance(v, list) else v
        for k, v in metadata.items()
        if not k.startswith(RESERVED_PREFIX)
    }


def chunk_metadata(
    document: Document, chunk: Chunk, count: int, content_hash: str, tenant: str | None
) -> dict[str, Any]:
    metadata = dict(document.metadata)
    metadata.update({
        DOC_ID: document.id, CHUNK_INDEX: chunk.index, CHUNK_COUNT: count, START: chunk.start,
        END: chunk.end, TITLE: document.title, CONTENT_HASH: content_hash, TENANT: tenant or "",
    })
    return metadata


def is_head(record_id_: str, metadata: Mapping[str, Any]) -> bool:
    """Whether a record is the head of its document (its id is the canonical head id)."""
    return metadata.get(CHUNK_INDEX) == 0 and record_id_ == head_id(
        str(metadata.get(DOC_ID)), metadata.get(TENANT)
    )


def belongs(head: Record | None, tenant: str | None) -> bool:
    """Whether a head read under a tenant's id is really that tenant's (checked by field, too)."""
    return head is not None and head.metadata.get(TENANT, "") == (tenant or "")


def body_ids(head: Record) -> list[str]:
    """The ids of the body chunks the head's version consists of."""
    meta = head.metadata
    count = int(meta.get(CHUNK_COUNT, 1))
    document_id, tenant, content_hash = str(meta[DOC_ID]), meta.get(TENANT), str(meta[CONTENT_HASH])
    return [body_id(document_id, i, tenant, content_hash) for i in range(1, count)]


def assemble(head: Record, bodies: Sequence[Record]) -> Document:
    """The document a head and its body chunks hold. Raises `IncompleteDocument` rather than ever
    returning a partial text: every chunk of the head's version must be there."""
    meta = head.metadata
    document_id = str(meta[DOC_ID])
    count = int(meta.get(CHUNK_COUNT, 1))
    content_hash = meta.get(CONTENT_HASH)
    by_index = {
        int(r.metadata[CHUNK_INDEX]): r for r in bodies if r.metadata.get(CONTENT_HASH) == content_hash
    }
    by_index[0] = head
    if len(by_index) != count or set(by_index) != set(range(count)):
        raise IncompleteDocument(
            f"document {document_id!r} has {len(by_index)} of its {count} chunks: an ingest was "
            "interrupted or a delete is under way; add the document again to repair it"
        )
    content: list[str] = []
    position = 0
    for index in range(count):
        record = by_index[index]
        start, end = int(record.metadata[START]), int(record.metadata[END])
        if start > position:
            raise IncompleteDocument(f"document {document_id!r}: chunk {index} leaves a gap in the text")
        if end > position:
            content.append(record.text[position - start:])
            position = end
    return Document(id=document_id, title=str(meta.get(TITLE, "")), content="".join(content),
                    metadata=user_metadata(meta))

"""Encryption at rest cannot be half-applied: titles are sealed with the text, every sealed
collection carries a key check, and a wrong key, a missing key or ciphertext read in clear is a
typed `EncryptionKeyMismatch` before any data is returned or written.

A `MemoryStore` without a cipher over a folder stands for a remote store: it keeps what it is
given, across instances (as a server would across processes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vpa.config import load_config
from vpa.crypto import (
    KEY_CHECK_MARK,
    TEXT_PREFIX,
    TITLE_AAD,
    TITLE_KEY,
    DecryptionError,
    EncryptedTextStore,
    EncryptionKeyMismatch,
    SealedDataGuard,
    TextSealer,
    generate_key,
    key_check,
    mark_fingerprint,
    parse_key,
    protect_store,
    sealed_capabilities,
    split_fingerprint,
)
from vpa.errors import (
    DimensionMismatch,
    EmbedderMismatch,
    LimitExceeded,
    RecordTooLarge,
    UnsupportedFilter,
    ValidationError,
)
from vpa.models import EmbedderFingerprint, Record, StoreCapabilities
from vpa.rag import TITLE, RAGSystem, create_enhanced_rag_system
from vpa.stores.memory import MemoryStore
from vpa.validation import record_bytes

KEY_A = generate_key()
KEY_B = generate_key()
DOC = ("recipe", "Grandma's secret marmalade", "Seville oranges, sugar and patience. " * 12)


def _system(folder: Path, key: str | None, **overrides: Any) -> RAGSystem:
    options: dict[str, Any] = {
        "data_dir": folder / "data", "embedder": "hashing", "chunk_size": 120, "chunk_overlap": 20,
        "log_level": "WARNING", **overrides,
    }
    if key is not None:
        options.update(encrypt_at_rest=True, encryption_key=key)
    return create_enhanced_rag_system(load_config(options, environ={}), store=MemoryStore(folder / "remote"))


async def _raw_records(folder: Path, collection: str = "vpa") -> list[Record]:
    """Everything the 'remote' store holds, as stored (read around any wrapper)."""
    store = MemoryStore(folder / "remote")
    try:
        info = await store.open_collection(collection)
        hits = await store.query(collection, np.ones(info.dimension), 1000)
        return await store.get(collection, [h.id for h in hits])
    finally:
        await store.close()


async def _ingest(folder: Path, key: str | None) -> None:
    async with _system(folder, key) as rag:
        await rag.add_document(*DOC, {"lang": "en"})


async def _refused_everywhere(rag: RAGSystem, match: str) -> None:
    """Every entry point of the RAG layer raises before returning or writing anything."""
    calls = [
        ("initialize", rag.initialize),
        ("add", lambda: rag.add_document("other", "Other", "written under the wrong key")),
        ("search", lambda: rag.search_knowledge("u", "marmalade oranges")),
        ("get", lambda: rag.get_document(DOC[0])),
        ("delete", lambda: rag.delete_document(DOC[0])),
        ("stats", rag.get_system_stats),
    ]
    for what, call in calls:
        with pytest.raises(EncryptionKeyMismatch, match=match):
            await call()
        assert what  # (names the call in a failure's traceback)


async def _readable_with(folder: Path, key: str | None) -> None:
    async with _system(folder, key) as rag:
        document = await rag.get_document(DOC[0])
        assert document is not None and (document.title, document.content) == (DOC[1], DOC[2])
        hits = await rag.search_knowledge("u", "Seville oranges marmalade", filters={"lang": "en"})
        assert hits and hits[0].title == DOC[1] and hits[0].content in DOC[2]
        assert (await rag.get_system_stats())["documents"] == 1


# --- titles ----------------------------------------------------------------------------------


def test_the_rag_title_key_is_the_one_sealed():
    assert TITLE == TITLE_KEY


async def test_title_and_text_are_sealed_on_disk_and_opened_on_read(tmp_path):
    await _ingest(tmp_path, KEY_A)
    raw = await _raw_records(tmp_path)
    assert raw
    for record in raw:
        assert record.text.startswith(TEXT_PREFIX) and record.metadata[TITLE].startswith(TEXT_PREFIX)
        assert record.metadata["lang"] == "en"  # other metadata stays filterable
    stored = b"".join(p.read_bytes() for p in (tmp_path / "remote").iterdir() if p.is_file())
    for secret in (b"marmalade", b"Seville", b"Grandma"):
        assert secret not in stored
    await _readable_with(tmp_path, KEY_A)


async def test_a_title_is_bound_to_its_record_and_purpose(tmp_path):
    """A sealed title moved onto another record, or into the text slot, does not open."""
    key = parse_key(KEY_A)
    store = EncryptedTextStore(MemoryStore(), key)
    await store.create_collection("c", 2)
    await store.upsert("c", [Record("a", [1, 0], "text a", {TITLE: "title a"}),
                             Record("b", [0, 1], "text b", {TITLE: "title b"})])
    a, b = await store.inner.get("c", ["a", "b"])
    await store.inner.upsert("c", [attrs.evolve(b, metadata={TITLE: a.metadata[TITLE]})])
    with pytest.raises(DecryptionError):
        await store.get("c", ["b"])
    await store.inner.upsert("c", [attrs.evolve(a, text=a.metadata[TITLE])])
    with pytest.raises(DecryptionError):
        await store.get("c", ["a"])
    assert TextSealer(key, TITLE_AAD).open("a", a.metadata[TITLE]) == "title a"


async def test_the_title_cannot_be_filtered_once_sealed():
    store = EncryptedTextStore(MemoryStore(), parse_key(KEY_A))
    await store.create_collection("c", 2)
    for call in (lambda: store.query("c", [1, 0], 3, {TITLE: "x"}),
                 lambda: store.count("c", {"$or": [{"a": 1}, {TITLE: {"$ne": "x"}}]}),
                 lambda: store.delete("c", filter={TITLE: "x"})):
        with pytest.raises(UnsupportedFilter, match="sealed"):
            await call()


# --- the key check ---------------------------------------------------------------------------


async def test_a_wrong_key_is_refused_when_the_collection_is_opened(tmp_path):
    await _ingest(tmp_path, KEY_A)
    before = await _raw_records(tmp_path)
    rag = _system(tmp_path, KEY_B)
    await _refused_everywhere(rag, "'vpa' was sealed with another key")
    await rag.shutdown()
    assert await _raw_records(tmp_path) == before  # nothing was written under the wrong key
    await _readable_with(tmp_path, KEY_A)


async def test_a_sealed_collection_is_refused_without_a_key(tmp_path):
    await _ingest(tmp_path, KEY_A)
    rag = _system(tmp_path, None)
    assert isinstance(rag.store, SealedDataGuard)
    await _refused_everywhere(rag, "'vpa' is encrypted at rest, but VPA_ENCRYPT_AT_REST is off")
    await rag.shutdown()
    await _readable_with(tmp_path, KEY_A)


async def test_a_clear_collection_is_refused_with_a_key(tmp_path):
    """Turning encryption on over a collection written in clear would mix both: refused."""
    await _ingest(tmp_path, None)
    rag = _system(tmp_path, KEY_A)
    await _refused_everywhere(rag, "'vpa' was created without encryption at rest")
    await rag.shutdown()
    await _readable_with(tmp_path, None)
    async with _system(tmp_path, KEY_A, collection="sealed") as rag:  # a new collection is sealed
        await rag.add_document(*DOC, {"lang": "en"})
    assert all(r.text.startswith(TEXT_PREFIX) for r in await _raw_records(tmp_path, "sealed"))


async def test_the_key_check_is_per_collection_and_hides_the_key():
    key = parse_key(KEY_A)
    checks = {key_check(key, "a"), key_check(key, "b"), key_check(parse_key(KEY_B), "a")}
    assert len(checks) == 3 and all(len(c) == 22 for c in checks)
    assert KEY_A not in key_check(key, "a") and key.hex()[:8] not in key_check(key, "a")
    fp = EmbedderFingerprint("hashing", "hashing-v1", 8)
    for original in (fp, None):
        marked = mark_fingerprint(original, 8, "CHECK")
        assert KEY_CHECK_MARK in marked.model and marked.dimension == 8
        assert split_fingerprint(marked) == (original, "CHECK")
    assert split_fingerprint(fp) == (fp, None) and split_fingerprint(None) == (None, None)


async def test_the_fingerprint_contract_holds_through_the_key_check():
    """The embedder fingerprint is still the caller's: same semantics, clean messages."""
    inner = MemoryStore()
    store = EncryptedTextStore(inner, parse_key(KEY_A))
    fp = EmbedderFingerprint("hashing", "model-a", 4)
    assert (await store.create_collection("c", 4, fingerprint=fp)).fingerprint == fp
    assert (await store.open_collection("c")).fingerprint == fp
    assert KEY_CHECK_MARK in (await inner.open_collection("c")).fingerprint.model
    with pytest.raises(EmbedderMismatch) as caught:
        await store.create_collection("c", 4, fingerprint=attrs.evolve(fp, model="model-b"))
    assert KEY_CHECK_MARK not in str(caught.value) and "hashing:model-a" in str(caught.value)
    with pytest.raises(DimensionMismatch):
        await store.create_collection("c", 5)
    assert (await store.create_collection("c", 4)).fingerprint == fp  # no fingerprint: opens it
    await store.create_collection("bare", 3)  # a collection without a fingerprint is checked too
    assert (await store.open_collection("bare")).fingerprint is None
    with pytest.raises(EncryptionKeyMismatch):
        await EncryptedTextStore(inner, parse_key(KEY_B)).open_collection("bare")
    with pytest.raises(EncryptionKeyMismatch):
        await SealedDataGuard(inner).open_collection("bare")


# --- ciphertext is never served in clear -----------------------------------------------------


async def test_ciphertext_in_an_unmarked_collection_is_refused_without_a_key(tmp_path):
    """Text sealed into a collection without a key check (as before key checks existed) raises
    rather than being served as content, on every read path."""
    await _ingest(tmp_path, None)
    sealer, titles = TextSealer(parse_key(KEY_A)), TextSealer(parse_key(KEY_A), TITLE_AAD)
    store = MemoryStore(tmp_path / "remote")
    records = await _raw_records(tmp_path)
    await store.upsert("vpa", [Record(r.id, r.vector, sealer.seal(r.id, r.text),
                                      {**r.metadata, TITLE: titles.seal(r.id, r.metadata[TITLE])})
                               for r in records])
    await store.close()
    async with _system(tmp_path, None) as rag:
        with pytest.raises(EncryptionKeyMismatch, match="is encrypted at rest"):
            await rag.search_knowledge("u", "Seville oranges")
        with pytest.raises(EncryptionKeyMismatch, match="is encrypted at rest"):
            await rag.get_document(DOC[0])


async def test_text_that_reads_as_ciphertext_is_not_stored_in_clear(tmp_path):
    async with _system(tmp_path, None) as rag:
        with pytest.raises(ValidationError, match="marker of encrypted text"):
            await rag.add_document("fake", "t", TEXT_PREFIX + "AAAA and more")
        with pytest.raises(ValidationError, match="marker of encrypted text"):
            await rag.add_document("fake", TEXT_PREFIX + "AAAA", "a title that reads as ciphertext")
        assert (await rag.add_document("fine", "t", f"quoting {TEXT_PREFIX} inside is fine")).chunks == 1


def test_the_rag_layer_picks_one_wrapper(tmp_path):
    on = load_config({"data_dir": tmp_path, "encrypt_at_rest": True, "encryption_key": KEY_A}, environ={})
    off = load_config({"data_dir": tmp_path}, environ={})
    remote = MemoryStore()
    sealed = protect_store(remote, on)
    assert isinstance(sealed, EncryptedTextStore) and sealed.inner is remote
    assert protect_store(sealed, on) is sealed and protect_store(sealed, off) is sealed
    guarded = protect_store(remote, off)
    assert isinstance(guarded, SealedDataGuard) and protect_store(guarded, off) is guarded
    self_encrypting = MemoryStore.from_config(on)
    assert protect_store(self_encrypting, on) is self_encrypting
    assert "key" not in repr(sealed).lower().replace("encryptedtextstore", "")


# --- capabilities: what fits before sealing fits after ---------------------------------------


class BoundedMemoryStore(MemoryStore):
    """A memory store declaring (and so enforcing) a record byte limit, as remote stores do."""

    capabilities = attrs.evolve(MemoryStore.capabilities, max_record_bytes=2048, max_metadata_bytes=1500)


def test_sealed_capabilities_lower_the_byte_limits_and_turn_lexical_search_off():
    inner = BoundedMemoryStore.capabilities
    caps = sealed_capabilities(inner)
    assert caps.max_record_bytes == (2048 - 106) * 3 // 4 and caps.max_metadata_bytes == (1500 - 53) * 3 // 4
    assert inner.lexical_search and not caps.lexical_search  # sealed text has no words to search
    assert attrs.evolve(caps, max_record_bytes=2048, max_metadata_bytes=1500, lexical_search=True) == inner
    assert sealed_capabilities(StoreCapabilities()).max_record_bytes is None
    assert EncryptedTextStore(BoundedMemoryStore(), parse_key(KEY_A)).capabilities == caps


_TEXT = st.one_of(
    st.integers(0, 1600).map(lambda n: "a" * n),  # ASCII grows the most when sealed (4/3)
    st.text(st.characters(codec="utf-8"), max_size=600),
)


@settings(max_examples=60, derandomize=True, deadline=None)
@given(text=_TEXT, title=_TEXT)
def test_a_record_within_the_declared_limit_fits_once_sealed(text, title):
    import asyncio

    async def run() -> None:
        store = EncryptedTextStore(BoundedMemoryStore(), parse_key(KEY_A))
        await store.create_collection("c", 2)
        record = Record("r", [1, 0], text, {TITLE: title})
        caps = store.capabilities
        metadata_bytes = len(json.dumps(record.metadata, ensure_ascii=False).encode("utf-8"))
        if record_bytes(record) <= caps.max_record_bytes and metadata_bytes <= caps.max_metadata_bytes:
            assert await store.upsert("c", [record]) == 1  # the inner store took the sealed record
            assert await store.get("c", ["r"]) == [record]
        else:  # refused by the wrapper's own (lowered) limits, before anything is sealed
            with pytest.raises((RecordTooLarge, LimitExceeded)):
                await store.upsert("c", [record])
            assert await store.inner.count("c") == 0

    asyncio.run(run())


async def test_a_record_exactly_at_the_limit_fits():
    store = EncryptedTextStore(BoundedMemoryStore(), parse_key(KEY_A))
    await store.create_collection("c", 2)
    limit = store.capabilities.max_record_bytes
    for title in ("", "a" * 100):
        base = Record("r", [1, 0], "", {TITLE: title})
        record = attrs.evolve(base, text="a" * (limit - record_bytes(base)))
        assert record_bytes(record) == limit
        assert await store.upsert("c", [record]) == 1
        with pytest.raises(RecordTooLarge):
            await store.upsert("c", [attrs.evolve(record, text=record.text + "a")])


async def test_large_batches_are_sealed_and_opened_off_the_event_loop():
    store = EncryptedTextStore(MemoryStore(), parse_key(KEY_A))
    await store.create_collection("c", 3)
    records = [Record(f"r{i}", [1, i, 2], f"text {i}", {TITLE: f"t{i}", "i": i}) for i in range(600)]
    assert await store.upsert("c", records) == 600
    assert await store.get("c", [r.id for r in records]) == records
    assert all(r.text.startswith(TEXT_PREFIX) for r in await store.inner.get("c", ["r0", "r599"]))
    hits = await store.query("c", [1, 300, 2], 300, {"i": {"$gte": 100}})
    assert len(hits) == 300 and all(h.text == f"text {h.metadata['i']}" for h in hits)


async def test_content_hashes_are_keyed_under_encryption(tmp_path):
    """A stored digest of the plaintext would let someone confirm a guessed document."""
    import hashlib

    from vpa.layout import CONTENT_HASH, head_id
    from vpa.rag import create_enhanced_rag_system

    base = {"data_dir": tmp_path / "d", "embedder": "hashing", "provider": "memory"}
    sealed = create_enhanced_rag_system({**base, "encrypt_at_rest": True, "encryption_key": KEY_A})
    await sealed.add_document("doc", "T", "a guessable text")
    digest = (await sealed.store.get(sealed.collection, [head_id("doc", None)]))[0].metadata[CONTENT_HASH]
    await sealed.shutdown()
    from vpa.models import Document

    clear = create_enhanced_rag_system({**base, "data_dir": tmp_path / "c"})
    assert digest != clear._content_hash(Document("doc", "a guessable text", "T"), None)
    assert len(digest) == len(hashlib.sha256().hexdigest())
    await clear.shutdown()


async def test_an_encrypted_memory_store_read_without_the_key_is_one_typed_error(tmp_path):
    """It used to be a UnicodeDecodeError traceback."""
    from vpa.crypto import EncryptionKeyMismatch
    from vpa.rag import create_enhanced_rag_system

    base = {"data_dir": tmp_path / "d", "embedder": "hashing", "provider": "memory"}
    sealed = create_enhanced_rag_system({**base, "encrypt_at_rest": True, "encryption_key": KEY_A})
    await sealed.add_document("doc", "T", "secret text")
    await sealed.shutdown()
    clear = create_enhanced_rag_system(base)
    with pytest.raises(EncryptionKeyMismatch, match="encrypted at rest, but VPA_ENCRYPT_AT_REST is off"):
        await clear.initialize()
    await clear.shutdown()

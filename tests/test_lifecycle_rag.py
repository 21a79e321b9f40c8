"""Listing documents and changing their metadata in place through the RAG API (store contract
1.1), on the memory store with the hashing embedder: pages and cursors, tenants, datetimes and
wide keys, every chunk changed and nothing re-embedded, encryption at rest, and a 1.0 store's
typed refusal."""

from __future__ import annotations

import asyncio
import datetime as dt

import numpy as np
import pytest
from vpa.crypto import TITLE_AAD, EncryptedTextStore, TextSealer, parse_key
from vpa.errors import (
    CollectionNotFound,
    DocumentNotFound,
    InvalidCursor,
    InvalidMetadata,
    LimitExceeded,
    UnsupportedOperation,
    ValidationError,
)
from vpa.layout import CHUNK_INDEX, DOC_ID, TENANT, TITLE, body_id, head_id
from vpa.models import Document, Record, StoreCapabilities, contract_1_1
from vpa.rag import MAX_LIST_PAGE_SIZE, RAGSystem, create_enhanced_rag_system
from vpa.stores.memory import MemoryStore

UTC = dt.UTC
KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # 32 bytes, base64: a test key only


def _doc(i: int, **metadata: object) -> Document:
    """Document ``d{i:02}``, from 1 January 2024 + ``i`` days: one chunk for even ``i``, several
    for odd (chunk size 200)."""
    words = "lorem ipsum dolor sit amet " * (2 if i % 2 == 0 else 30)
    return Document(f"d{i:02}", f"{words} number {i}", f"Title {i}",
                    {"n": i, "when": dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(days=i), **metadata})


async def _all(rag: RAGSystem, **options: object) -> list[str]:
    return [s.document_id async for s in rag.iter_documents(**options)]


@pytest.fixture
async def rag(config):
    system = create_enhanced_rag_system(config)
    await system.initialize()
    yield system
    await system.shutdown()


async def _chunks(rag: RAGSystem, document_id: str, tenant: str | None = None) -> list[Record]:
    """Every stored chunk of a document, read from the store itself (vectors included)."""
    pages = rag.store.scroll(rag.collection, {DOC_ID: document_id, TENANT: tenant or ""})
    return [r async for page in pages for r in page.records]


# --- listing -------------------------------------------------------------------------------------


async def test_pages_list_every_document_once_with_its_metadata_and_no_text(rag):
    docs = [_doc(i) for i in range(23)]
    await rag.add_documents(docs)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await rag.list_documents(page_size=5, cursor=cursor)
        assert len(page.documents) <= 5
        seen.extend(s.document_id for s in page.documents)
        pages += 1
        cursor = page.cursor
        if cursor is None:
            break
    assert sorted(seen) == [d.id for d in docs] and len(seen) == len(set(seen))
    assert pages >= 5
    by_id = {s.document_id: s async for s in rag.iter_documents()}
    for doc in docs:
        summary = by_id[doc.id]
        assert summary.title == doc.title and summary.metadata == doc.metadata  # no vpa_* keys, no text
        assert summary.chunks == len(await _chunks(rag, doc.id))
        assert (summary.chunks == 1) is (doc.metadata["n"] % 2 == 0)
        assert type(summary.metadata["when"]) is dt.datetime and summary.metadata["when"].tzinfo is not None


async def test_the_filter_is_the_search_filter_datetimes_exists_and_wide_keys(rag):
    loader_keys = {"source-url": "https://x/", "og:title": "é"}
    await rag.add_documents([_doc(i, **(loader_keys | {"source-url": f"https://x/{i}"} if i % 3 == 0 else {}))
                             for i in range(10)])
    since = {"$date": "2024-01-05T00:00:00Z"}
    assert await _all(rag, filter={"when": {"$gte": since}}) == [f"d{i:02}" for i in range(4, 10)]
    aware = dt.datetime(2024, 1, 5, 2, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # 00:00 UTC
    assert await _all(rag, filter={"when": {"$lt": aware}}) == ["d00", "d01", "d02", "d03"]
    assert await _all(rag, filter={"source-url": {"$exists": True}}) == ["d00", "d03", "d06", "d09"]
    assert await _all(rag, filter={"og:title": None}) == ["d01", "d02", "d04", "d05", "d07", "d08"]
    assert await _all(rag, filter={"when": "2024-01-05T00:00:00Z"}) == []  # a datetime never equals a string
    assert await _all(rag, filter={"$or": [{"n": 1}, {"source-url": "https://x/9"}]}) == ["d01", "d09"]


async def test_a_cursor_resumes_in_another_process_and_only_for_its_own_listing(config):
    first = create_enhanced_rag_system(config)
    await first.add_documents([_doc(i) for i in range(12)])
    page = await first.list_documents(page_size=4, filter={"n": {"$gte": 2}})
    assert [s.document_id for s in page.documents] == ["d02", "d03", "d04", "d05"]
    await first.shutdown()

    second = create_enhanced_rag_system(config)  # a new store instance over the same data folder
    try:
        rest = await second.list_documents(page_size=100, filter={"n": {"$gte": 2}}, cursor=page.cursor)
        assert [s.document_id for s in rest.documents] == [f"d{i:02}" for i in range(6, 12)]
        assert rest.cursor is None
        others = ({"filter": {"n": {"$gte": 3}}}, {"filter": None},
                  {"filter": {"n": {"$gte": 2}}, "tenant": "t"})
        for other in others:
            with pytest.raises(InvalidCursor):
                await second.list_documents(cursor=page.cursor, **other)
        for bad in ("", "not-a-cursor", 42):
            with pytest.raises(InvalidCursor):
                await second.list_documents(cursor=bad)
        for size in (0, -1, True, "10"):
            with pytest.raises(ValidationError):
                await second.list_documents(page_size=size)
        with pytest.raises(LimitExceeded):
            await second.list_documents(page_size=MAX_LIST_PAGE_SIZE + 1)
    finally:
        await second.shutdown()


async def test_documents_present_throughout_come_once_while_others_come_and_go(rag):
    stable = [_doc(i) for i in range(0, 40, 2)]
    await rag.add_documents(stable)
    churn = [_doc(i) for i in range(1, 40, 2)]
    seen: list[str] = []
    cursor = None
    step = 0
    while True:
        page = await rag.list_documents(page_size=3, cursor=cursor)
        seen.extend(s.document_id for s in page.documents)
        # between pages: other documents are added, changed and deleted, before and after the cursor
        await rag.add_documents([churn[step % len(churn)], churn[(step * 7) % len(churn)]])
        await rag.delete_document(churn[(step * 3) % len(churn)].id)
        await rag.add_document(f"zz-{step}", "t", "new text", {"n": 100 + step})
        await rag.add_document(f"a-{step}", "t", "new text", {"n": 200 + step})
        step += 1
        cursor = page.cursor
        if cursor is None:
            break
    stable_seen = [i for i in seen if i in {d.id for d in stable}]
    assert sorted(stable_seen) == sorted(d.id for d in stable) and len(stable_seen) == len(stable)
    assert len(seen) == len(set(seen))


async def test_only_complete_documents_are_listed(rag):
    await rag.add_documents([_doc(1), _doc(2)])
    info = await rag.initialize()
    # an interrupted ingest: a body chunk written, its head never
    orphan = {DOC_ID: "half", CHUNK_INDEX: 1, TENANT: "", TITLE: "Half", "vpa_content_hash": "0" * 64,
              "vpa_chunk_count": 2, "vpa_start": 0, "vpa_end": 5}
    vector = np.ones(rag.embedder.fingerprint.dimension, dtype=np.float32)
    await rag.store.upsert(info.name, [Record(body_id("half", 1, None, "0" * 64), vector, "hello", orphan)])
    assert await _all(rag) == ["d01", "d02"]


async def test_another_collection_is_listed_by_name_and_a_missing_one_is_named(rag, config):
    other = create_enhanced_rag_system(config.replace(collection="archive"), store=rag.store)
    await other.add_documents([_doc(7)])
    assert await rag.list_collections() == ["archive", "vpa"]
    assert [s.document_id for s in (await rag.list_documents("archive")).documents] == ["d07"]
    assert (await rag.list_documents()).documents == []
    with pytest.raises(CollectionNotFound):
        await rag.list_documents("nothing-here")


# --- tenants -------------------------------------------------------------------------------------

ADVERSARIAL = [
    {"vpa_tenant": "globex"},
    {"vpa_tenant": {"$ne": "acme"}},
    {"$or": [{"vpa_tenant": "globex"}, {"owner": "globex"}]},
    {"$not": {"vpa_tenant": "acme"}},
    {"owner": "globex"},
    {"vpa_document_id": "plan"},
]


async def test_a_tenant_never_lists_or_changes_another_tenants_documents(rag):
    await rag.add_document("plan", "Globex plan", "the hammock market " * 30, {"owner": "globex"},
                           tenant="globex")
    await rag.add_document("plan", "Acme plan", "anvils and rockets", {"owner": "acme"}, tenant="acme")
    await rag.add_document("plan", "Untenanted", "nobody's", {"owner": "none"})
    await rag.add_document("memo", "Globex memo", "spring", {"owner": "globex"}, tenant="globex")
    assert [(s.title, s.metadata) for s in (await rag.list_documents(tenant="acme")).documents] == [
        ("Acme plan", {"owner": "acme"})]
    assert [s.title for s in (await rag.list_documents()).documents] == ["Untenanted"]  # None: the untenanted
    for spec in ADVERSARIAL:
        assert [s.title async for s in rag.iter_documents(filter=spec, tenant="acme")] in (["Acme plan"], [])
        changed = await rag.update_document_metadata(filter=spec, tenant="acme", set={"touched": True})
        assert changed.documents <= 1
    globex = (await rag.list_documents(tenant="globex")).documents
    assert [s.title for s in globex] == ["Globex memo", "Globex plan"]
    assert all("touched" not in s.metadata for s in globex)
    assert (await rag.get_document("plan")).metadata == {"owner": "none"}
    cursor = (await rag.list_documents(tenant="globex", page_size=1)).cursor
    assert cursor is not None
    for other in ("acme", None):
        with pytest.raises(InvalidCursor):
            await rag.list_documents(tenant=other, cursor=cursor, page_size=1)
    with pytest.raises(DocumentNotFound):
        await rag.update_document_metadata("nothing", tenant="acme", set={"x": 1})
    await rag.delete_document("plan", tenant="acme")
    with pytest.raises(DocumentNotFound):  # the id exists, but for other tenants only
        await rag.update_document_metadata("plan", tenant="acme", set={"x": 1})
    assert all("x" not in r.metadata for r in await _chunks(rag, "plan", "globex"))


# --- metadata updates ----------------------------------------------------------------------------


async def test_an_update_changes_every_chunk_and_nothing_else(rag):
    await rag.add_documents([_doc(1), _doc(2)])
    before = {r.id: r for r in await _chunks(rag, "d01")}
    assert len(before) >= 2
    when = dt.datetime(2025, 6, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=-4)))
    result = await rag.update_document_metadata(
        "d01", set={"status": "reviewed", "page.number": 3, "Größe": 1.5, "reviewed": when, "n": None},
        unset=["when"],
    )
    assert (result.documents, result.chunks) == (1, len(before))
    after = {r.id: r for r in await _chunks(rag, "d01")}
    assert after.keys() == before.keys()
    for rid, record in after.items():
        assert np.array_equal(record.vector, before[rid].vector) and record.text == before[rid].text
        reserved = {k: v for k, v in record.metadata.items() if k.startswith("vpa_")}
        assert reserved == {k: v for k, v in before[rid].metadata.items() if k.startswith("vpa_")}
    expected = {"status": "reviewed", "page.number": 3, "Größe": 1.5, "reviewed": when}
    document = await rag.get_document("d01")
    assert document.metadata == expected and document.content == _doc(1).content
    assert document.metadata["reviewed"].utcoffset() == dt.timedelta(0)  # back in UTC, the same instant
    assert (await rag.get_document("d02")).metadata == _doc(2).metadata
    hits = await rag.search_knowledge("u", "lorem ipsum", top_k=10, filters={"status": "reviewed"},
                                      group_by="chunk")
    assert {h.document_id for h in hits} == {"d01"} and len(hits) == len(before)  # every chunk, found by it


async def test_an_update_by_filter_reaches_every_matching_document(rag):
    await rag.add_documents([_doc(i) for i in range(30)])
    result = await rag.update_document_metadata(filter={"n": {"$gte": 10}}, set={"late": True})
    assert result.documents == 20
    assert result.chunks == sum([len(await _chunks(rag, f"d{i:02}")) for i in range(10, 30)])
    assert await _all(rag, filter={"late": True}) == [f"d{i:02}" for i in range(10, 30)]
    # the filter may name the field it changes: each document once
    flipped = await rag.update_document_metadata(filter={"late": True}, set={"late": False})
    assert flipped.documents == 20 and await _all(rag, filter={"late": True}) == []
    everything = await rag.update_document_metadata(filter={}, unset=["late", "when"])
    assert everything.documents == 30
    assert all([set(s.metadata) == {"n"} async for s in rag.iter_documents()])
    assert (await rag.update_document_metadata(filter={"n": 1000}, set={"x": 1})).documents == 0


async def test_a_search_after_an_update_sees_it(rag):
    await rag.add_documents([_doc(1), _doc(2)])
    assert await rag.search_knowledge("u", "lorem ipsum", filters={"topic": "x"}) == []  # cached: empty
    await rag.update_document_metadata("d02", set={"topic": "x"})
    found = await rag.search_knowledge("u", "lorem ipsum", filters={"topic": "x"})
    assert [r.document_id for r in found] == ["d02"]


async def test_refusals_come_before_anything_is_written(rag, config):
    await rag.add_documents([_doc(1), _doc(2)])
    for bad in ({"set": {"vpa_title": "x"}}, {"unset": ["vpa_document_id"]}, {"set": {TENANT: "other"}}):
        with pytest.raises(InvalidMetadata, match="reserved"):
            await rag.update_document_metadata("d01", **bad)
    for bad in ({"set": {"$x": 1}}, {"set": {"k": {"nested": 1}}}, {"set": {"k": dt.datetime(2024, 1, 1)}},
                {"set": {"a": 1}, "unset": ["a"]}, {}):
        with pytest.raises(ValidationError):
            await rag.update_document_metadata("d01", **bad)
    with pytest.raises(ValidationError, match="not both"):
        await rag.update_document_metadata("d01", filter={}, set={"a": 1})
    with pytest.raises(ValidationError):
        await rag.update_document_metadata(set={"a": 1})
    # over the store's bounds once merged (VPA's own keys count): refused, by filter before any
    # document is changed
    small = create_enhanced_rag_system(config.replace(collection="small"), store=SmallStore())
    await small.add_documents([Document("a", "text", "", {"k1": 1}),
                               Document("b", "text", "", {"k1": 1, "k2": 2})])
    with pytest.raises(LimitExceeded, match="max_metadata_keys"):  # b would hold 5 keys of its own, a 4
        await small.update_document_metadata(filter={}, set={"k3": 3, "k4": 4, "k5": 5})
    assert [s.metadata async for s in small.iter_documents()] == [{"k1": 1}, {"k1": 1, "k2": 2}]
    assert (await small.update_document_metadata("a", set={"k3": 3})).documents == 1
    await small.shutdown()


class SmallStore(MemoryStore):
    """The memory store with room for 12 metadata keys: 8 of VPA's own and 4 of the document's."""

    capabilities = contract_1_1(exact=True, native_update=True, max_metadata_keys=12)


async def test_adding_a_document_again_restores_the_metadata_it_was_added_with(rag):
    doc = _doc(3)
    await rag.add_documents([doc])
    await rag.update_document_metadata(doc.id, set={"status": "x"}, unset=["n"])
    again = await rag.add_documents([doc])
    assert not again[0].unchanged and again[0].chunks == len(await _chunks(rag, doc.id))
    assert (await rag.get_document(doc.id)).metadata == doc.metadata
    assert all({k: v for k, v in r.metadata.items() if not k.startswith("vpa_")} == doc.metadata
               for r in await _chunks(rag, doc.id))
    assert (await rag.add_documents([doc]))[0].unchanged  # nothing to restore now


async def test_concurrent_updates_of_different_documents_are_all_kept(rag):
    await rag.add_documents([_doc(i) for i in range(8)])
    await asyncio.gather(*(rag.update_document_metadata(f"d{i:02}", set={f"k{i}": i}) for i in range(8)))
    for i in range(8):
        assert (await rag.get_document(f"d{i:02}")).metadata[f"k{i}"] == i


# --- stores: encryption at rest, contract 1.0 ----------------------------------------------------


async def test_under_encryption_at_rest_titles_open_and_text_stays_sealed(config):
    key = parse_key(KEY)
    inner = MemoryStore()
    rag = create_enhanced_rag_system(config, store=EncryptedTextStore(inner, key))
    await rag.add_documents([_doc(1), _doc(2), _doc(3)])
    assert [(s.document_id, s.title) async for s in rag.iter_documents(page_size=1)] == [
        ("d01", "Title 1"), ("d02", "Title 2"), ("d03", "Title 3")]
    await rag.update_document_metadata("d01", set={"status": "done"})
    await rag.update_document_metadata(filter={"n": {"$gte": 2}}, set={"late": True})
    assert (await rag.get_document("d01")).content == _doc(1).content
    assert (await rag.get_document("d03")).metadata["late"] is True
    stored = await inner.get(rag.collection, [head_id("d01", None)])
    assert stored[0].text.startswith("vpa-enc:v1:") and stored[0].metadata[TITLE].startswith("vpa-enc:v1:")
    assert stored[0].metadata["status"] == "done"
    # a title changed through the store itself is sealed for each record it is written to
    sealed = rag.store
    assert await sealed.update(rag.collection, filter={DOC_ID: "d02"}, set={TITLE: "New title"}) >= 1
    records = await inner.get(rag.collection, [head_id("d02", None)])
    opened = TextSealer(key, TITLE_AAD).open(records[0].id, records[0].metadata[TITLE])
    assert opened == "New title"
    assert [s.title async for s in rag.iter_documents(filter={"n": 2})] == ["New title"]
    await rag.shutdown()


class LegacyStore(MemoryStore):
    """A store that declares contract 1.0 only."""

    capabilities = StoreCapabilities(exact=True, persistent=True)


async def test_a_1_0_store_refuses_listing_and_updates_by_name(config):
    rag = create_enhanced_rag_system(config, store=LegacyStore())
    await rag.add_documents([Document("a", "text", "", {"k": 1})])
    with pytest.raises(UnsupportedOperation, match=r"1\.1"):
        await rag.list_documents()
    with pytest.raises(UnsupportedOperation, match=r"1\.1"):
        await rag.update_document_metadata("a", set={"k": 2})
    with pytest.raises(UnsupportedOperation):
        [s async for s in rag.iter_documents()]
    assert (await rag.add_documents([Document("a", "text", "", {"k": 1})]))[0].unchanged  # ingest as before
    assert (await rag.get_document("a")).metadata == {"k": 1}
    await rag.shutdown()

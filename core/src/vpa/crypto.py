"""Encryption at rest: AES-256-GCM (the ``cryptography`` package), key from configuration.

``VPA_ENCRYPTION_KEY`` holds 32 random bytes, base64 (standard or URL-safe) or hex encoded — for
example the output of ``openssl rand -base64 32``. Anything else is refused with a `ConfigError`
(a passphrase is not a key). The key is never logged: `VPAConfig` keeps it out of ``repr``.

Each use is bound to its own associated data, so a ciphertext cannot be moved between them:

- `AESGCMCipher` is the memory store's ``Cipher`` (``encrypt(bytes) -> bytes``): every snapshot
  and journal frame is sealed as ``version byte ‖ 96-bit random nonce ‖ ciphertext ‖ 128-bit tag``.
- `EncryptedTextStore` wraps a store that does not encrypt on its own (a remote one) for the RAG
  layer: each record's text and its title (the reserved ``vpa_title`` metadata value) are sealed,
  bound to the record id (a ciphertext copied onto another record — another tenant's — fails to
  open), and stored as ``vpa-enc:v1:<base64>``; hits, records and scroll pages read back are
  opened again. ``update`` (contract 1.1) never touches the sealed text; a new title is sealed
  for each record it is written to.
  Ids, vectors and the other metadata stay in clear, because the store must look up, search and
  filter them; the text and title are therefore no longer searchable or filterable by the store.

Encryption cannot be half-applied to a collection. `EncryptedTextStore` creates every collection
with a **key check** — a MAC of the collection's name under the key — appended to its embedder
fingerprint's model (``<model>|vpa-sealed:v1:<check>``), which every store persists with the
collection's definition and which searches never see. Opening a collection checks it before any
record is read or written: another key, or a collection created in clear, raises
`EncryptionKeyMismatch`. With encryption at rest off, the RAG layer reads through `SealedDataGuard`,
which refuses a collection carrying a key check, and any text or title that is ciphertext, with the
same error — ciphertext is never served as content.

Random 96-bit nonces are safe for far more messages than one key should ever seal (NIST's bound
is 2**32 per key); rotate the key by re-ingesting into a new collection.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from vpa.errors import (
    CollectionNotFound,
    ConfigError,
    DependencyMissing,
    DimensionMismatch,
    EmbedderMismatch,
    StoreError,
    UnsupportedFilter,
    UnsupportedOperation,
    ValidationError,
)
from vpa.filters import FilterLike, Node, fields_used
from vpa.models import (
    CollectionInfo,
    EmbedderFingerprint,
    HealthStatus,
    Hit,
    Metric,
    Page,
    Record,
    StoreCapabilities,
)
from vpa.stores.base import DEFAULT_PAGE_SIZE, VectorStore

KEY_BYTES = 32
NONCE_BYTES = 12
VERSION = b"\x01"
TEXT_PREFIX = "vpa-enc:v1:"
MEMORY_AAD = b"vpa/memory-store/v1"
TEXT_AAD = b"vpa/record-text/v1:"
TITLE_AAD = b"vpa/record-title/v1:"
KEY_CHECK_LABEL = b"vpa/key-check/v1:"
#: Separates an embedder's model from the key check in a sealed collection's fingerprint.
KEY_CHECK_MARK = "|vpa-sealed:v1:"
#: The fingerprint name that carries a key check for a collection created without a fingerprint.
NO_FINGERPRINT = "vpa-none"
#: The RAG layer's reserved title key (`vpa.layout.TITLE`): sealed like the text.
TITLE_KEY = "vpa_title"
#: What sealing a string of n UTF-8 bytes adds at most to its JSON, beyond n / 3: it becomes the
#: marker (11) and base64 of n + 29 bytes (version, nonce, tag), at most (4n + 124) / 3 characters,
#: where its clear JSON took at least n: 11 + 124 / 3 < 53.
SEAL_GROWTH = 53
#: Batches larger than this are sealed and opened off the event loop.
OFFLOAD_RECORDS = 256


class DecryptionError(StoreError):
    """Stored data could not be decrypted: wrong key, or the data was altered."""

    code = "decryption_failed"


class EncryptionKeyMismatch(DecryptionError):
    """The configured key (or its absence) is not the one a collection was sealed with. Raised
    when the collection is opened, before any record is read or written."""

    code = "encryption_key_mismatch"


def sealed_without_key(what: str) -> EncryptionKeyMismatch:
    """The error for encrypted data met with encryption at rest off (``what``: "collection 'x'")."""
    return EncryptionKeyMismatch(
        f"{what} is encrypted at rest, but VPA_ENCRYPT_AT_REST is off: set it, and VPA_ENCRYPTION_KEY "
        "to the key it was sealed with"
    )


def parse_key(value: str | bytes | None) -> bytes:
    """The 32-byte key from its base64 or hex text; `ConfigError` names the variable otherwise."""
    if value is None or value == "":
        raise ConfigError("VPA_ENCRYPT_AT_REST is on but VPA_ENCRYPTION_KEY is not set")
    if isinstance(value, bytes):
        if len(value) == KEY_BYTES:
            return value
        value = value.decode("ascii", "replace")
    text = value.strip()
    candidates: list[bytes] = []
    if len(text) == 2 * KEY_BYTES:
        with contextlib.suppress(ValueError):
            candidates.append(bytes.fromhex(text))
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        with contextlib.suppress(binascii.Error, ValueError):
            candidates.append(decode(text + "=" * (-len(text) % 4)))
    for key in candidates:
        if len(key) == KEY_BYTES:
            return key
    raise ConfigError(
        "VPA_ENCRYPTION_KEY must be 32 random bytes, base64 or hex encoded (e.g. `openssl rand -base64 32`)"
    )


def generate_key() -> str:
    """A new random key, base64 encoded, ready for ``VPA_ENCRYPTION_KEY``."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


class AESGCMCipher:
    """AES-256-GCM with a random nonce per message; ``aad`` binds every message to a purpose."""

    def __init__(self, key: bytes, aad: bytes = MEMORY_AAD) -> None:
        try:
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise DependencyMissing(
                "encryption at rest needs the `cryptography` package: pip install 'vpa-core[server]'"
            ) from exc
        if len(key) != KEY_BYTES:
            raise ConfigError("an AES-256 key is 32 bytes")
        self._aead = AESGCM(key)
        self._aad = aad
        self._invalid_tag = InvalidTag  # imported once: decrypt runs for every hit read back

    def __repr__(self) -> str:  # never show the key
        return f"AESGCMCipher(aad={self._aad!r})"

    def encrypt(self, data: bytes, aad: bytes | None = None) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return VERSION + nonce + self._aead.encrypt(nonce, data, self._aad + (aad or b""))

    def decrypt(self, data: bytes, aad: bytes | None = None) -> bytes:
        if len(data) < 1 + NONCE_BYTES + 16 or data[:1] != VERSION:
            raise DecryptionError(
                "stored data is not VPA-encrypted (was it written without encryption at rest?)"
            )
        nonce, sealed = data[1 : 1 + NONCE_BYTES], data[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, sealed, self._aad + (aad or b""))
        except self._invalid_tag:
            raise DecryptionError(
                "stored data cannot be decrypted: wrong VPA_ENCRYPTION_KEY, or it was altered"
            ) from None


def cipher_from_config(config: Any, aad: bytes = MEMORY_AAD) -> AESGCMCipher | None:
    """The cipher for ``config``, or None when ``encrypt_at_rest`` is off."""
    if not config.encrypt_at_rest:
        return None
    return AESGCMCipher(parse_key(config.encryption_key), aad)


# --- record text for remote stores -----------------------------------------------------------

T = TypeVar("T")


def is_sealed(value: Any) -> bool:
    """Whether a stored text or title value is VPA ciphertext (``vpa-enc:v1:...``)."""
    return isinstance(value, str) and value.startswith(TEXT_PREFIX)


class TextSealer:
    """Seals and opens strings bound to a record id (and to a purpose: text or title)."""

    def __init__(self, key: bytes, aad: bytes = TEXT_AAD) -> None:
        self._cipher = AESGCMCipher(key, aad)

    def seal(self, record_id: str, text: str) -> str:
        sealed = self._cipher.encrypt(text.encode("utf-8"), record_id.encode("utf-8"))
        return TEXT_PREFIX + base64.b64encode(sealed).decode("ascii")

    def open(self, record_id: str, text: str) -> str:
        """The clear text. A value that is not ciphertext raises `DecryptionError`: a sealed
        collection holds nothing in clear, so clear text there was written around the seal."""
        if not is_sealed(text):
            raise DecryptionError(
                f"record {record_id!r} holds clear text in a collection sealed at rest "
                "(was it written without the key?)"
            )
        try:
            sealed = base64.b64decode(text[len(TEXT_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise DecryptionError(f"record {record_id!r} holds a malformed encrypted text") from None
        return self._cipher.decrypt(sealed, record_id.encode("utf-8")).decode("utf-8")


def key_check(key: bytes, collection: str) -> str:
    """The key check stored with a sealed collection: HMAC-SHA256 of its name, 128 bits, base64url.
    It proves which key sealed the collection and reveals nothing about the key."""
    mac = hmac.new(key, KEY_CHECK_LABEL + collection.encode("utf-8"), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def mark_fingerprint(
    fingerprint: EmbedderFingerprint | None, dimension: int, check: str
) -> EmbedderFingerprint:
    """The fingerprint a sealed collection is stored with: the embedder's, with the key check."""
    if fingerprint is None:
        return EmbedderFingerprint(NO_FINGERPRINT, KEY_CHECK_MARK + check, dimension)
    return attrs.evolve(fingerprint, model=fingerprint.model + KEY_CHECK_MARK + check)


def split_fingerprint(
    fingerprint: EmbedderFingerprint | None,
) -> tuple[EmbedderFingerprint | None, str | None]:
    """The embedder's own fingerprint and the key check (None for a collection created in clear)."""
    if fingerprint is None or KEY_CHECK_MARK not in fingerprint.model:
        return fingerprint, None
    model, _, check = fingerprint.model.rpartition(KEY_CHECK_MARK)
    if fingerprint.name == NO_FINGERPRINT and not model:
        return None, check
    return attrs.evolve(fingerprint, model=model), check


def sealed_capabilities(caps: StoreCapabilities) -> StoreCapabilities:
    """The capabilities of a store seen through `EncryptedTextStore`: the inner store's, with the
    byte limits lowered so that a record within them still fits once its text and title are sealed.

    Sealing a string of n UTF-8 bytes stores at most n/3 + `SEAL_GROWTH` more bytes of JSON (base64
    and the marker, nonce and tag). Text and title together are within the record's bytes, so a
    record of R bytes becomes at most 4R/3 + 2 * SEAL_GROWTH: R <= 3 (M - 2 * SEAL_GROWTH) / 4 fits M.
    """
    changes: dict[str, Any] = {
        "max_metadata_bytes": max(1, (caps.max_metadata_bytes - SEAL_GROWTH) * 3 // 4),
        # The store holds ciphertext: its words cannot be searched (lexical and hybrid queries are
        # refused by name rather than answered over base64).
        "lexical_search": False,
        "native_fusion": False,
    }
    if caps.max_record_bytes is not None:
        changes["max_record_bytes"] = max(1, (caps.max_record_bytes - 2 * SEAL_GROWTH) * 3 // 4)
    return attrs.evolve(caps, **changes)


class _StoreView(VectorStore):
    """A store seen through another: a real `VectorStore` whose backend is the inner store's
    public API. Attributes it does not define (a store's ``path``, say) are the inner store's."""

    def __init__(self, store: VectorStore) -> None:
        super().__init__()
        self.inner = store
        self.capabilities = store.capabilities

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (during construction or unpickling)
            raise AttributeError(name)
        return getattr(self.inner, name)

    async def _describe_collection(self, name: str) -> CollectionInfo | None:
        try:
            return await self.inner.open_collection(name)
        except CollectionNotFound:
            return None

    async def _create_collection(self, info: CollectionInfo) -> None:
        await self.inner.create_collection(
            info.name, info.dimension, metric=info.metric, fingerprint=info.fingerprint
        )

    async def _list_collections(self) -> list[str]:
        return await self.inner.list_collections()

    async def _drop_collection(self, name: str) -> bool:
        return await self.inner.drop_collection(name)

    async def _upsert(self, info: CollectionInfo, records: list[Record]) -> None:
        await self.inner.upsert(info.name, records)

    async def _query(self, info: CollectionInfo, vector: Any, top_k: int, node: Node | None) -> list[Hit]:
        return await self.inner.query(info.name, vector, top_k, node)

    async def _get(self, info: CollectionInfo, ids: list[str]) -> list[Record]:
        return await self.inner.get(info.name, ids)

    async def _lexical_query(
        self, info: CollectionInfo, text: str, terms: list[str], top_k: int, node: Node | None
    ) -> list[Hit]:
        return await self.inner.lexical_query(info.name, text, top_k, node)

    async def _hybrid_query(
        self, info: CollectionInfo, vector: Any, text: str, terms: list[str], top_k: int, node: Node | None,
        fusion: str, alpha: float,
    ) -> list[Hit]:
        return await self.inner.hybrid_query(info.name, vector, text, top_k, node, fusion=fusion, alpha=alpha)

    async def _delete(self, info: CollectionInfo, ids: list[str] | None, node: Node | None) -> int:
        return await self.inner.delete(info.name, ids=ids, filter=node)

    async def _count(self, info: CollectionInfo, node: Node | None) -> int:
        return await self.inner.count(info.name, node)

    async def _scroll(
        self, info: CollectionInfo, node: Node | None, limit: int, after: str | None, with_vectors: bool
    ) -> tuple[list[Record], str | None]:
        """One page of the inner store's own scroll; its cursor is the position (the view's base
        class binds it again to this collection and filter)."""
        page = await self.inner.scroll_page(
            info.name, node, batch_size=limit, cursor=after, with_vectors=with_vectors
        )
        return page.records, page.cursor

    async def _update(
        self,
        info: CollectionInfo,
        ids: list[str] | None,
        node: Node | None,
        set: dict[str, Any],  # the contract's name
        unset: list[str],
    ) -> int:
        """The inner store's own update (native or its read-modify-write)."""
        return await self.inner.update(info.name, ids, _every(ids, node), set=set, unset=unset)

    async def health(self) -> HealthStatus:
        return await self.inner.health()

    async def settle(self, collection: str) -> None:
        await self.inner.settle(collection)

    async def close(self) -> None:
        self._collections.clear()
        await self.inner.close()


def _every(ids: list[str] | None, node: Node | None) -> Node | dict[str, Any] | None:
    """The filter to pass on: ``{}`` (every record) where the caller gave no ids and an empty
    filter, since an update or scroll with neither is refused."""
    return {} if ids is None and node is None else node


async def _maybe_offload(items: Sequence[Any], work: Callable[[], T]) -> T:
    return work() if len(items) <= OFFLOAD_RECORDS else await asyncio.to_thread(work)


class EncryptedTextStore(_StoreView):
    """A store seen through encryption at rest: ``upsert`` seals each record's text and title,
    ``query`` and ``get`` open them, and every collection carries a key check (see the module).

    It is a `VectorStore` of its own: input is validated against its capabilities (the inner
    store's, byte limits lowered by `sealed_capabilities`) before anything is sealed, so the
    conformance suite holds it to the contract like any store. ``vpa_title`` cannot be filtered
    (`UnsupportedFilter`): the store only holds its ciphertext."""

    #: It encrypts what it stores: the RAG layer does not wrap it again.
    encrypts_at_rest = True

    def __init__(self, store: VectorStore, key: bytes) -> None:
        super().__init__(store)
        self.capabilities = sealed_capabilities(store.capabilities)
        self._key = key
        self._text = TextSealer(key, TEXT_AAD)
        self._title = TextSealer(key, TITLE_AAD)
        self._checks: dict[str, str] = {}

    @classmethod
    def from_config(cls, store: VectorStore, config: Any) -> EncryptedTextStore:
        return cls(store, parse_key(config.encryption_key))

    def __repr__(self) -> str:  # never show the key
        return f"EncryptedTextStore({self.inner!r})"

    # --- the key check -----------------------------------------------------------------------

    def _check_for(self, name: str) -> str:
        check = self._checks.get(name)
        if check is None:
            check = self._checks[name] = key_check(self._key, name)
        return check

    def _verify(self, info: CollectionInfo) -> CollectionInfo:
        """The inner store's definition of a collection, key check verified and removed."""
        fingerprint, check = split_fingerprint(info.fingerprint)
        if check is None:
            raise EncryptionKeyMismatch(
                f"collection {info.name!r} was created without encryption at rest and holds clear text: "
                "ingest into a new collection to encrypt it, or turn VPA_ENCRYPT_AT_REST off"
            )
        if not hmac.compare_digest(check, self._check_for(info.name)):
            raise EncryptionKeyMismatch(
                f"collection {info.name!r} was sealed with another key: VPA_ENCRYPTION_KEY is not the key "
                "it was created with"
            )
        return attrs.evolve(info, fingerprint=fingerprint)

    async def _describe_collection(self, name: str) -> CollectionInfo | None:
        info = await super()._describe_collection(name)
        return self._verify(info) if info is not None else None

    async def _create_collection(self, info: CollectionInfo) -> None:
        marked = mark_fingerprint(info.fingerprint, info.dimension, self._check_for(info.name))
        try:
            created = await self.inner.create_collection(
                info.name, info.dimension, metric=info.metric, fingerprint=marked
            )
        except (EmbedderMismatch, DimensionMismatch):
            await self._describe_collection(info.name)  # created meanwhile: a key problem comes first
            raise
        self._verify(created)

    # --- records -----------------------------------------------------------------------------

    def _require_lexical(self, what: str) -> None:
        raise UnsupportedOperation(
            f"encryption at rest seals each record's text in the {type(self.inner).__name__}, so it cannot "
            f"answer {what}: encrypted text cannot be searched by words; use mode='dense', or a store that "
            "encrypts on its own (the memory store)"
        )

    def prepare_filter(self, spec: FilterLike) -> Node | None:
        node = super().prepare_filter(spec)
        if TITLE_KEY in fields_used(node):
            raise UnsupportedFilter(f"{TITLE_KEY} is sealed at rest: the store cannot filter on it")
        return node

    def _seal(self, record: Record) -> Record:
        metadata = record.metadata
        title = metadata.get(TITLE_KEY)
        if isinstance(title, str):
            metadata = {**metadata, TITLE_KEY: self._title.seal(record.id, title)}
        return Record(record.id, record.vector, self._text.seal(record.id, record.text), metadata)

    def _open_metadata(self, record_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
        title = metadata.get(TITLE_KEY)
        if isinstance(title, str):
            return {**metadata, TITLE_KEY: self._title.open(record_id, title)}
        return metadata

    def _open_record(self, record: Record) -> Record:
        return Record(
            record.id, record.vector, self._text.open(record.id, record.text),
            self._open_metadata(record.id, record.metadata),
        )

    def _open_hit(self, hit: Hit) -> Hit:
        return Hit(
            hit.id, hit.score, self._text.open(hit.id, hit.text), self._open_metadata(hit.id, hit.metadata)
        )

    async def _upsert(self, info: CollectionInfo, records: list[Record]) -> None:
        sealed = await _maybe_offload(records, lambda: [self._seal(r) for r in records])
        await self.inner.upsert(info.name, sealed)

    async def _query(self, info: CollectionInfo, vector: Any, top_k: int, node: Node | None) -> list[Hit]:
        hits = await self.inner.query(info.name, vector, top_k, node)
        return await _maybe_offload(hits, lambda: [self._open_hit(h) for h in hits])

    async def _get(self, info: CollectionInfo, ids: list[str]) -> list[Record]:
        records = await self.inner.get(info.name, ids)
        return await _maybe_offload(records, lambda: [self._open_record(r) for r in records])

    async def _scroll(
        self, info: CollectionInfo, node: Node | None, limit: int, after: str | None, with_vectors: bool
    ) -> tuple[list[Record], str | None]:
        records, following = await super()._scroll(info, node, limit, after, with_vectors)
        opened = await _maybe_offload(records, lambda: [self._open_record(r) for r in records])
        return opened, following

    async def _update(
        self,
        info: CollectionInfo,
        ids: list[str] | None,
        node: Node | None,
        set: dict[str, Any],  # the contract's name
        unset: list[str],
    ) -> int:
        """The inner store's update: text is never touched (it stays sealed as it was). A new
        title is sealed like every title, bound to its record's id, so it is written record by
        record (the matching ids first, by the inner store's scroll without vectors)."""
        title = set.get(TITLE_KEY)
        if not isinstance(title, str):
            return await super()._update(info, ids, node, set, unset)
        targets = ids if ids is not None else await self._matching_ids(info, node)
        changed = 0
        for record_id in targets:
            sealed = {**set, TITLE_KEY: self._title.seal(record_id, title)}
            changed += await self.inner.update(info.name, [record_id], node, set=sealed, unset=unset)
        return changed

    async def _matching_ids(self, info: CollectionInfo, node: Node | None) -> list[str]:
        ids: list[str] = []
        batch = self.inner.capabilities.max_page_size
        pages = self.inner.scroll(info.name, _every(None, node), batch_size=batch, with_vectors=False)
        async for page in pages:
            ids.extend(r.id for r in page.records)
        return ids


class SealedDataGuard(_StoreView):
    """The RAG layer's view of a store when encryption at rest is off: everything is the inner
    store's, except that a collection carrying a key check, and any text or title that is
    ciphertext, raise `EncryptionKeyMismatch` instead of being served; and text that would read
    back as ciphertext is refused on the way in (`ValidationError`)."""

    def __init__(self, store: VectorStore) -> None:
        super().__init__(store)
        self.encrypts_at_rest = bool(getattr(store, "encrypts_at_rest", False))

    def __repr__(self) -> str:
        return f"SealedDataGuard({self.inner!r})"

    @staticmethod
    def _refuse_sealed(info: CollectionInfo) -> CollectionInfo:
        if split_fingerprint(info.fingerprint)[1] is not None:
            raise sealed_without_key(f"collection {info.name!r}")
        return info

    async def _open(self, name: str) -> CollectionInfo:
        return self._refuse_sealed(await self.inner.open_collection(name))

    # The public API is the inner store's own (it validates): only checks are added.

    async def create_collection(
        self,
        name: str,
        dimension: int,
        *,
        metric: str | Metric = Metric.COSINE,
        fingerprint: EmbedderFingerprint | None = None,
    ) -> CollectionInfo:
        try:
            info = await self.inner.create_collection(name, dimension, metric=metric, fingerprint=fingerprint)
        except (EmbedderMismatch, DimensionMismatch):
            with contextlib.suppress(CollectionNotFound):
                await self._open(name)  # a sealed collection says so, rather than "another embedder"
            raise
        return self._refuse_sealed(info)

    async def open_collection(self, name: str) -> CollectionInfo:
        return await self._open(name)

    async def list_collections(self) -> list[str]:
        return await self.inner.list_collections()

    async def drop_collection(self, name: str) -> bool:
        return await self.inner.drop_collection(name)

    async def upsert(self, collection: str, records: Sequence[Record]) -> int:
        await self._open(collection)
        for record in records if not isinstance(records, Record) else ():  # the inner store refuses one
            if isinstance(record, Record) and (
                is_sealed(record.text) or is_sealed(record.metadata.get(TITLE_KEY))
            ):
                raise ValidationError(
                    f"record {record.id!r} starts with {TEXT_PREFIX!r}, the marker of encrypted text: "
                    "it cannot be stored in clear"
                )
        return await self.inner.upsert(collection, records)

    @staticmethod
    def _refuse_ciphertext(collection: str, items: Sequence[Record] | Sequence[Hit]) -> None:
        for item in items:
            if is_sealed(item.text) or is_sealed(item.metadata.get(TITLE_KEY)):
                raise sealed_without_key(f"record {item.id!r} of collection {collection!r}")

    async def query(
        self, collection: str, vector: Sequence[float], top_k: int = 10, filter: FilterLike = None
    ) -> list[Hit]:
        await self._open(collection)
        hits = await self.inner.query(collection, vector, top_k, filter)
        self._refuse_ciphertext(collection, hits)
        return hits

    async def get(self, collection: str, ids: Sequence[str]) -> list[Record]:
        await self._open(collection)
        records = await self.inner.get(collection, ids)
        self._refuse_ciphertext(collection, records)
        return records

    async def lexical_query(
        self, collection: str, text: str, top_k: int = 10, filter: FilterLike = None
    ) -> list[Hit]:
        await self._open(collection)
        hits = await self.inner.lexical_query(collection, text, top_k, filter)
        self._refuse_ciphertext(collection, hits)
        return hits

    async def hybrid_query(
        self, collection: str, vector: Sequence[float], text: str, top_k: int = 10, filter: FilterLike = None,
        *, fusion: str = "rrf", alpha: float = 0.5,
    ) -> list[Hit]:
        await self._open(collection)
        hits = await self.inner.hybrid_query(collection, vector, text, top_k, filter, fusion=fusion, alpha=alpha)
        self._refuse_ciphertext(collection, hits)
        return hits

    async def delete(
        self, collection: str, ids: Sequence[str] | None = None, filter: FilterLike = None
    ) -> int:
        await self._open(collection)
        return await self.inner.delete(collection, ids=ids, filter=filter)

    async def count(self, collection: str, filter: FilterLike = None) -> int:
        await self._open(collection)
        return await self.inner.count(collection, filter)

    async def scroll_page(
        self,
        collection: str,
        filter: FilterLike = None,
        *,
        batch_size: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
        with_vectors: bool = True,
    ) -> Page:
        """The inner store's page (and cursor); ciphertext in it is refused. (`scroll` pages
        through this method.)"""
        await self._open(collection)
        page = await self.inner.scroll_page(
            collection, filter, batch_size=batch_size, cursor=cursor, with_vectors=with_vectors
        )
        self._refuse_ciphertext(collection, page.records)
        return page

    async def update(
        self,
        collection: str,
        ids: Sequence[str] | None = None,
        filter: FilterLike = None,
        *,
        set: Mapping[str, Any] | None = None,  # the contract's name
        unset: Sequence[str] | None = None,
    ) -> int:
        """The inner store's update; a title that would read back as ciphertext is refused."""
        await self._open(collection)
        if isinstance(set, Mapping) and is_sealed(set.get(TITLE_KEY)):
            raise ValidationError(
                f"{TITLE_KEY} starts with {TEXT_PREFIX!r}, the marker of encrypted text: "
                "it cannot be stored in clear"
            )
        return await self.inner.update(collection, ids, filter, set=set, unset=unset)

    def prepare_filter(self, spec: FilterLike) -> Node | None:
        return self.inner.prepare_filter(spec)


def protect_store(store: VectorStore, config: Any) -> VectorStore:
    """The store the RAG layer uses for ``store`` under ``config``: with encryption at rest on, an
    `EncryptedTextStore` unless the store encrypts on its own (the memory store does); with it off,
    a `SealedDataGuard`, so encrypted data is refused rather than served."""
    if isinstance(store, EncryptedTextStore | SealedDataGuard):
        return store
    if config.encrypt_at_rest:
        if getattr(store, "encrypts_at_rest", False):
            return store
        return EncryptedTextStore.from_config(store, config)
    return SealedDataGuard(store)

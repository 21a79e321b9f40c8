"""Encryption at rest: AES-256-GCM (the ``cryptography`` package), key from configuration.

``VPA_ENCRYPTION_KEY`` holds 32 random bytes, base64 (standard or URL-safe) or hex encoded — for
example the output of ``openssl rand -base64 32``. Anything else is refused with a `ConfigError`
(a passphrase is not a key). The key is never logged: `VPAConfig` keeps it out of ``repr``.

Two uses, each bound to its own associated data so a ciphertext cannot be moved between them:

- `AESGCMCipher` is the memory store's ``Cipher`` (``encrypt(bytes) -> bytes``): every snapshot
  and journal frame is sealed as ``version byte ‖ 96-bit random nonce ‖ ciphertext ‖ 128-bit tag``.
- `EncryptedTextStore` wraps a remote store for the RAG layer: each record's text is sealed (bound
  to the record id, so a ciphertext copied onto another record — another tenant's — fails to open)
  and stored as ``vpa-enc:v1:<base64>``; hits and records read back are opened again. Vectors and
  metadata stay in clear, because the store must search and filter them; the text is therefore no
  longer searchable by the store itself, only through its vector.

Random 96-bit nonces are safe for far more messages than one key should ever seal (NIST's bound
is 2**32 per key); rotate the key by re-ingesting into a new collection.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
from collections.abc import Sequence
from typing import Any

import attrs

from vpa.errors import ConfigError, DependencyMissing, StoreError

KEY_BYTES = 32
NONCE_BYTES = 12
VERSION = b"\x01"
TEXT_PREFIX = "vpa-enc:v1:"
MEMORY_AAD = b"vpa/memory-store/v1"
TEXT_AAD = b"vpa/record-text/v1:"


class DecryptionError(StoreError):
    """Stored data could not be decrypted: wrong key, or the data was altered."""

    code = "decryption_failed"


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
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise DependencyMissing(
                "encryption at rest needs the `cryptography` package: pip install 'vpa-core[server]'"
            ) from exc
        if len(key) != KEY_BYTES:
            raise ConfigError("an AES-256 key is 32 bytes")
        self._aead = AESGCM(key)
        self._aad = aad

    def __repr__(self) -> str:  # never show the key
        return f"AESGCMCipher(aad={self._aad!r})"

    def encrypt(self, data: bytes, aad: bytes | None = None) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return VERSION + nonce + self._aead.encrypt(nonce, data, self._aad + (aad or b""))

    def decrypt(self, data: bytes, aad: bytes | None = None) -> bytes:
        from cryptography.exceptions import InvalidTag

        if len(data) < 1 + NONCE_BYTES + 16 or data[:1] != VERSION:
            raise DecryptionError(
                "stored data is not VPA-encrypted (was it written without encryption at rest?)"
            )
        nonce, sealed = data[1 : 1 + NONCE_BYTES], data[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, sealed, self._aad + (aad or b""))
        except InvalidTag:
            raise DecryptionError(
                "stored data cannot be decrypted: wrong VPA_ENCRYPTION_KEY, or it was altered"
            ) from None


def cipher_from_config(config: Any, aad: bytes = MEMORY_AAD) -> AESGCMCipher | None:
    """The cipher for ``config``, or None when ``encrypt_at_rest`` is off."""
    if not config.encrypt_at_rest:
        return None
    return AESGCMCipher(parse_key(config.encryption_key), aad)


# --- record text for remote stores -----------------------------------------------------------


class TextSealer:
    """Seals and opens record text, bound to the record id."""

    def __init__(self, key: bytes) -> None:
        self._cipher = AESGCMCipher(key, TEXT_AAD)

    def seal(self, record_id: str, text: str) -> str:
        sealed = self._cipher.encrypt(text.encode("utf-8"), record_id.encode("utf-8"))
        return TEXT_PREFIX + base64.b64encode(sealed).decode("ascii")

    def open(self, record_id: str, text: str) -> str:
        """The clear text; text without the marker (written before encryption was on) is returned as is."""
        if not text.startswith(TEXT_PREFIX):
            return text
        try:
            sealed = base64.b64decode(text[len(TEXT_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise DecryptionError(f"record {record_id!r} holds a malformed encrypted text") from None
        return self._cipher.decrypt(sealed, record_id.encode("utf-8")).decode("utf-8")


class EncryptedTextStore:
    """A store seen through text encryption: ``upsert`` seals each record's text, ``query`` and
    ``get`` open it. Everything else (collections, delete, count, health, capabilities) is the
    wrapped store's own."""

    def __init__(self, store: Any, key: bytes) -> None:
        self.inner = store
        self._sealer = TextSealer(key)

    @classmethod
    def from_config(cls, store: Any, config: Any) -> EncryptedTextStore:
        return cls(store, parse_key(config.encryption_key))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def upsert(self, collection: str, records: Sequence[Any]) -> int:
        sealed = [attrs.evolve(r, text=self._sealer.seal(r.id, r.text)) for r in records]
        return await self.inner.upsert(collection, sealed)

    async def query(self, collection: str, vector: Any, top_k: int = 10, filter: Any = None) -> list[Any]:
        hits = await self.inner.query(collection, vector, top_k, filter)
        return [attrs.evolve(h, text=self._sealer.open(h.id, h.text)) for h in hits]

    async def get(self, collection: str, ids: Sequence[str]) -> list[Any]:
        records = await self.inner.get(collection, ids)
        return [attrs.evolve(r, text=self._sealer.open(r.id, r.text)) for r in records]

    async def __aenter__(self) -> EncryptedTextStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.inner.close()

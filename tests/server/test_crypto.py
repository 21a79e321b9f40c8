"""AES-256-GCM for encryption at rest: keys, sealing, tampering, and the RAG layer's text sealing."""

from __future__ import annotations

import base64

import pytest
from vpa.config import load_config
from vpa.crypto import AESGCMCipher, DecryptionError, EncryptedTextStore, TextSealer, generate_key, parse_key
from vpa.errors import ConfigError
from vpa.rag import create_enhanced_rag_system
from vpa.stores.memory import MemoryStore


def test_parse_key_accepts_base64_urlsafe_and_hex():
    raw = bytes(range(32))
    for text in (
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
    ):
        assert parse_key(text) == raw
    assert len(parse_key(generate_key())) == 32
    for bad in (None, "", "hunter2", base64.b64encode(b"x" * 16).decode(), "zz" * 32):
        with pytest.raises(ConfigError):
            parse_key(bad)


def test_seal_open_tamper_and_wrong_key():
    key = parse_key(generate_key())
    cipher = AESGCMCipher(key)
    sealed = cipher.encrypt(b"payload")
    assert b"payload" not in sealed and cipher.encrypt(b"payload") != sealed  # a fresh nonce each time
    assert cipher.decrypt(sealed) == b"payload"
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(DecryptionError):
        cipher.decrypt(tampered)
    with pytest.raises(DecryptionError):
        AESGCMCipher(parse_key(generate_key())).decrypt(sealed)
    with pytest.raises(DecryptionError):  # another purpose (associated data) cannot open it
        AESGCMCipher(key, b"other").decrypt(sealed)
    with pytest.raises(DecryptionError):
        cipher.decrypt(b"plain text written before encryption was on")
    assert "key" not in repr(cipher).lower().replace("aesgcmcipher", "")


def test_text_is_bound_to_its_record_id():
    sealer = TextSealer(parse_key(generate_key()))
    sealed = sealer.seal("acme/doc#0", "secret")
    assert sealed.startswith("vpa-enc:v1:") and "secret" not in sealed
    assert sealer.open("acme/doc#0", sealed) == "secret"
    with pytest.raises(DecryptionError):  # copied onto another tenant's record, it does not open
        sealer.open("globex/doc#0", sealed)
    assert sealer.open("old#0", "written in clear") == "written in clear"


async def test_rag_seals_text_for_a_store_that_does_not_encrypt(tmp_path):
    config = load_config(
        {
            "data_dir": tmp_path,
            "embedder": "hashing",
            "encrypt_at_rest": True,
            "encryption_key": generate_key(),
        },
        environ={},
    )
    plain_store = MemoryStore(None)  # stands for a remote store: it stores what it is given
    assert not plain_store.encrypts_at_rest
    rag = create_enhanced_rag_system(config, store=plain_store)
    assert isinstance(rag.store, EncryptedTextStore)
    async with rag:
        await rag.add_document("d", "Title", "the marmalade recipe", {"k": "v"}, tenant="acme")
        raw = await plain_store.get(rag.collection, ["acme/d#0"])
        assert raw[0].text.startswith("vpa-enc:v1:") and "marmalade" not in raw[0].text
        assert raw[0].metadata["k"] == "v"  # metadata stays filterable
        assert (await rag.get_document("d", tenant="acme")).content == "the marmalade recipe"
        hits = await rag.search_knowledge("u", "marmalade recipe", filters={"k": "v"}, tenant="acme")
        assert hits[0].content == "the marmalade recipe"
        assert (await rag.get_system_stats(tenant="acme"))["documents"] == 1


def test_memory_store_from_config_encrypts_itself(tmp_path):
    config = load_config(
        {
            "data_dir": tmp_path,
            "embedder": "hashing",
            "encrypt_at_rest": True,
            "encryption_key": generate_key(),
        },
        environ={},
    )
    store = MemoryStore.from_config(config)
    assert store.encrypts_at_rest
    rag = create_enhanced_rag_system(config, store=store)
    assert rag.store is store  # no second layer of encryption
    assert not MemoryStore.from_config(load_config({"data_dir": tmp_path}, environ={})).encrypts_at_rest

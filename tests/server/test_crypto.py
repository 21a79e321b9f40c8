"""AES-256-GCM for encryption at rest: keys, sealing, tampering, and the RAG layer's text sealing."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from server_helpers import Server, base_env, ok, vpa
from vpa.config import load_config
from vpa.crypto import (
    TITLE_AAD,
    AESGCMCipher,
    DecryptionError,
    EncryptedTextStore,
    TextSealer,
    generate_key,
    parse_key,
)
from vpa.errors import ConfigError
from vpa.plugins import get_registry
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
    key = parse_key(generate_key())
    sealer = TextSealer(key)
    sealed = sealer.seal("acme/doc#0", "secret")
    assert sealed.startswith("vpa-enc:v1:") and "secret" not in sealed
    assert sealer.open("acme/doc#0", sealed) == "secret"
    with pytest.raises(DecryptionError):  # copied onto another tenant's record, it does not open
        sealer.open("globex/doc#0", sealed)
    with pytest.raises(DecryptionError):  # nor as a title: text and title have their own purposes
        TextSealer(key, TITLE_AAD).open("acme/doc#0", sealed)
    with pytest.raises(DecryptionError):  # a sealed collection holds nothing in clear
        sealer.open("old#0", "written in clear")


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
        assert raw[0].metadata["vpa_title"].startswith("vpa-enc:v1:")  # the title is sealed too
        assert raw[0].metadata["k"] == "v"  # metadata stays filterable
        document = await rag.get_document("d", tenant="acme")
        assert (document.title, document.content) == ("Title", "the marmalade recipe")
        hits = await rag.search_knowledge("u", "marmalade recipe", filters={"k": "v"}, tenant="acme")
        assert (hits[0].title, hits[0].content) == ("Title", "the marmalade recipe")
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


# --- real processes over a store that does not encrypt on its own (Qdrant, embedded) ----------

needs_qdrant = pytest.mark.skipif(
    "qdrant" not in get_registry().names("store"), reason="the vpa-qdrant plugin is not installed"
)
KEY_A, KEY_B = generate_key(), generate_key()
SEALED = {"VPA_VECTOR_DB_PROVIDER": "qdrant", "VPA_ENCRYPT_AT_REST": "true"}


def _with_key(env: dict[str, str], key: str | None) -> dict[str, str]:
    env = {k: v for k, v in env.items() if k not in ("VPA_ENCRYPT_AT_REST", "VPA_ENCRYPTION_KEY")}
    return {**env, "VPA_ENCRYPT_AT_REST": "true", "VPA_ENCRYPTION_KEY": key} if key else env


def _refused_start(server: Server, env: dict[str, str], message: str) -> None:
    """`vpa serve` under ``env`` exits at start-up, naming the problem; it never serves."""
    refused = Server(server.folder, env)
    with pytest.raises(AssertionError, match="exited with") as caught:
        refused.start()
    assert message in str(caught.value)


@needs_qdrant
def test_server_with_another_key_or_none_refuses_to_start(server_factory):
    server, made = server_factory(
        "sealed", keys={"writer": ("writer", "acme")}, **SEALED, VPA_ENCRYPTION_KEY=KEY_A
    )
    writer = made["writer"]["key"]
    with server.client(writer) as client:
        document = {"id": "d", "title": "Secret Title", "content": "the marmalade recipe"}
        ok(client.post("/documents", json=document), 201)
    server.stop()
    files = (Path(server.env["VPA_DATA_DIR"]) / "qdrant").rglob("*")
    stored = b"".join(p.read_bytes() for p in files if p.is_file())
    assert stored and b"marmalade" not in stored and b"Secret Title" not in stored

    _refused_start(server, _with_key(server.env, KEY_B), "collection 'vpa' was sealed with another key")
    _refused_start(server, _with_key(server.env, None), "collection 'vpa' is encrypted at rest")

    server.env = _with_key(server.env, KEY_A)
    server.start()
    with server.client(writer) as client:
        hits = ok(client.post("/search", json={"query": "marmalade recipe", "top_k": 5}))["results"]
        assert [(h["title"], h["content"]) for h in hits] == [("Secret Title", "the marmalade recipe")]
        assert ok(client.get("/documents/d"))["title"] == "Secret Title"
    server.stop()


@needs_qdrant
def test_cli_with_another_key_or_none_is_one_typed_line(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "recipe.txt").write_text("the marmalade recipe: Seville oranges and sugar")
    env = base_env(tmp_path / "data", **SEALED, VPA_ENCRYPTION_KEY=KEY_A)
    assert "ingested 1 documents" in vpa(env, "ingest", str(tmp_path / "docs")).stdout
    wrong = "error: collection 'vpa' was sealed with another key"
    missing = "error: collection 'vpa' is encrypted at rest, but VPA_ENCRYPT_AT_REST is off"
    for key, args, message in (
        (KEY_B, ("ingest", str(tmp_path / "docs")), wrong),
        (KEY_B, ("search", "marmalade"), wrong),
        (None, ("search", "marmalade"), missing),
        (None, ("get", "recipe.txt"), missing),
    ):
        result = vpa(_with_key(env, key), *args, check=False)
        assert result.returncode == 2 and result.stdout == "", (args, result.stdout)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(message), (args, result.stderr)
    found = vpa(env, "search", "marmalade", "--json").stdout
    assert "Seville oranges" in found and "vpa-enc:" not in found

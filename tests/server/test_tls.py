"""HTTPS when `vpa serve` is given a certificate and a key."""

from __future__ import annotations

import datetime
import ipaddress
import ssl

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from server_helpers import error, ok


def self_signed(folder):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_https(server_factory, tmp_path):
    cert, key = self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    server, made = server_factory(
        "tls",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        keys={"w": ("writer", "t")},
        scheme="https",
        verify=trust,
    )
    assert server.url.startswith("https://")
    with server.client(made["w"]["key"], verify=trust) as client:
        ok(client.post("/documents", json={"id": "tls", "content": "sent over TLS"}), 201)
        assert ok(client.get("/documents/tls"))["content"] == "sent over TLS"
        error(client.get("/stats", headers={"Authorization": "Bearer wrong"}), 401)
    with pytest.raises(httpx.TransportError):  # plain HTTP is not answered on the TLS port
        httpx.get(f"http://127.0.0.1:{server.port}/api/v1/health", timeout=5)
    with pytest.raises(httpx.ConnectError):  # and an unknown certificate is refused by a client
        httpx.get(f"{server.url}/api/v1/health", timeout=5)

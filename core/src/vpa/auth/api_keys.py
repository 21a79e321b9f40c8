"""The `api-keys` authenticator: random keys, stored only as SHA-256 hashes, in a JSON file.

A key reads ``vpa_<key id>_<secret>``. The id finds the entry; the secret's hash is compared in
constant time (``hmac.compare_digest``). Keys carry 256 bits of randomness, so a fast hash is the
right tool (as for GitHub tokens): there is nothing to brute-force. The file is rewritten
atomically; ``path=None`` keeps keys in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import attrs

from vpa.auth.base import ApiKeyInfo, Authenticator, Principal, Role
from vpa.errors import AuthenticationError, ValidationError
from vpa.hookspecs import hookimpl
from vpa.models import converter

PREFIX = "vpa"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class ApiKeyAuthenticator(Authenticator):
    name = "api-keys"

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[ApiKeyInfo, str]] = {}
        if self.path is not None and self.path.is_file():
            for entry in json.loads(self.path.read_text("utf-8")):
                info = converter.structure(entry["info"], ApiKeyInfo)
                self._keys[info.key_id] = (info, entry["sha256"])

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows = [{"info": converter.unstructure(info), "sha256": digest} for info, digest in self._keys.values()]
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def create_key(self, role: Role | str, tenant: str, name: str = "") -> tuple[ApiKeyInfo, str]:
        try:
            role = Role(role)
        except ValueError:
            raise ValidationError(f"unknown role {role!r}; use reader, writer or admin") from None
        if not tenant or not isinstance(tenant, str):
            raise ValidationError("a key needs a tenant")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        info = ApiKeyInfo(key_id, role, tenant, name, time.time())
        with self._lock:
            self._keys[key_id] = (info, _digest(secret))
            self._save()
        return info, f"{PREFIX}_{key_id}_{secret}"

    def authenticate(self, key: str | None) -> Principal:
        if not key:
            raise AuthenticationError("no API key given")
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            raise AuthenticationError("malformed API key")
        _, key_id, secret = parts
        entry = self._keys.get(key_id)
        # Compare against a dummy digest when the id is unknown, so timing does not reveal ids.
        expected = entry[1] if entry else _digest("")
        if not hmac.compare_digest(expected, _digest(secret)) or entry is None:
            raise AuthenticationError("unknown API key")
        info = entry[0]
        if info.revoked:
            raise AuthenticationError("API key has been revoked")
        return Principal(info.key_id, info.role, info.tenant, info.name)

    def revoke(self, key_id: str) -> bool:
        with self._lock:
            entry = self._keys.get(key_id)
            if entry is None or entry[0].revoked:
                return False
            self._keys[key_id] = (attrs.evolve(entry[0], revoked=True), entry[1])
            self._save()
            return True

    def list_keys(self) -> list[ApiKeyInfo]:
        return sorted((info for info, _ in self._keys.values()), key=lambda i: i.created_at)


@hookimpl
def vpa_register_authenticators(register: Any) -> None:
    register(
        "api-keys",
        lambda config: ApiKeyAuthenticator(Path(config.data_dir) / "keys.json"),
        description="hashed API keys with roles and a tenant, in VPA_DATA_DIR/keys.json",
    )

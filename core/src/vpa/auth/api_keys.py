"""The `api-keys` authenticator: random keys, stored only as SHA-256 hashes, in a JSON file.

A key reads ``vpa_<key id>_<secret>``. The id finds the entry; the secret's hash is compared in
constant time (``hmac.compare_digest``). Keys carry 256 bits of randomness, so a fast hash is the
right tool (as for GitHub tokens): there is nothing to brute-force. The file is rewritten
atomically and is private (0600, in a 0700 folder, whatever the umask); ``path=None`` keeps keys
in memory. A stored key whose tenant is not a valid tenant name (a file edited by hand) is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import attrs

from vpa.auth.base import (
    ApiKeyInfo,
    Authenticator,
    Principal,
    Role,
    check_key_name,
    check_key_scope,
    key_problem,
)
from vpa.errors import AuthenticationError
from vpa.files import PRIVATE_FILE, PRIVATE_FOLDER
from vpa.hookspecs import hookimpl
from vpa.log import get_logger
from vpa.models import converter

PREFIX = "vpa"

log = get_logger("vpa.auth")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def ensure_private_folder(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700 whatever the umask. A folder that exists already
    is left as it is, with a warning when others may read it (it holds key hashes and documents)."""
    if not path.is_dir():
        path.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
        os.chmod(path, PRIVATE_FOLDER)
        return path
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        log.warning("auth.folder_not_private", folder=str(path), mode=oct(mode), hint="chmod 700")
    return path


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
        ensure_private_folder(self.path.parent)
        rows = [
            {"info": converter.unstructure(info), "sha256": digest} for info, digest in self._keys.values()
        ]
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys.", suffix=".tmp")  # 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                os.fchmod(fh.fileno(), PRIVATE_FILE)
                json.dump(rows, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def create_key(self, role: Role | str, tenant: str | None, name: str = "") -> tuple[ApiKeyInfo, str]:
        role, tenant = check_key_scope(role, tenant)
        name = check_key_name(name)
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
        problem = key_problem(info)
        if problem is not None:
            raise AuthenticationError(f"API key {info.key_id} is not usable: {problem}; create a new one")
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


def _for_config(config: Any) -> Authenticator:
    """The key store ``config`` asks for: Redis when VPA_REDIS_URL is set (every replica sees the
    same keys), else VPA_DATA_DIR/keys.json."""
    from vpa.auth.redis_store import RedisApiKeyAuthenticator, configured_url

    url = configured_url(config)
    if url is not None:
        return RedisApiKeyAuthenticator(url)
    return ApiKeyAuthenticator(Path(config.data_dir) / "keys.json")


@hookimpl
def vpa_register_authenticators(register: Any) -> None:
    register(
        "api-keys",
        _for_config,
        description="hashed API keys with roles and a tenant, in VPA_DATA_DIR/keys.json "
        "(in Redis when VPA_REDIS_URL is set)",
    )

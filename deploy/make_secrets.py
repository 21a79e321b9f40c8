#!/usr/bin/env python3
"""Write the two secret files deploy/compose.yaml mounts, with new random keys.

``secrets/vpa.toml`` (VPA's ``VPA_CONFIG_FILE``): the AES-256 key of encryption at rest and the
Qdrant API key VPA sends. ``secrets/qdrant.yaml`` (Qdrant's ``config/local.yaml``): the same API
key, which the server then requires. Only the standard library, so it runs before anything is
installed; an existing file is never overwritten (a new encryption key would make the stored text
unreadable).

The folder is 0700, so no other user of this machine reaches the files; the files themselves are
0644 because Docker Compose bind-mounts them as they are, and the containers' users (UID 10001 for
VPA, 1000 for unprivileged Qdrant) must be able to read them.

    python3 deploy/make_secrets.py [--out deploy/secrets]
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
from pathlib import Path


def vpa_toml(encryption_key: str, qdrant_api_key: str) -> str:
    return (
        "# VPA's secrets (VPA_CONFIG_FILE); every other setting is a VPA_* variable.\n"
        f'encryption_key = "{encryption_key}"\n'
        f'api_key = "{qdrant_api_key}"\n'
    )


def qdrant_yaml(qdrant_api_key: str) -> str:
    return (
        f'# Qdrant config/local.yaml: clients must send this key.\nservice:\n  api_key: "{qdrant_api_key}"\n'
    )


def write(out: Path) -> list[Path]:
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    existing = [path for path in (out / "vpa.toml", out / "qdrant.yaml") if path.exists()]
    if existing:
        raise SystemExit(
            f"not overwriting {', '.join(str(p) for p in existing)}: remove them first to make new keys"
        )
    encryption_key = base64.b64encode(os.urandom(32)).decode("ascii")
    api_key = secrets.token_urlsafe(32)
    contents = {
        out / "vpa.toml": vpa_toml(encryption_key, api_key),
        out / "qdrant.yaml": qdrant_yaml(api_key),
    }
    for path, text in contents.items():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(path, 0o644)
    return list(contents)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "secrets")
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

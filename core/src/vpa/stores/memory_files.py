"""Durable files for the memory store: an atomic snapshot plus an append-only journal.

Each collection has ``<name>.vpa.npz`` (the whole state, written to a temporary file, fsynced and
renamed, so it is always complete) and ``<name>.vpa.log`` (every write since that snapshot, one
checksummed frame per call, fsynced before the call returns). Opening replays the journal over the
snapshot and stops at the first torn or corrupt frame — the write a crash interrupted, which was
never acknowledged. When the journal outgrows the snapshot, it is folded into a new snapshot.

Replaying a journal over a snapshot that already contains it gives the same state (upserts and
deletes by id are idempotent and the last one per id wins), so a crash between writing a snapshot
and truncating the journal is harmless.

An optional cipher (``encrypt(bytes) -> bytes`` / ``decrypt(bytes) -> bytes``) is applied to every
snapshot document and journal frame, for encryption at rest.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

SNAPSHOT_SUFFIX = ".vpa.npz"
JOURNAL_SUFFIX = ".vpa.log"
FORMAT_VERSION = 2
_FRAME = struct.Struct("<II")  # payload length, crc32 of payload
_JSON_LEN = struct.Struct("<I")


class Cipher(Protocol):
    def encrypt(self, data: bytes) -> bytes: ...

    def decrypt(self, data: bytes) -> bytes: ...


class PlainText:
    """The identity cipher: what is stored when encryption at rest is off."""

    def encrypt(self, data: bytes) -> bytes:
        return data

    def decrypt(self, data: bytes) -> bytes:
        return data


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pack(document: dict[str, Any], vectors: np.ndarray) -> bytes:
    head = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _JSON_LEN.pack(len(head)) + head + np.ascontiguousarray(vectors, dtype=np.float32).tobytes()


def _unpack(payload: bytes, dimension: int | None = None) -> tuple[dict[str, Any], np.ndarray]:
    (length,) = _JSON_LEN.unpack_from(payload)
    document = json.loads(payload[_JSON_LEN.size : _JSON_LEN.size + length].decode("utf-8"))
    dim = dimension if dimension is not None else document["dimension"]
    vectors = np.frombuffer(payload[_JSON_LEN.size + length :], dtype=np.float32).reshape(-1, dim)
    return document, vectors


class CollectionFiles:
    """The snapshot and journal of one collection."""

    def __init__(self, folder: Path, name: str, cipher: Cipher | None = None) -> None:
        self.snapshot_path = folder / f"{name}{SNAPSHOT_SUFFIX}"
        self.journal_path = folder / f"{name}{JOURNAL_SUFFIX}"
        self.cipher = cipher or PlainText()
        self._journal: io.BufferedWriter | None = None
        self.journal_bytes = 0
        self.snapshot_bytes = 0

    def exists(self) -> bool:
        return self.snapshot_path.is_file()

    # --- snapshot ----------------------------------------------------------------------------

    def write_snapshot(self, document: dict[str, Any], vectors: np.ndarray) -> None:
        """Replace the snapshot atomically, then empty the journal it now contains."""
        payload = self.cipher.encrypt(_pack({**document, "format": FORMAT_VERSION}, vectors))
        fd, tmp = tempfile.mkstemp(dir=self.snapshot_path.parent, prefix=f".{self.snapshot_path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.snapshot_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.snapshot_path.parent)
        self.snapshot_bytes = len(payload)
        self._close_journal()
        with open(self.journal_path, "wb") as fh:  # truncate: everything in it is in the snapshot
            os.fsync(fh.fileno())
        self.journal_bytes = 0

    def read_snapshot(self) -> tuple[dict[str, Any], np.ndarray]:
        payload = self.cipher.decrypt(self.snapshot_path.read_bytes())
        self.snapshot_bytes = len(payload)
        return _unpack(payload)

    # --- journal -----------------------------------------------------------------------------

    def append(self, entry: dict[str, Any], vectors: np.ndarray | None = None) -> None:
        """Append one write durably (fsync) before it is acknowledged."""
        body = self.cipher.encrypt(_pack(entry, vectors if vectors is not None else np.zeros((0,), np.float32)))
        if self._journal is None:
            self._journal = open(self.journal_path, "ab")  # noqa: SIM115 - kept open across writes
        self._journal.write(_FRAME.pack(len(body), zlib.crc32(body)) + body)
        self._journal.flush()
        os.fsync(self._journal.fileno())
        self.journal_bytes += _FRAME.size + len(body)

    def replay(self, dimension: int) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
        """The journal's complete frames, in order; a torn tail is cut off."""
        if not self.journal_path.is_file():
            return
        data = self.journal_path.read_bytes()
        offset = 0
        while offset + _FRAME.size <= len(data):
            length, crc = _FRAME.unpack_from(data, offset)
            body = data[offset + _FRAME.size : offset + _FRAME.size + length]
            if len(body) != length or zlib.crc32(body) != crc:
                break
            yield _unpack(self.cipher.decrypt(body), dimension)
            offset += _FRAME.size + length
        if offset < len(data):  # the write a crash interrupted: never acknowledged, so drop it
            with open(self.journal_path, "r+b") as fh:
                fh.truncate(offset)
                os.fsync(fh.fileno())
        self.journal_bytes = offset

    def _close_journal(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def close(self) -> None:
        self._close_journal()

    def remove(self) -> None:
        self._close_journal()
        self.snapshot_path.unlink(missing_ok=True)
        self.journal_path.unlink(missing_ok=True)


def sweep_leftovers(folder: Path) -> None:
    """Delete temporary files a writer killed mid-snapshot left behind."""
    for leftover in folder.glob(f".*{SNAPSHOT_SUFFIX}.*.tmp"):
        leftover.unlink(missing_ok=True)

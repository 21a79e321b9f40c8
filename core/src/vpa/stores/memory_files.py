"""Durable files for the memory store: an atomic snapshot plus an append-only journal per
collection, in a folder that one process owns.

Each collection has ``<name>.vpa.npz`` (the whole state, written to a temporary file, fsynced and
renamed, so it is always complete) and ``<name>.vpa.log`` (every write since that snapshot, one
checksummed frame per call, fsynced before the call returns). When the journal outgrows the
snapshot, it is folded into a new snapshot.

What "acknowledged" means, and what each failure leaves behind:

- A write is acknowledged only once its frame is written whole at the end of the last good frame
  and fsynced. If the append fails part-way (a full disk or quota, an I/O error), the journal is
  truncated back to that end and fsynced *before* the error is raised, so a torn frame never sits
  in front of a later, acknowledged one. If that rollback fails too, the journal is *broken*: every
  later write is refused with the same typed error until the rollback succeeds (each write retries
  it first, e.g. once space is freed) or a snapshot replaces the journal.
- Opening replays the journal over the snapshot. A damaged frame at the very end is the write a
  crash interrupted — never acknowledged — and is cut off. A damaged frame followed by data that
  holds a valid frame cannot come from a crash (frames are fsynced one after another): that is
  `DataCorrupted`, naming the file and offsets, and nothing is dropped or truncated.
- A snapshot is written to a temporary file, fsynced, renamed over the previous one, then the folder
  is fsynced; on any failure the temporary file is removed and the previous snapshot and journal
  stay as they were. Replaying a journal over a snapshot that already contains it gives the same
  state (upserts and deletes by id are idempotent and the last one per id wins), so a crash between
  writing a snapshot and truncating the journal is harmless.
- A full disk anywhere (ENOSPC, EDQUOT, or EFBIG from a file-size limit) is `StorageFull`; any other
  OS error is `StoreError`; both with a one-line message naming the file, never a bare OSError.
- The folder is made 0700 and every file in it (snapshots, journals, the lock) 0600, whatever the
  umask; files left wider by an older version are narrowed when opened.
- One owner per folder: `FolderLock` holds an exclusive ``flock`` on ``.vpa.lock``, which records the
  owner's PID. A second opener — another process, or another store in the same process (flock
  locks belong to an open file, so two opens conflict) — gets `DataFolderLocked` naming the folder
  and that PID. The kernel releases the lock when the owner exits, even by kill -9.

An optional cipher (``encrypt(bytes) -> bytes`` / ``decrypt(bytes) -> bytes``) is applied to every
snapshot document and journal frame, for encryption at rest.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import stat
import struct
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vpa.errors import DataCorrupted, DataFolderLocked, StorageFull, StoreError
from vpa.files import PRIVATE_FILE, PRIVATE_FOLDER, open_private
from vpa.typedjson import DATE_KEY, decode_value, encode_value

SNAPSHOT_SUFFIX = ".vpa.npz"
JOURNAL_SUFFIX = ".vpa.log"
LOCK_NAME = ".vpa.lock"
FORMAT_VERSION = 2
FILE_MODE = PRIVATE_FILE
FOLDER_MODE = PRIVATE_FOLDER
#: The first byte of data sealed by `vpa.crypto.AESGCMCipher` (its format version).
SEALED_PREFIX = b"\x01"
_FRAME = struct.Struct("<II")  # payload length, crc32 of payload
_JSON_LEN = struct.Struct("<I")
_MIN_BODY = _JSON_LEN.size + 2  # the smallest payload: a length and "{}"
_SCAN_CHUNK = 1 << 22  # bytes of a damaged journal examined per numpy pass
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class Cipher(Protocol):
    def encrypt(self, data: bytes) -> bytes: ...

    def decrypt(self, data: bytes) -> bytes: ...


class PlainText:
    """The identity cipher: what is stored when encryption at rest is off."""

    def encrypt(self, data: bytes) -> bytes:
        return data

    def decrypt(self, data: bytes) -> bytes:
        return data


def storage_error(exc: OSError, message: str) -> StoreError:
    """The typed error for an OS error: `StorageFull` for a full disk or quota, else `StoreError`."""
    reason = exc.strerror or type(exc).__name__
    cls = StorageFull if exc.errno in _FULL else StoreError
    return cls(f"{message} ({reason})".replace("\n", " "))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes, offset: int | None = None) -> None:
    """Write every byte (at ``offset`` with pwrite, else at the file position); a short write that
    makes no progress is a full disk."""
    view = memoryview(data)
    done = 0
    while done < len(view):
        n = os.write(fd, view[done:]) if offset is None else os.pwrite(fd, view[done:], offset + done)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done += n


def prepare_folder(folder: Path) -> None:
    """Create the folder 0700 (or narrow an existing one to 0700)."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
        if stat.S_IMODE(folder.stat().st_mode) != FOLDER_MODE:
            with contextlib.suppress(PermissionError):  # not ours to change: the files stay 0600
                os.chmod(folder, FOLDER_MODE)
    except OSError as exc:
        raise storage_error(exc, f"cannot create the data folder {folder}") from exc


class FolderLock:
    """Exclusive ownership of a data folder: an ``flock`` on its lock file, which holds our PID."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the folder (creating it 0700); `DataFolderLocked` if another open file holds it."""
        if self._fd is not None:
            return
        prepare_folder(self.folder)
        try:
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise storage_error(exc, f"cannot open the lock file {self.path}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DataFolderLocked(self._held_by(fd)) from None
            except OSError as exc:
                raise storage_error(exc, f"cannot lock the data folder {self.folder}") from exc
            # Fixed width, written in place: on a full disk this needs no new block. Best effort:
            # the PID only names the owner to a second opener.
            with contextlib.suppress(OSError):
                os.pwrite(fd, f"{os.getpid():<20}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _held_by(self, fd: int) -> str:
        pid = None
        for _ in range(20):  # the owner writes its PID just after taking the lock
            with contextlib.suppress(OSError, ValueError):
                pid = int(os.pread(fd, 64, 0).decode().strip())
                break
            time.sleep(0.005)
        owner = f"PID {pid}" if pid is not None else "PID unknown"
        if pid == os.getpid():
            return (f"data folder {self.folder} is already open in this process ({owner}) by another "
                    "store; close that store first")
        return (f"data folder {self.folder} is in use by another process ({owner}); stop it or use "
                "another data folder: two writers would lose data")

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the last descriptor of the open file releases the flock

    def __del__(self) -> None:  # a store dropped without close() can write no more: let go
        with contextlib.suppress(Exception):
            self.release()


def _typed(value: Any) -> Any:
    """Metadata datetimes as typed JSON (`vpa.typedjson`); json calls this for nothing else."""
    if isinstance(value, datetime.datetime):
        return encode_value(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _untyped(obj: dict[str, Any]) -> Any:
    return decode_value(obj) if len(obj) == 1 and DATE_KEY in obj else obj


def _pack(document: dict[str, Any], vectors: np.ndarray) -> bytes:
    head = json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=_typed).encode("utf-8")
    return _JSON_LEN.pack(len(head)) + head + np.ascontiguousarray(vectors, dtype=np.float32).tobytes()


def _unpack(payload: bytes, dimension: int | None = None) -> tuple[dict[str, Any], np.ndarray]:
    (length,) = _JSON_LEN.unpack_from(payload)
    document = json.loads(payload[_JSON_LEN.size : _JSON_LEN.size + length].decode("utf-8"), object_hook=_untyped)
    dim = dimension if dimension is not None else document["dimension"]
    vectors = np.frombuffer(payload[_JSON_LEN.size + length :], dtype=np.float32).reshape(-1, dim)
    return document, vectors


class CollectionFiles:
    """The snapshot and journal of one collection."""

    def __init__(self, folder: Path, name: str, cipher: Cipher | None = None) -> None:
        self.snapshot_path = folder / f"{name}{SNAPSHOT_SUFFIX}"
        self.journal_path = folder / f"{name}{JOURNAL_SUFFIX}"
        self.cipher = cipher or PlainText()
        self._fd: int | None = None  # the journal, open for writing
        #: The end of the last good frame: where the next one is written.
        self.journal_bytes = 0
        self.snapshot_bytes = 0
        #: Set when a failed append could not be rolled back: writes are refused until repaired.
        self.broken: StoreError | None = None
        #: After a failed snapshot: the journal size before which the store does not try again.
        self.retry_compaction_at = 0

    def exists(self) -> bool:
        return self.snapshot_path.is_file()

    def _journal_fd(self) -> int:
        if self._fd is None:
            try:
                self._fd = open_private(self.journal_path, os.O_WRONLY | os.O_CREAT)
            except OSError as exc:
                raise storage_error(exc, f"cannot open journal {self.journal_path}") from exc
        return self._fd

    # --- snapshot ----------------------------------------------------------------------------

    def write_snapshot(self, document: dict[str, Any], vectors: np.ndarray) -> None:
        """Replace the snapshot atomically, then empty the journal it now contains. On failure the
        temporary file is removed and the previous snapshot and journal are untouched."""
        payload = self.cipher.encrypt(_pack({**document, "format": FORMAT_VERSION}, vectors))
        folder = self.snapshot_path.parent
        journal = self._journal_fd()  # opened first: after the rename, truncating it cannot fail for space
        failed = f"cannot write snapshot {self.snapshot_path}; the previous snapshot and journal are kept"
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{self.snapshot_path.name}.", suffix=".tmp")
        except OSError as exc:
            raise storage_error(exc, failed) from exc
        try:
            try:
                os.fchmod(fd, FILE_MODE)
                _write_all(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.snapshot_path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise storage_error(exc, failed) from exc
            raise
        try:
            _fsync_dir(folder)
            self.snapshot_bytes = len(payload)
            os.ftruncate(journal, 0)  # everything in it is in the snapshot
            self.journal_bytes = self.retry_compaction_at = 0
            self.broken = None
            os.fsync(journal)
        except OSError as exc:  # the journal still replays onto the new snapshot: nothing is lost
            raise storage_error(exc, f"cannot complete snapshot {self.snapshot_path}") from exc

    def read_snapshot(self) -> tuple[dict[str, Any], np.ndarray]:
        try:
            data = self.snapshot_path.read_bytes()
        except OSError as exc:
            raise storage_error(exc, f"cannot read snapshot {self.snapshot_path}") from exc
        payload = self.cipher.decrypt(data)
        self.snapshot_bytes = len(payload)
        return self._unpack_checked(payload, None, f"snapshot {self.snapshot_path}")

    # --- journal -----------------------------------------------------------------------------

    def append(self, entry: dict[str, Any], vectors: np.ndarray | None = None) -> None:
        """Append one write durably (written whole and fsynced) before it is acknowledged; on
        failure roll the journal back to its last good frame, then raise the typed error."""
        if self.broken is not None:
            self._repair()
        vectors = vectors if vectors is not None else np.zeros((0,), np.float32)
        body = self.cipher.encrypt(_pack(entry, vectors))
        frame = _FRAME.pack(len(body), zlib.crc32(body)) + body
        fd = self._journal_fd()
        end = self.journal_bytes
        try:
            _write_all(fd, frame, end)
            os.fsync(fd)
        except OSError as exc:
            if self._roll_back(end, exc):
                failed = f"cannot append to journal {self.journal_path}; the write was rolled back"
                raise storage_error(exc, f"{failed}, nothing of it is stored") from exc
            assert self.broken is not None
            raise self.broken from exc
        self.journal_bytes = end + len(frame)

    def _roll_back(self, end: int, cause: OSError) -> bool:
        """Cut the journal back to ``end`` durably; on failure mark it broken. True if it worked."""
        try:
            os.ftruncate(self._journal_fd(), end)
            os.fsync(self._journal_fd())
        except (OSError, StoreError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.broken = storage_error(
                cause,
                f"journal {self.journal_path} ends in a torn frame that could not be rolled back ({reason}); "
                "writes are refused until it is repaired (free space and retry, or close the store)",
            )
            return False
        return True

    def _repair(self) -> None:
        """Retry the rollback a failed append left undone; raise the broken error while it fails."""
        assert self.broken is not None
        broken = self.broken
        try:
            os.ftruncate(self._journal_fd(), self.journal_bytes)
            os.fsync(self._journal_fd())
        except (OSError, StoreError):
            raise type(broken)(str(broken)) from None
        self.broken = None

    def replay(self, dimension: int) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
        """The journal's frames, in order. A torn tail (the write a crash interrupted) is cut off;
        a damaged frame with a valid one after it is `DataCorrupted`."""
        try:
            data = self.journal_path.read_bytes()
        except FileNotFoundError:
            self.journal_bytes = 0
            return
        except OSError as exc:
            raise storage_error(exc, f"cannot read journal {self.journal_path}") from exc
        view = memoryview(data)
        offset, size = 0, len(data)
        while offset + _FRAME.size <= size:
            length, crc = _FRAME.unpack_from(data, offset)
            stop = offset + _FRAME.size + length
            if stop > size or zlib.crc32(view[offset + _FRAME.size : stop]) != crc:
                break
            body = self.cipher.decrypt(data[offset + _FRAME.size : stop])
            yield self._unpack_checked(body, dimension, f"journal {self.journal_path}")
            offset = stop
        if offset < size:
            later = _next_valid_frame(data, offset + 1, lambda body: self._decodes(body, dimension))
            if later is not None:
                raise DataCorrupted(
                    f"journal {self.journal_path} is damaged at byte {offset} but holds a valid frame at "
                    f"byte {later} (of {size}): not a crash's torn tail, so nothing was dropped; restore "
                    "the folder from a backup (or move the journal aside to keep only the snapshot)"
                )
            try:  # the write a crash interrupted: never acknowledged, so drop it
                fd = self._journal_fd()
                os.ftruncate(fd, offset)
                os.fsync(fd)
            except OSError as exc:
                raise storage_error(exc, f"cannot cut the torn tail off journal {self.journal_path}") from exc
        self.journal_bytes = offset

    def _unpack_checked(
        self, payload: bytes, dimension: int | None, what: str
    ) -> tuple[dict[str, Any], np.ndarray]:
        """`_unpack`, with a typed error for what does not decode: data sealed by encryption at
        rest read without the key, or damage."""
        try:
            return _unpack(payload, dimension)
        except (struct.error, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            if isinstance(self.cipher, PlainText) and payload[:1] == SEALED_PREFIX:
                from vpa.crypto import sealed_without_key

                raise sealed_without_key(f"the memory store's {what}") from None
            raise DataCorrupted(f"{what} does not decode ({type(exc).__name__}); restore it from a backup") from None

    def _decodes(self, body: bytes, dimension: int) -> bool:
        try:
            entry, _ = _unpack(self.cipher.decrypt(body), dimension)
        except Exception:  # anything that does not decode is not a frame
            return False
        return isinstance(entry, dict) and entry.get("op") in ("upsert", "delete") and "ids" in entry

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def remove(self) -> None:
        self.close()
        try:
            self.snapshot_path.unlink(missing_ok=True)
            self.journal_path.unlink(missing_ok=True)
        except OSError as exc:
            raise storage_error(exc, f"cannot remove {self.snapshot_path}") from exc
        self.journal_bytes = 0
        self.broken = None


def _next_valid_frame(data: bytes, start: int, decodes: Callable[[bytes], bool]) -> int | None:
    """The first offset at or after ``start`` where a whole, checksummed, decodable frame begins.

    Candidates are found a few MiB at a time with numpy (a length that fits in what remains), so a
    damaged tail costs array passes, not a Python loop per byte; each candidate's crc is checked."""
    size = len(data)
    last = size - _FRAME.size - _MIN_BODY  # the last offset where the smallest frame fits
    view = memoryview(data)
    pos = start
    while pos <= last:
        stop = min(pos + _SCAN_CHUNK, last + 1)
        at_every_byte = np.ndarray((stop - pos,), dtype="<u4", buffer=data, offset=pos, strides=(1,))
        lengths = at_every_byte.astype(np.int64)
        room = (size - _FRAME.size) - np.arange(pos, stop, dtype=np.int64)
        for rel in np.flatnonzero((lengths >= _MIN_BODY) & (lengths <= room)).tolist():
            at = pos + rel
            length, crc = _FRAME.unpack_from(data, at)
            body = view[at + _FRAME.size : at + _FRAME.size + length]
            if zlib.crc32(body) == crc and decodes(bytes(body)):
                return at
        pos = stop
    return None


def sweep_leftovers(folder: Path) -> None:
    """Delete temporary files a writer killed mid-snapshot left behind (only the owner may)."""
    for leftover in folder.glob(f".*{SNAPSHOT_SUFFIX}.*.tmp"):
        leftover.unlink(missing_ok=True)

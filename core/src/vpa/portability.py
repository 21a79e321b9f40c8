"""Moving data between stores: snapshots (export / import), store-to-store migration, and backup /
restore of every collection. The format is in ``docs/portability.md``; this is the API behind
``vpa export``, ``vpa import``, ``vpa migrate``, ``vpa backup`` and ``vpa restore``.

Everything here goes through the public store contract (1.1: ``scroll``, ``get``, ``upsert``,
``count``), so it works for every plugin and needs nothing from a vendor:

- **Export** streams ``scroll`` pages into Parquet, a file per `ROWS_PER_FILE` records, into a
  folder named ``<OUT>.partial-<pid>``; the manifest (with a SHA-256 per file) is written last and
  the folder renamed into place, so a snapshot that exists is complete — an interrupted export
  leaves no ``OUT``. ``OUT`` ending in ``.tar`` is packed the same way (``.tar.partial-<pid>``,
  then renamed). Memory stays flat: one page and one Parquet row group at a time.
- **Import** checks the manifest and every file's checksum *before* writing anything (a damaged
  snapshot changes nothing), creates the collection with the snapshot's dimension, metric and
  embedder fingerprint, and upserts in batches. It is idempotent and resumable: a record already in
  the collection with the same id, text, metadata and vector is skipped (and counted), so a run
  killed half-way and started again ends with exactly one copy of each record.
- **Migrate** is export and import without the file: scroll the source, upsert into the target,
  then verify (counts, a sample compared field by field, the same queries answered alike within
  the two stores' declared recall). Vectors are copied, never re-embedded.
- **Backup / restore**: every collection as a snapshot under one folder, plus the API key file
  (hashes only). Restore refuses a collection that is not empty unless told to overwrite.

With encryption at rest on (``VPA_ENCRYPT_AT_REST``), a snapshot's text and titles are sealed with
AES-256-GCM under ``VPA_ENCRYPTION_KEY``, each bound to its record id; the manifest carries a key
check, so importing without the key, or with another, is an `EncryptionKeyMismatch` before any
write. Ids, vectors and the other metadata stay in clear, as they do in the stores.

Give these functions the store the RAG layer uses (`vpa.crypto.protect_store`), so that what is
exported is the clear text and what is imported is sealed again as the target's configuration
says; `open_store` builds that store from a configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import io
import json
import math
import os
import random
import shutil
import tarfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from vpa.errors import (
    CollectionNotFound,
    ConfigError,
    DependencyMissing,
    StorageFull,
    ValidationError,
    VPAError,
)
from vpa.filters import FilterLike, parse_filter
from vpa.layout import TITLE
from vpa.models import CollectionInfo, EmbedderFingerprint, Metric, Record
from vpa.stores.base import VectorStore, check_collection_name
from vpa.typedjson import decode_metadata, encode_metadata, format_datetime

FORMAT = "vpa-snapshot"
FORMAT_VERSION = 1
BACKUP_FORMAT = "vpa-backup"
BACKUP_VERSION = 1
MANIFEST = "manifest.json"
BACKUP_MANIFEST = "backup.json"
KEY_FILE = "keys.json"
#: Records per Parquet file, and per row group within it.
ROWS_PER_FILE = 100_000
ROW_GROUP = 2_048
#: Records per import batch, and per scroll page when the store allows it.
BATCH = 1_000
#: The largest manifest read (a snapshot's manifest is a few KiB; 1,000 files of 100,000 records).
MAX_MANIFEST_BYTES = 1 << 20
SNAPSHOT_TEXT_AAD = b"vpa/snapshot-text/v1:"
SNAPSHOT_TITLE_AAD = b"vpa/snapshot-title/v1:"
SNAPSHOT_KEY_LABEL = "vpa-snapshot"
#: How far a copied vector may differ from its source (as in the conformance suite), x its norm.
VECTOR_TOLERANCE = 1e-5

Progress = Callable[[int], None]


class SnapshotError(ValidationError):
    """A snapshot that cannot be read: missing or damaged files, a checksum or count that does not
    match its manifest, a format this VPA does not know. Nothing was written."""

    code = "invalid_snapshot"


class CollectionNotEmpty(VPAError):
    """A restore (or an import told not to resume) found records in the target collection."""

    code = "collection_not_empty"


class VerificationFailed(VPAError):
    """A migration's target does not hold what its source does (counts, records or answers)."""

    code = "verification_failed"


# --- the format --------------------------------------------------------------------------------


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise DependencyMissing(
            "snapshots are Apache Parquet: pip install 'vpa-core[portability]' (pyarrow)"
        ) from exc
    return pa, pq


def _schema() -> Any:
    pa, _ = _pyarrow()
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32()), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("metadata", pa.string(), nullable=False),
        ],
        metadata={b"vpa": b"record: id, vector (float32), text, metadata (VPA typed JSON)"},
    )


@attrs.frozen
class DataFile:
    name: str
    records: int
    bytes: int
    sha256: str


@attrs.frozen
class Manifest:
    """A snapshot's ``manifest.json``: what it holds and how to check it."""

    collection: str
    dimension: int
    metric: str
    fingerprint: EmbedderFingerprint | None
    records: int
    files: tuple[DataFile, ...]
    created_at: str
    vpa_version: str
    filter: Any = None
    source: Mapping[str, Any] = attrs.field(factory=dict)
    encryption: Mapping[str, Any] | None = None
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "format_version": self.format_version,
            "vpa_version": self.vpa_version,
            "created_at": self.created_at,
            "collection": self.collection,
            "dimension": self.dimension,
            "metric": self.metric,
            "fingerprint": None if self.fingerprint is None else attrs.asdict(self.fingerprint),
            "filter": self.filter,
            "source": dict(self.source),
            "records": self.records,
            "files": [attrs.asdict(f) for f in self.files],
            "encryption": None if self.encryption is None else dict(self.encryption),
            "columns": {
                "id": "string",
                "vector": "list<float32>",
                "text": "string (sealed when encryption is set)",
                "metadata": 'string: VPA typed JSON ({"$date": ...} for datetimes)',
            },
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> Manifest:
        if not isinstance(data, Mapping):
            raise SnapshotError(f"{where}: the manifest is not a JSON object")
        if data.get("format") != FORMAT:
            raise SnapshotError(
                f"{where}: not a VPA snapshot (format {data.get('format')!r}, expected {FORMAT!r})"
            )
        version = data.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise SnapshotError(f"{where}: format_version {version!r} is not a positive integer")
        if version > FORMAT_VERSION:
            raise SnapshotError(
                f"{where}: snapshot format {version} is newer than this VPA reads ({FORMAT_VERSION}); "
                "upgrade vpa-core"
            )
        try:
            fingerprint = data.get("fingerprint")
            files = tuple(
                DataFile(str(f["name"]), int(f["records"]), int(f["bytes"]), str(f["sha256"]))
                for f in data["files"]
            )
            manifest = cls(
                collection=check_collection_name(data["collection"]),
                dimension=_positive(data["dimension"], "dimension"),
                metric=str(Metric(data.get("metric", "cosine"))),
                fingerprint=None
                if fingerprint is None
                else EmbedderFingerprint(
                    str(fingerprint["name"]), str(fingerprint["model"]), int(fingerprint["dimension"])
                ),
                records=int(data["records"]),
                files=files,
                created_at=str(data.get("created_at", "")),
                vpa_version=str(data.get("vpa_version", "")),
                filter=data.get("filter"),
                source=dict(data.get("source") or {}),
                encryption=data.get("encryption"),
                format_version=version,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"{where}: the manifest is incomplete or malformed ({exc})") from None
        for f in files:
            if Path(f.name).name != f.name or not f.name.endswith(".parquet"):
                raise SnapshotError(f"{where}: data file name {f.name!r} is not a plain .parquet name")
        if sum(f.records for f in files) != manifest.records:
            raise SnapshotError(
                f"{where}: the manifest's files hold {sum(f.records for f in files)} records, "
                f"not the {manifest.records} it declares"
            )
        if manifest.encryption is not None and not isinstance(manifest.encryption, Mapping):
            raise SnapshotError(f"{where}: encryption must be an object or null")
        return manifest


def _positive(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} {value!r} is not a positive integer")
    return value


def _vpa_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vpa-core")
    except PackageNotFoundError:  # pragma: no cover - a source checkout without install
        return "unknown"


def _now() -> str:
    return format_datetime(dt.datetime.now(dt.UTC).replace(microsecond=0))


# --- encryption of a snapshot's text -------------------------------------------------------------


class SnapshotSealer:
    """Seals a snapshot's text and titles under the configured key, bound to each record id."""

    def __init__(self, key: bytes) -> None:
        from vpa.crypto import TextSealer, key_check

        self._text = TextSealer(key, SNAPSHOT_TEXT_AAD)
        self._title = TextSealer(key, SNAPSHOT_TITLE_AAD)
        self.check = key_check(key, SNAPSHOT_KEY_LABEL)

    @classmethod
    def from_config(cls, config: Any) -> SnapshotSealer | None:
        """The sealer for ``config`` (None when encryption at rest is off)."""
        if config is None or not getattr(config, "encrypt_at_rest", False):
            return None
        from vpa.crypto import parse_key

        return cls(parse_key(config.encryption_key))

    def describe(self) -> dict[str, Any]:
        return {"scheme": "aes-256-gcm", "sealed": ["text", f"metadata.{TITLE}"], "key_check": self.check}

    def seal(self, record: Record) -> tuple[str, dict[str, Any]]:
        metadata = dict(record.metadata)
        if isinstance(metadata.get(TITLE), str):
            metadata[TITLE] = self._title.seal(record.id, metadata[TITLE])
        return self._text.seal(record.id, record.text), metadata

    def open(self, record_id: str, text: str, metadata: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if isinstance(metadata.get(TITLE), str):
            metadata[TITLE] = self._title.open(record_id, metadata[TITLE])
        return self._text.open(record_id, text), metadata


def _sealer_for(manifest: Manifest, sealer: SnapshotSealer | None, where: str) -> SnapshotSealer | None:
    """The sealer that opens this snapshot; `EncryptionKeyMismatch` without the right key."""
    from vpa.crypto import EncryptionKeyMismatch

    if manifest.encryption is None:
        return None
    if sealer is None:
        raise EncryptionKeyMismatch(
            f"{where} is encrypted: set VPA_ENCRYPT_AT_REST=true and the VPA_ENCRYPTION_KEY "
            "it was written with"
        )
    if manifest.encryption.get("key_check") != sealer.check:
        raise EncryptionKeyMismatch(f"{where} was encrypted with another key than VPA_ENCRYPTION_KEY")
    return sealer


# --- writing -----------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(stream: io.BufferedIOBase | Any) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _full_disk(exc: OSError, what: str) -> VPAError | OSError:
    import errno

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(f"{what}: no space left on the device; nothing was kept")
    return exc


class SnapshotWriter:
    """Writes one snapshot: `add` pages of records, then `finish` (or `abort`). Until `finish`
    returns, the snapshot does not exist under its name."""

    def __init__(
        self,
        out: Path | str,
        info: CollectionInfo,
        *,
        filter: Any = None,
        source: Mapping[str, Any] | None = None,
        sealer: SnapshotSealer | None = None,
        rows_per_file: int = ROWS_PER_FILE,
    ) -> None:
        pa, pq = _pyarrow()
        self._pa, self._pq = pa, pq
        self.out = Path(out)
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise ValidationError(f"{self.out} already exists; choose another name or remove it first")
        self.tar = self.out.name.endswith(".tar")
        self.folder = self.out.with_name(f"{self.out.name}.partial-{os.getpid()}")
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        self.info = info
        self.filter = filter
        self.source = dict(source or {})
        self.sealer = sealer
        self.rows_per_file = rows_per_file
        self.files: list[DataFile] = []
        self.records = 0
        self._writer: Any = None
        self._file_rows = 0
        self._pending: list[Record] = []

    def _open_file(self) -> None:
        name = f"records-{len(self.files):05d}.parquet"
        self._writer = self._pq.ParquetWriter(self.folder / name, _schema(), compression="zstd")
        self._name = name
        self._file_rows = 0

    def _close_file(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        path = self.folder / self._name
        with open(path, "rb+") as handle:
            os.fsync(handle.fileno())
            handle.seek(0)
            digest, size = _sha256(handle)
        self.files.append(DataFile(self._name, self._file_rows, size, digest))

    def _flush(self) -> None:
        while self._pending:
            if self._writer is None:
                self._open_file()
            room = self.rows_per_file - self._file_rows
            part, self._pending = self._pending[:room], self._pending[room:]
            self._writer.write_table(self._table(part), row_group_size=ROW_GROUP)
            self._file_rows += len(part)
            if self._file_rows >= self.rows_per_file:
                self._close_file()

    def _table(self, records: Sequence[Record]) -> Any:
        pa = self._pa
        ids, vectors, texts, metas = [], [], [], []
        for record in records:
            text, metadata = (
                (record.text, record.metadata) if self.sealer is None else self.sealer.seal(record)
            )
            ids.append(record.id)
            vectors.append(np.asarray(record.vector, dtype=np.float32))
            texts.append(text)
            metas.append(
                json.dumps(
                    encode_metadata(metadata), ensure_ascii=False, allow_nan=False, separators=(",", ":")
                )
            )
        dim = self.info.dimension
        flat = np.concatenate(vectors) if vectors else np.zeros(0, dtype=np.float32)
        if flat.size != dim * len(records):
            raise ValidationError(f"a record to export does not have the collection's dimension {dim}")
        offsets = np.arange(0, flat.size + 1, dim, dtype=np.int32)
        vector_array = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=pa.float32()))
        return pa.Table.from_arrays(
            [
                pa.array(ids, pa.string()),
                vector_array,
                pa.array(texts, pa.string()),
                pa.array(metas, pa.string()),
            ],
            schema=_schema(),
        )

    def add(self, records: Sequence[Record]) -> None:
        try:
            self._pending.extend(records)
            self.records += len(records)
            if len(self._pending) >= ROW_GROUP:
                self._flush()
        except OSError as exc:
            self.abort()
            raise _full_disk(exc, f"writing snapshot {self.out}") from exc

    def finish(self) -> Manifest:
        try:
            self._flush()
            self._close_file()
            manifest = Manifest(
                collection=self.info.name,
                dimension=self.info.dimension,
                metric=str(self.info.metric),
                fingerprint=self.info.fingerprint,
                records=self.records,
                files=tuple(self.files),
                created_at=_now(),
                vpa_version=_vpa_version(),
                filter=self.filter,
                source=self.source,
                encryption=None if self.sealer is None else self.sealer.describe(),
            )
            path = self.folder / MANIFEST
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(manifest.to_json(), handle, indent=2, ensure_ascii=False)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            _fsync_dir(self.folder)
            if self.tar:
                packed = self.out.with_name(f"{self.out.name}.partial-{os.getpid()}.tar")
                with tarfile.open(packed, "w") as tar:
                    for name in [MANIFEST, *(f.name for f in self.files)]:
                        tar.add(self.folder / name, arcname=name)
                with open(packed, "rb") as handle:
                    os.fsync(handle.fileno())
                os.replace(packed, self.out)
                shutil.rmtree(self.folder)
            else:
                if self.out.exists():  # an empty folder the caller made
                    self.out.rmdir()
                os.replace(self.folder, self.out)
            _fsync_dir(self.out.parent)
            return manifest
        except OSError as exc:
            self.abort()
            raise _full_disk(exc, f"writing snapshot {self.out}") from exc

    def abort(self) -> None:
        """Drop everything written so far (the snapshot never appears)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):  # the disk may be full; the folder goes anyway
                self._writer.close()
            self._writer = None
        shutil.rmtree(self.folder, ignore_errors=True)
        for stray in self.out.parent.glob(f"{self.out.name}.partial-{os.getpid()}*"):
            if stray.is_dir():
                shutil.rmtree(stray, ignore_errors=True)
            else:
                stray.unlink(missing_ok=True)


# --- reading -----------------------------------------------------------------------------------


class Snapshot:
    """A snapshot on disk (a folder or a ``.tar``), opened for reading. Use as a context manager."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._tar: tarfile.TarFile | None = None
        if self.path.is_dir():
            raw = self._read_bytes(MANIFEST)
        elif self.path.is_file():
            try:
                self._tar = tarfile.open(self.path, "r:")  # noqa: SIM115  # closed by close()
            except (tarfile.TarError, OSError) as exc:
                raise SnapshotError(
                    f"{self.path} is neither a snapshot folder nor a .tar of one ({exc})"
                ) from None
            raw = self._read_bytes(MANIFEST)
        else:
            raise SnapshotError(f"no snapshot at {self.path}")
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SnapshotError(f"{self.path}: manifest.json is not JSON ({exc})") from None
        self.manifest = Manifest.from_json(data, str(self.path))

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def _member(self, name: str) -> Any:
        if self._tar is None:
            path = self.path / name
            if not path.is_file():
                raise SnapshotError(f"{self.path}: {name} is missing")
            return open(path, "rb")
        try:
            member = self._tar.getmember(name)
        except KeyError:
            raise SnapshotError(f"{self.path}: {name} is missing") from None
        except tarfile.TarError as exc:  # a truncated or damaged .tar
            raise SnapshotError(f"{self.path} is a damaged .tar ({exc})") from None
        if not member.isfile():
            raise SnapshotError(f"{self.path}: {name} is not a regular file")
        return self._tar.extractfile(member)

    def _read_bytes(self, name: str) -> bytes:
        with self._member(name) as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
        if len(data) > MAX_MANIFEST_BYTES:
            raise SnapshotError(f"{self.path}: {name} is over {MAX_MANIFEST_BYTES} bytes")
        return data

    def verify(self) -> None:
        """Every data file present, of the size and SHA-256 the manifest gives, with the declared
        number of rows and the record schema. `SnapshotError` naming the first that is not."""
        _, pq = _pyarrow()
        for f in self.manifest.files:
            try:
                with self._member(f.name) as handle:
                    digest, size = _sha256(handle)
            except tarfile.TarError as exc:  # a member cut short by a truncated .tar
                raise SnapshotError(f"{self.path}: {f.name} cannot be read from the .tar ({exc})") from None
            if size != f.bytes or digest != f.sha256:
                raise SnapshotError(
                    f"{self.path}: {f.name} does not match its checksum in the manifest (damaged or altered)"
                )
            with self._member(f.name) as handle:
                try:
                    meta = pq.ParquetFile(handle)
                    rows, schema = meta.metadata.num_rows, meta.schema_arrow
                except Exception as exc:
                    raise SnapshotError(f"{self.path}: {f.name} is not a Parquet file ({exc})") from None
            if rows != f.records:
                raise SnapshotError(
                    f"{self.path}: {f.name} holds {rows} records, the manifest says {f.records}"
                )
            if not schema.remove_metadata().equals(_schema().remove_metadata()):
                raise SnapshotError(
                    f"{self.path}: {f.name} does not have VPA's record columns (id, vector, text, metadata)"
                )

    def batches(
        self, sealer: SnapshotSealer | None = None, batch_size: int = BATCH
    ) -> Iterator[list[Record]]:
        """The records, ``batch_size`` at a time, in the order they were written."""
        _, pq = _pyarrow()
        opener = _sealer_for(self.manifest, sealer, str(self.path))
        dim = self.manifest.dimension
        for f in self.manifest.files:
            with self._member(f.name) as handle:
                for batch in pq.ParquetFile(handle).iter_batches(batch_size=batch_size):
                    yield [self._record(row, dim, opener, f.name) for row in batch.to_pylist()]

    def _record(self, row: dict[str, Any], dim: int, opener: SnapshotSealer | None, name: str) -> Record:
        record_id, vector, text = row["id"], row["vector"], row["text"]
        try:
            metadata = decode_metadata(json.loads(row["metadata"]))
        except (TypeError, ValueError) as exc:
            raise SnapshotError(
                f"{self.path}: {name}: record {str(record_id)[:80]!r} has malformed metadata ({exc})"
            ) from None
        if not isinstance(metadata, dict):
            raise SnapshotError(
                f"{self.path}: {name}: record {str(record_id)[:80]!r} metadata is not an object"
            )
        if vector is None or len(vector) != dim:
            raise SnapshotError(f"{self.path}: {name}: record {str(record_id)[:80]!r} vector is not {dim}-d")
        if opener is not None:
            text, metadata = opener.open(record_id, text, metadata)
        return Record(record_id, np.asarray(vector, dtype=np.float32), text, metadata)


# --- comparing records -------------------------------------------------------------------------


def _same_value(got: Any, want: Any) -> bool:
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(_same_value, got, want))
    if type(got) is not type(want):
        return False
    if isinstance(want, float) and math.isnan(want):
        return math.isnan(got)
    return bool(got == want)


def record_difference(got: Record, want: Record) -> str | None:
    """None if ``got`` holds what ``want`` does (id, text, typed metadata, vector within float32
    tolerance); else which field differs."""
    if got.id != want.id:
        return "id"
    if got.text != want.text:
        return "text"
    if set(got.metadata) != set(want.metadata):
        return f"metadata keys {sorted(set(got.metadata) ^ set(want.metadata))}"
    for key, value in want.metadata.items():
        if not _same_value(got.metadata[key], value):
            return f"metadata {key!r}"
    a = np.asarray(got.vector, dtype=np.float64).reshape(-1)
    b = np.asarray(want.vector, dtype=np.float64).reshape(-1)
    if a.shape != b.shape or float(np.max(np.abs(a - b), initial=0.0)) > VECTOR_TOLERANCE * float(
        np.linalg.norm(b)
    ):
        return "vector"
    return None


# --- results -----------------------------------------------------------------------------------


@attrs.frozen
class ExportSummary:
    collection: str
    path: str
    records: int
    files: int
    bytes: int
    encrypted: bool

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class ImportSummary:
    collection: str
    records: int
    written: int
    skipped: int
    replaced: int
    removed: int = 0

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Verification:
    count_source: int
    count_target: int
    sampled: int
    queries: int
    overlap: float
    required_overlap: float

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class MigrateSummary:
    source: str
    target: str
    records: int
    written: int
    skipped: int
    replaced: int
    seconds: float
    verification: Verification | None

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self, recurse=False)
        data["verification"] = None if self.verification is None else self.verification.to_json()
        data["records_per_second"] = round(self.records / self.seconds, 1) if self.seconds > 0 else None
        return data


# --- export ------------------------------------------------------------------------------------


def _page_size(store: VectorStore, wanted: int = BATCH) -> int:
    return max(1, min(wanted, store.capabilities.max_page_size))


async def pages(
    store: VectorStore, collection: str, filter: FilterLike = None, *, batch_size: int = BATCH
) -> AsyncIterator[list[Record]]:
    """Every record of ``collection`` matching ``filter``, vectors included, a page at a time."""
    async for page in store.scroll(
        collection, filter, batch_size=_page_size(store, batch_size), with_vectors=True
    ):
        if page.records:
            yield list(page.records)


async def export_collection(
    store: VectorStore,
    collection: str,
    out: Path | str,
    *,
    filter: FilterLike = None,
    sealer: SnapshotSealer | None = None,
    source: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    batch_size: int = BATCH,
    rows_per_file: int = ROWS_PER_FILE,
) -> ExportSummary:
    """Write ``collection`` (the records matching ``filter``) as a snapshot at ``out``."""
    from vpa.typedjson import encode_value

    node = parse_filter(filter)  # a bad filter fails before anything is created
    info = await store.open_collection(collection)
    spec = None if node is None else json.loads(json.dumps(filter, default=encode_value))
    writer = SnapshotWriter(out, info, filter=spec, source=source, sealer=sealer, rows_per_file=rows_per_file)
    try:
        async for page in pages(store, collection, filter, batch_size=batch_size):
            await asyncio.to_thread(writer.add, page)
            if progress is not None:
                progress(len(page))
        manifest = await asyncio.to_thread(writer.finish)
    except BaseException:
        writer.abort()
        raise
    return ExportSummary(
        collection=collection,
        path=str(out),
        records=manifest.records,
        files=len(manifest.files),
        bytes=sum(f.bytes for f in manifest.files),
        encrypted=sealer is not None,
    )


# --- import ------------------------------------------------------------------------------------


class _Writer:
    """Upserts batches into a collection, resuming: when the collection was not empty at the start,
    each batch's ids are read first and records already there unchanged are skipped."""

    def __init__(self, store: VectorStore, collection: str, resume: bool) -> None:
        self.store = store
        self.collection = collection
        self.resume = resume
        self.written = self.skipped = self.replaced = 0

    async def write(self, records: list[Record]) -> None:
        if not records:
            return
        batch = list({r.id: r for r in records}.values())  # the last of an id wins, as in upsert
        if self.resume:
            present = {r.id: r for r in await self.store.get(self.collection, [r.id for r in batch])}
            fresh = []
            for record in batch:
                there = present.get(record.id)
                if there is None:
                    fresh.append(record)
                elif record_difference(there, record) is None:
                    self.skipped += 1
                else:
                    fresh.append(record)
                    self.replaced += 1
            batch = fresh
        if batch:
            await self.store.upsert(self.collection, batch)
            self.written += len(batch)


async def _open_target(
    store: VectorStore, name: str, dimension: int, metric: str, fingerprint: EmbedderFingerprint | None
) -> tuple[CollectionInfo, int]:
    """Create (or open, if compatible) the target collection; return it and how many records it
    held before."""
    existed = True
    try:
        await store.open_collection(name)
    except CollectionNotFound:
        existed = False
    info = await store.create_collection(name, dimension, metric=metric, fingerprint=fingerprint)
    before = await store.count(name) if existed else 0
    return info, before


async def import_snapshot(
    store: VectorStore,
    snapshot: Path | str,
    *,
    collection: str | None = None,
    sealer: SnapshotSealer | None = None,
    if_not_empty: str = "resume",
    progress: Progress | None = None,
    batch_size: int = BATCH,
) -> ImportSummary:
    """Import a snapshot into ``collection`` (default: the name it was exported from).

    ``if_not_empty``: ``"resume"`` (records already there unchanged are skipped, others written),
    ``"refuse"`` (`CollectionNotEmpty` before any write) or ``"replace"`` (as resume, then every
    record the snapshot does not hold is deleted: the collection ends as the snapshot)."""
    if if_not_empty not in ("resume", "refuse", "replace"):
        raise ValidationError(f"if_not_empty must be resume, refuse or replace, not {if_not_empty!r}")
    with Snapshot(snapshot) as snap:
        manifest = snap.manifest
        _sealer_for(manifest, sealer, str(snap.path))  # no key, or another: refused before any write
        await asyncio.to_thread(snap.verify)
        name = check_collection_name(collection or manifest.collection)
        info, before = await _open_target(
            store, name, manifest.dimension, manifest.metric, manifest.fingerprint
        )
        if before and if_not_empty == "refuse":
            raise CollectionNotEmpty(
                f"collection {name!r} already holds {before} records; nothing was written (import into an "
                "empty collection, or resume to skip the records already there)"
            )
        writer = _Writer(store, info.name, resume=before > 0)
        seen: set[str] | None = set() if before and if_not_empty == "replace" else None
        batches = snap.batches(sealer, batch_size)
        while True:
            batch = await asyncio.to_thread(next, batches, None)
            if batch is None:
                break
            if seen is not None:
                seen.update(r.id for r in batch)
            await writer.write(batch)
            if progress is not None:
                progress(len(batch))
    removed = 0
    if seen is not None:
        removed = await _remove_others(store, info.name, seen)
    return ImportSummary(
        collection=info.name,
        records=manifest.records,
        written=writer.written,
        skipped=writer.skipped,
        replaced=writer.replaced,
        removed=removed,
    )


async def _remove_others(store: VectorStore, collection: str, keep: set[str]) -> int:
    extra: list[str] = []
    async for page in store.scroll(collection, batch_size=_page_size(store), with_vectors=False):
        extra.extend(r.id for r in page.records if r.id not in keep)
    removed = 0
    for start in range(0, len(extra), BATCH):
        removed += await store.delete(collection, ids=extra[start : start + BATCH])
    return removed


# --- migrate -----------------------------------------------------------------------------------


async def migrate(
    source: VectorStore,
    source_collection: str,
    target: VectorStore,
    target_collection: str | None = None,
    *,
    filter: FilterLike = None,
    verify: bool = True,
    sample: int = 200,
    queries: int = 20,
    top_k: int = 10,
    progress: Progress | None = None,
    batch_size: int = BATCH,
    seed: int = 0,
) -> MigrateSummary:
    """Copy ``source_collection`` (the records matching ``filter``) into ``target_collection`` of
    ``target``: no file, no re-embedding, the embedder fingerprint carried over. Resumable like
    `import_snapshot`. With ``verify``, ends with `verify_copy` (`VerificationFailed` if it fails)."""
    import time

    parse_filter(filter)
    info = await source.open_collection(source_collection)
    name = check_collection_name(target_collection or source_collection)
    if source is target and name == info.name:
        raise ValidationError("migrate needs a different target: the same store and collection")
    target_info, before = await _open_target(target, name, info.dimension, str(info.metric), info.fingerprint)
    writer = _Writer(target, target_info.name, resume=before > 0)
    rng = random.Random(seed)
    reservoir: list[str] = []
    seen = 0
    started = time.perf_counter()
    queue: asyncio.Queue[list[Record] | None] = asyncio.Queue(maxsize=2)

    async def produce() -> None:
        try:
            async for page in pages(source, info.name, filter, batch_size=batch_size):
                await queue.put(page)
        finally:
            await queue.put(None)

    producer = asyncio.create_task(produce())
    try:
        while (page := await queue.get()) is not None:
            for record in page:  # a uniform sample of the ids, in one pass
                seen += 1
                if len(reservoir) < sample:
                    reservoir.append(record.id)
                elif (j := rng.randrange(seen)) < sample:
                    reservoir[j] = record.id
            await writer.write(page)
            if progress is not None:
                progress(len(page))
        await producer  # its error, if it failed
    finally:
        if not producer.done():
            producer.cancel()
            with contextlib.suppress(BaseException):  # the cancelled reader's own end
                await producer
    seconds = time.perf_counter() - started
    verification = None
    if verify:
        verification = await verify_copy(
            source,
            info.name,
            target,
            target_info.name,
            reservoir,
            filter=filter,
            queries=queries,
            top_k=top_k,
            expect_target=None if before else seen,
        )
    return MigrateSummary(
        source=info.name,
        target=target_info.name,
        records=seen,
        written=writer.written,
        skipped=writer.skipped,
        replaced=writer.replaced,
        seconds=seconds,
        verification=verification,
    )


def required_overlap(a: VectorStore, b: VectorStore) -> float:
    """How much two stores' top-k may differ and both still meet their declared recall: each misses
    at most 1 - min_recall of the true top-k, so they share at least ra + rb - 1 of it."""
    ra = 1.0 if a.capabilities.exact else a.capabilities.min_recall
    rb = 1.0 if b.capabilities.exact else b.capabilities.min_recall
    return max(0.0, ra + rb - 1.0)


async def verify_copy(
    source: VectorStore,
    source_collection: str,
    target: VectorStore,
    target_collection: str,
    sample_ids: Sequence[str],
    *,
    filter: FilterLike = None,
    queries: int = 20,
    top_k: int = 10,
    expect_target: int | None = None,
) -> Verification:
    """Check a copy: counts (the source's matching records; the target's, when it started empty),
    the sampled records field by field, and ``queries`` of the sampled vectors answered by both
    with the top-k overlap their declared recall allows (ties at the k-th score count as shared)."""
    for store, name in ((source, source_collection), (target, target_collection)):
        if store.capabilities.eventually_consistent:
            await store.settle(name)
    count_source = await source.count(source_collection, filter)
    count_target = await target.count(target_collection)
    if expect_target is not None and count_target != expect_target:
        raise VerificationFailed(
            f"target {target_collection!r} holds {count_target} records after copying {expect_target}"
        )
    if count_target < count_source:
        raise VerificationFailed(
            f"target {target_collection!r} holds {count_target} records, the source {count_source}"
        )
    ids = list(sample_ids)
    got = {r.id: r for r in await _get_all(target, target_collection, ids)}
    want = {r.id: r for r in await _get_all(source, source_collection, ids)}
    for record_id, record in want.items():
        there = got.get(record_id)
        if there is None:
            raise VerificationFailed(f"record {record_id[:80]!r} is missing from the target")
        difference = record_difference(there, record)
        if difference is not None:
            raise VerificationFailed(f"record {record_id[:80]!r} differs in the target: {difference}")
    needed = required_overlap(source, target)
    shared = total = 0
    k = max(1, min(top_k, count_source))
    for record_id in ids[:queries]:
        if record_id not in want:
            continue
        vector = want[record_id].vector
        a = await source.query(source_collection, vector, k, filter)
        b = await target.query(target_collection, vector, k, filter)
        shared += _shared(a, b)
        total += len(a)
    overlap = shared / total if total else 1.0
    if overlap + 1e-9 < needed:
        raise VerificationFailed(
            f"the two stores answer the same queries with a top-{k} overlap of {overlap:.3f}; "
            f"their declared recall allows no less than {needed:.3f}"
        )
    return Verification(count_source, count_target, len(want), min(len(ids), queries), overlap, needed)


def _shared(a: Sequence[Any], b: Sequence[Any], tolerance: float = 1e-4) -> int:
    """Hits of ``a`` also in ``b``, counting a hit tied (within ``tolerance``) with ``b``'s last
    score as shared: which of equal-scored records is k-th is arbitrary."""
    if not a or not b:
        return 0
    ids = {h.id for h in b}
    last = min(h.score for h in b)
    return sum(1 for h in a if h.id in ids or (len(b) >= len(a) and abs(h.score - last) <= tolerance))


async def _get_all(store: VectorStore, collection: str, ids: Sequence[str]) -> list[Record]:
    found: list[Record] = []
    for start in range(0, len(ids), BATCH):
        found.extend(await store.get(collection, list(ids[start : start + BATCH])))
    return found


# --- backup and restore -----------------------------------------------------------------------


@attrs.frozen
class BackupSummary:
    path: str
    collections: tuple[ExportSummary, ...]
    key_file: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "key_file": self.key_file,
            "collections": [c.to_json() for c in self.collections],
            "records": sum(c.records for c in self.collections),
        }


@attrs.frozen
class RestoreSummary:
    path: str
    collections: tuple[ImportSummary, ...]
    key_file: str

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "key_file": self.key_file,
            "collections": [c.to_json() for c in self.collections],
            "records": sum(c.records for c in self.collections),
        }


async def backup(
    store: VectorStore,
    directory: Path | str,
    *,
    key_file: Path | None = None,
    sealer: SnapshotSealer | None = None,
    source: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> BackupSummary:
    """Every collection of ``store`` as a snapshot under ``directory`` (which must not exist or be
    empty), plus ``key_file`` (the API keys' hashes) when given and present. Written under a
    partial name and renamed when complete."""
    out = Path(directory)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValidationError(f"{out} already exists and is not empty; back up into a new folder")
    folder = out.with_name(f"{out.name}.partial-{os.getpid()}")
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "collections").mkdir(parents=True)
    try:
        summaries = []
        for name in sorted(await store.list_collections()):
            summary = await export_collection(
                store, name, folder / "collections" / name, sealer=sealer, source=source, progress=progress
            )
            summaries.append(attrs.evolve(summary, path=f"collections/{name}"))
        has_keys = key_file is not None and Path(key_file).is_file()
        entry: dict[str, Any] | None = None
        if has_keys:
            data = Path(key_file).read_bytes()  # type: ignore[arg-type]
            (folder / KEY_FILE).write_bytes(data)
            os.chmod(folder / KEY_FILE, 0o600)
            entry = {"name": KEY_FILE, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        manifest = {
            "format": BACKUP_FORMAT,
            "format_version": BACKUP_VERSION,
            "vpa_version": _vpa_version(),
            "created_at": _now(),
            "source": dict(source or {}),
            "collections": [
                {"name": s.collection, "snapshot": s.path, "records": s.records} for s in summaries
            ],
            "key_file": entry,
        }
        with open(folder / BACKUP_MANIFEST, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(folder)
        if out.exists():
            out.rmdir()
        os.replace(folder, out)
        _fsync_dir(out.parent)
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise _full_disk(exc, f"writing backup {out}") from exc
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return BackupSummary(str(out), tuple(summaries), has_keys)


def read_backup(directory: Path | str) -> dict[str, Any]:
    """A backup's ``backup.json``, checked; `SnapshotError` if it is not one."""
    path = Path(directory) / BACKUP_MANIFEST
    if not path.is_file():
        raise SnapshotError(f"{directory} is not a VPA backup (no {BACKUP_MANIFEST})")
    try:
        data = json.loads(path.read_bytes()[: MAX_MANIFEST_BYTES + 1])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"{path} is not JSON ({exc})") from None
    if not isinstance(data, Mapping) or data.get("format") != BACKUP_FORMAT:
        raise SnapshotError(f"{path} is not a VPA backup manifest")
    if not isinstance(data.get("format_version"), int) or data["format_version"] > BACKUP_VERSION:
        raise SnapshotError(f"{path}: backup format {data.get('format_version')!r} is not one this VPA reads")
    for entry in data.get("collections", []):
        check_collection_name(entry.get("name"))
        if Path(str(entry.get("snapshot"))).is_absolute() or ".." in Path(str(entry.get("snapshot"))).parts:
            raise SnapshotError(f"{path}: snapshot path {entry.get('snapshot')!r} leaves the backup")
    return dict(data)


async def restore(
    store: VectorStore,
    directory: Path | str,
    *,
    key_file: Path | None = None,
    overwrite: bool = False,
    sealer: SnapshotSealer | None = None,
    progress: Progress | None = None,
) -> RestoreSummary:
    """Restore a `backup`: every snapshot into the collection of its name, and the key file to
    ``key_file``. Before any write, every snapshot is checked (manifest, key, checksums) and every
    target collection must be empty — unless ``overwrite``, when each ends as its snapshot."""
    root = Path(directory)
    data = read_backup(root)
    entries = list(data.get("collections", []))
    for entry in entries:  # everything checked before the first write
        with Snapshot(root / entry["snapshot"]) as snap:
            _sealer_for(snap.manifest, sealer, str(snap.path))
            await asyncio.to_thread(snap.verify)
    if not overwrite:
        existing = set(await store.list_collections())
        busy = [e["name"] for e in entries if e["name"] in existing and await store.count(e["name"]) > 0]
        if busy:
            raise CollectionNotEmpty(
                f"collections {busy} are not empty; restore into an empty store or pass --overwrite"
            )
    key_action = "none"
    entry = data.get("key_file")
    if entry and key_file is not None:
        blob = (root / KEY_FILE).read_bytes()
        if hashlib.sha256(blob).hexdigest() != entry.get("sha256"):
            raise SnapshotError(f"{root / KEY_FILE} does not match its checksum in the backup")
        target = Path(key_file)
        if target.exists() and target.read_bytes() != blob and not overwrite:
            raise ConfigError(f"{target} exists with other keys; pass --overwrite to replace it")
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f"{target.name}.restore-{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        key_action = "restored"
    results = []
    for entry in entries:
        results.append(
            await import_snapshot(
                store,
                root / entry["snapshot"],
                collection=entry["name"],
                sealer=sealer,
                if_not_empty="replace" if overwrite else "refuse",
                progress=progress,
            )
        )
    return RestoreSummary(str(root), tuple(results), key_action)


# --- building stores from configuration ----------------------------------------------------------


def open_store(config: Any, provider: str | None = None, *, registry: Any = None) -> VectorStore:
    """The store ``provider`` (default: the configured one) as the RAG layer sees it: encrypted
    text opened with the configured key, or sealed data refused without it."""
    from vpa.crypto import protect_store
    from vpa.plugins import get_registry

    if provider is not None:
        config = config.replace(provider=provider)
    registry = registry or get_registry()
    return protect_store(registry.create("store", config.provider, config), config)

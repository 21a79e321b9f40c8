"""Reading files into documents for ``vpa ingest``: .txt, .md (with YAML front matter), .html."""

from __future__ import annotations

import codecs
import datetime as dt
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import charset_normalizer
import frontmatter
from bs4 import BeautifulSoup

from vpa.errors import InvalidMetadata, ValidationError
from vpa.models import Document

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")


@attrs.frozen
class Found:
    """The files a command was given: each with the id it will be stored under, and the problems
    met while looking (an unreadable folder), reported, never skipped in silence."""

    files: list[tuple[Path, str]]
    problems: list[str]


def document_id(path: Path, base: Path) -> str:
    """A file's id: its path relative to the current folder when it lies under it (so
    ``vpa ingest docs/`` stores ``docs/a.md`` and ``vpa get docs/a.md`` finds it), else relative to
    ``base`` (the common folder of everything the command was given)."""
    absolute = path.resolve()
    cwd = Path.cwd().resolve()
    try:
        return absolute.relative_to(cwd).as_posix()
    except ValueError:
        return absolute.relative_to(base).as_posix()


def find_files(paths: Iterable[str | Path]) -> Found:
    """Every file with a known suffix under ``paths``, sorted, each with its id. Ids are unique
    over the whole call (two files never share one); a missing path is a `ValidationError`."""
    given = [Path(raw) for raw in paths]
    for path in given:
        if not path.exists():
            raise ValidationError(f"no such file or folder: {path}")
    problems: list[str] = []
    files: list[Path] = []
    for path in given:
        if path.is_file():
            files.append(path)
            continue

        def unreadable(error: OSError) -> None:
            problems.append(f"cannot read folder {error.filename}: {error.strerror}")

        for folder, _subfolders, names in os.walk(path, onerror=unreadable):
            files.extend(Path(folder) / n for n in sorted(names) if Path(n).suffix.lower() in SUFFIXES)
    resolved = [f.resolve() for f in files]
    base = Path(os.path.commonpath([p.parent for p in resolved])) if resolved else Path.cwd()
    by_id: dict[str, Path] = {}
    seen: set[Path] = set()
    out: list[tuple[Path, str]] = []
    for path, absolute in sorted(zip(files, resolved, strict=True), key=lambda pair: str(pair[1])):
        if absolute in seen:
            continue  # the same file given twice
        seen.add(absolute)
        doc_id = document_id(absolute, base)
        if doc_id in by_id:
            raise ValidationError(f"{by_id[doc_id]} and {absolute} would both be stored as {doc_id!r}")
        by_id[doc_id] = absolute
        out.append((path, doc_id))
    return Found(out, problems)


def decode(raw: bytes, path: Path) -> str:
    """Text of a file in UTF-8 (with or without a BOM), UTF-16/32 with a BOM, or the encoding
    charset-normalizer detects (Latin-1, Windows-1252, ...). Binary data is refused."""
    for bom, encoding in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                          (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):
        if raw.startswith(bom):
            return raw.decode(encoding)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        best = charset_normalizer.from_bytes(raw).best()
        if best is None or b"\x00" in raw:
            raise ValidationError(f"cannot read {path}: not text in any encoding VPA recognises") from None
        text = str(best)
    if "\x00" in text:
        raise ValidationError(f"cannot read {path}: it holds NUL characters (a binary file?)")
    return text


def _metadata_value(key: str, value: Any, source: Path) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    if isinstance(value, Mapping):
        raise InvalidMetadata(f"{source}: front matter {key!r} is a nested object; metadata must be flat")
    return value


def read_document(path: Path, doc_id: str, extra: Mapping[str, Any] | None = None) -> Document:
    """One file as the document ``doc_id``; title from front matter, <title> or the first heading,
    else the file name. Any problem with the file is one `ValidationError` naming it."""
    try:
        raw = decode(path.read_bytes(), path)
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror or exc}") from None
    metadata: dict[str, Any] = {}
    title = ""
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        soup = BeautifulSoup(raw, "html.parser")
        title = soup.title.get_text(strip=True) if soup.title else ""
        for tag in soup(["script", "style", "head"]):
            tag.decompose()
        content = soup.get_text("\n", strip=True)
    elif suffix in (".md", ".markdown"):
        try:
            post = frontmatter.loads(raw)
        except Exception as exc:  # yaml's errors, and whatever a handler raises on odd input
            reason = " ".join(str(exc).split())[:200]
            raise ValidationError(f"{path}: malformed front matter: {reason}") from None
        content = post.content
        for key, value in post.metadata.items():
            if value is not None:
                metadata[key] = _metadata_value(key, value, path)
        title = str(metadata.pop("title", "") or "")
        if not title:
            title = next((line.lstrip("#").strip() for line in content.splitlines() if line.startswith("#")), "")
    else:
        content = raw
    metadata["source"] = path.name
    metadata.update(extra or {})
    return Document(id=doc_id, title=title or path.stem, content=content, metadata=metadata)


def read_documents(paths: Iterable[str | Path], extra: Mapping[str, Any] | None = None) -> Iterator[Document]:
    for path, doc_id in find_files(paths).files:
        yield read_document(path, doc_id, extra)

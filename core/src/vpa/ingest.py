"""Reading files into documents for ``vpa ingest``: .txt, .md (with YAML front matter), .html."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import frontmatter
from bs4 import BeautifulSoup

from vpa.errors import InvalidMetadata, ValidationError
from vpa.models import Document

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")


def find_files(paths: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """Every readable file under ``paths`` as (file, root it was found under), sorted."""
    found: list[tuple[Path, Path]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend((f, path) for f in sorted(path.rglob("*")) if f.is_file() and f.suffix.lower() in SUFFIXES)
        elif path.is_file():
            found.append((path, path.parent))
        else:
            raise ValidationError(f"no such file or folder: {path}")
    return found


def _metadata_value(key: str, value: Any, source: Path) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    if isinstance(value, Mapping):
        raise InvalidMetadata(f"{source}: front matter {key!r} is a nested object; metadata must be flat")
    return value


def read_document(path: Path, root: Path, extra: Mapping[str, Any] | None = None) -> Document:
    """One file as a document: id is its path relative to ``root``; title from front matter,
    <title> or the first heading, else the file name."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read {path}: {exc}") from exc
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
        post = frontmatter.loads(raw)
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
    return Document(id=path.relative_to(root).as_posix(), title=title or path.stem, content=content, metadata=metadata)


def read_documents(paths: Iterable[str | Path], extra: Mapping[str, Any] | None = None) -> Iterator[Document]:
    for path, root in find_files(paths):
        yield read_document(path, root, extra)

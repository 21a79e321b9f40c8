"""The `recursive` chunker: split at the largest natural boundary that keeps chunks small enough.

Like LangChain's RecursiveCharacterTextSplitter, it tries paragraph breaks, then line breaks, then
sentence ends, then words, then characters; unlike it, it works on offsets throughout, so every
chunk is exactly ``text[start:end]`` (no stripping, no searching the text for the chunk again) and
the chunks cover the whole text. That is what lets the RAG layer rebuild a document from its
chunks and show readers where a hit came from.
"""

from __future__ import annotations

import re
from typing import Any

from vpa.chunkers.base import Chunker
from vpa.hookspecs import hookimpl
from vpa.models import Chunk

DEFAULT_SEPARATORS = ("\n\n", "\n", r"(?<=[.!?])\s+", r"(?<=[;:,])\s+", r"\s+")


class RecursiveChunker(Chunker):
    name = "recursive"

    def __init__(self, chunk_size: int = 1000, chunk_overlap: int = 200, separators: tuple[str, ...] = DEFAULT_SEPARATORS) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        if not 0 <= chunk_overlap < chunk_size:
            raise ValueError("chunk_overlap must be at least 0 and smaller than chunk_size")
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self._separators = tuple(re.compile(s if s.startswith("(") or "\\" in s else re.escape(s)) for s in separators)

    def _pieces(self, text: str, start: int, end: int, level: int) -> list[tuple[int, int]]:
        """Contiguous spans covering [start, end), each at most chunk_size long."""
        if end - start <= self.chunk_size:
            return [(start, end)]
        if level >= len(self._separators):
            return [(i, min(i + self.chunk_size, end)) for i in range(start, end, self.chunk_size)]
        cuts = [m.end() for m in self._separators[level].finditer(text, start, end) if start < m.end() < end]
        if not cuts:
            return self._pieces(text, start, end, level + 1)
        spans, previous = [], start
        for cut in [*cuts, end]:
            if cut > previous:
                spans.extend(self._pieces(text, previous, cut, level + 1))
                previous = cut
        return spans

    def split(self, text: str) -> list[Chunk]:
        if not text:
            return []
        pieces = self._pieces(text, 0, len(text), 0)
        chunks: list[Chunk] = []
        i = 0
        while i < len(pieces):
            start = pieces[i][0]
            j = i
            while j + 1 < len(pieces) and pieces[j + 1][1] - start <= self.chunk_size:
                j += 1
            end = pieces[j][1]
            chunks.append(Chunk(text[start:end], start, end, len(chunks)))
            if j + 1 >= len(pieces):
                break
            # Start the next chunk at the earliest piece that keeps the overlap within bounds
            # while leaving room for the next new piece, so that every chunk makes progress.
            k = j + 1
            next_end = pieces[j + 1][1]
            while (
                k - 1 > i
                and end - pieces[k - 1][0] <= self.chunk_overlap
                and next_end - pieces[k - 1][0] <= self.chunk_size
            ):
                k -= 1
            i = k
        return chunks


@hookimpl
def vpa_register_chunkers(register: Any) -> None:
    register(
        "recursive",
        lambda config: RecursiveChunker(config.chunk_size, config.chunk_overlap),
        description="boundary-aware recursive splitter with exact character offsets",
    )

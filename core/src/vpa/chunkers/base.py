"""The chunker interface: text → ordered chunks whose offsets point at the exact text."""

from __future__ import annotations

import abc

from vpa.models import Chunk


class Chunker(abc.ABC):
    """Splits text. Contract: ``chunk.text == text[chunk.start:chunk.end]``, chunks are in order,
    together they cover every character of the text, none is longer than ``chunk_size``, and
    consecutive chunks overlap by at most ``chunk_overlap`` characters."""

    name: str = ""
    chunk_size: int
    chunk_overlap: int

    @abc.abstractmethod
    def split(self, text: str) -> list[Chunk]: ...

"""The chunker contract: chunks cover the text with exact offsets, deterministic, settings honoured."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vpa.chunkers.base import Chunker
from vpa.models import Chunk

from vpa_conformance import strategies as vst
from vpa_conformance.checks import fail
from vpa_conformance.components.common import (
    COMPONENT_EXAMPLES,
    _Counter,
    _CountsExamples,
)
from vpa_conformance.profiles import clause_settings

_CHUNK_WORDS = [
    "a",
    "word",
    "longerword",
    "ünïcode",
    "数据库",
    "🙂",
    "x" * 40,
    "end.",
    "stop!",
    "why?",
    "semi;",
    "co,",
]
_CHUNK_SEPARATORS = [" ", " ", " ", "\n", "\n\n", ". ", ", ", "\t", "  ", ""]


@st.composite
def documents(draw: st.DrawFn, max_words: int = 400) -> str:
    """Text with words, sentences, lines and paragraphs, unicode, and runs with no boundary."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(vst._CHARS, max_size=300))
    words = draw(st.lists(st.sampled_from(_CHUNK_WORDS), max_size=max_words))
    out = []
    for word in words:
        out.append(word)
        out.append(draw(st.sampled_from(_CHUNK_SEPARATORS)))
    return "".join(out)


class ChunkerContract(_CountsExamples):
    """Chunks cover the text, in order, each exactly ``text[start:end]``, at most ``chunk_size``
    long, consecutive ones overlapping by at most ``chunk_overlap`` characters."""

    @pytest.fixture
    def chunker(self) -> Chunker:
        pytest.fail("a ChunkerContract subclass must define a `chunker` fixture")

    def test_settings(self, chunker: Chunker, vpa_examples: _Counter) -> None:
        """chunk_size is a positive int and 0 <= chunk_overlap < chunk_size."""
        vpa_examples.tick()
        size, overlap = chunker.chunk_size, chunker.chunk_overlap
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            fail(f"chunk_size must be a positive int, got {size!r}")
        if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < size:
            fail(f"chunk_overlap must be an int in [0, chunk_size), got {overlap!r}")

    def test_empty_text(self, chunker: Chunker, vpa_examples: _Counter) -> None:
        """An empty text has no chunks."""
        vpa_examples.tick()
        if chunker.split("") != []:
            fail("split('') must return []")

    @staticmethod
    def check_chunks(chunker: Chunker, text: str, chunks: list[Chunk]) -> None:
        if not text:
            if chunks:
                fail("split('') must return []")
            return
        if not chunks:
            fail(f"split returned no chunks for a text of {len(text)} characters")
        previous: Chunk | None = None
        for i, chunk in enumerate(chunks):
            if not isinstance(chunk, Chunk):
                fail(f"split must return Chunk objects, got {type(chunk).__name__}")
            if chunk.index != i:
                fail(f"chunk {i} has index {chunk.index}")
            if not 0 <= chunk.start < chunk.end <= len(text):
                fail(
                    f"chunk {i} has offsets [{chunk.start}, {chunk.end}) outside the text of "
                    f"{len(text)} characters"
                )
            if chunk.text != text[chunk.start : chunk.end]:
                fail(f"chunk {i}'s text is not text[{chunk.start}:{chunk.end}]")
            if chunk.end - chunk.start > chunker.chunk_size:
                fail(
                    f"chunk {i} is {chunk.end - chunk.start} characters long; chunk_size is "
                    f"{chunker.chunk_size}"
                )
            if previous is None:
                if chunk.start != 0:
                    fail(f"the first chunk starts at {chunk.start}: characters [0, {chunk.start}) are lost")
            else:
                if chunk.start > previous.end:
                    fail(
                        f"characters [{previous.end}, {chunk.start}) between chunks {i - 1} and {i} are lost"
                    )
                if chunk.start <= previous.start or chunk.end <= previous.end:
                    fail(f"chunk {i} [{chunk.start}, {chunk.end}) does not advance past chunk {i - 1}")
                overlap = previous.end - chunk.start
                if overlap > chunker.chunk_overlap:
                    fail(
                        f"chunks {i - 1} and {i} overlap by {overlap} characters; chunk_overlap is "
                        f"{chunker.chunk_overlap}"
                    )
            previous = chunk
        assert previous is not None
        if previous.end != len(text):
            fail(f"the last chunk ends at {previous.end}: characters [{previous.end}, {len(text)}) are lost")

    @clause_settings(COMPONENT_EXAMPLES["chunker"])
    @given(text=documents())
    def test_chunks_cover_text(self, chunker: Chunker, vpa_examples: _Counter, text: str) -> None:
        """Chunks cover the text in order, with exact offsets, within chunk_size and
        chunk_overlap."""
        vpa_examples.tick()
        self.check_chunks(chunker, text, chunker.split(text))

    @clause_settings(COMPONENT_EXAMPLES["chunker"] // 2)
    @given(text=documents(max_words=100))
    def test_deterministic(self, chunker: Chunker, vpa_examples: _Counter, text: str) -> None:
        """Splitting the same text twice gives the same chunks."""
        vpa_examples.tick()
        if chunker.split(text) != chunker.split(text):
            fail("splitting the same text twice gave different chunks")


# --- cache -----------------------------------------------------------------------------------

"""Dynamic micro-batching of query encodings: concurrent searches share one embedder call.

A transformer encodes 32 short queries in little more time than one (the matrix products grow,
the per-call overhead does not), yet each search used to encode its query alone: under 50
concurrent users with all-MiniLM-L6-v2 the encoder, not the store, set the latency. `QueryBatcher`
batches *while busy*:

- A caller that finds the encoder idle encodes at once, in its own task, exactly as
  ``embedder.aembed([query])`` would: a lone caller pays no window and no extra hop.
- Callers that arrive while an encode is in flight queue up; when it ends, a drain task encodes
  up to ``max_batch`` of them in ONE ``embedder.aembed`` call (off the event loop, as the embedder
  decides), and repeats until the queue is empty. Under load batches grow by themselves.
- ``window`` lets a short batch wait for more joiners, but only counted from its oldest caller's
  arrival: a caller that queued behind a 10 ms encode has already waited longer than a 2 ms
  window, so the window costs nothing then; it matters only when an encode is shorter than it.
- A batch that fails is retried one query at a time, so a query the model cannot encode fails
  alone; a caller cancelled while it waits is skipped (its result dropped), the others are served.
- Rows are copies, equal to encoding the query alone within float tolerance (a batch pads the
  queries to one length: sentence-transformers rows differ from solo rows by about 1e-6).

``max_batch=1`` turns batching off: every call is the plain ``aembed([query])``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from vpa.embedders.base import Embedder
from vpa.errors import ConfigError, ValidationError

if TYPE_CHECKING:
    from vpa.config import VPAConfig

#: Bounds of the settings (``VPA_QUERY_BATCH_SIZE``, ``VPA_QUERY_BATCH_WINDOW_MS``): a batch
#: beyond this many queries gains nothing on a CPU and holds every caller in it longer; a window
#: beyond this many milliseconds would cost more latency than any batch saves.
MAX_QUERY_BATCH_SIZE = 1024
MAX_QUERY_BATCH_WINDOW_MS = 100.0


def query_batching_problems(batch_size: Any, window_ms: Any) -> list[str]:
    """What is wrong with these settings, as sentences naming the variables; empty when fine."""
    problems = []
    whole = isinstance(batch_size, int) and not isinstance(batch_size, bool)
    if not whole or not 1 <= batch_size <= MAX_QUERY_BATCH_SIZE:
        problems.append(
            f"VPA_QUERY_BATCH_SIZE must be a whole number from 1 (no batching) to {MAX_QUERY_BATCH_SIZE}, "
            f"not {batch_size!r}"
        )
    if (isinstance(window_ms, bool) or not isinstance(window_ms, (int, float)) or not math.isfinite(window_ms)
            or not 0 <= window_ms <= MAX_QUERY_BATCH_WINDOW_MS):
        problems.append(
            f"VPA_QUERY_BATCH_WINDOW_MS must be a number of milliseconds from 0 to {MAX_QUERY_BATCH_WINDOW_MS:g}, "
            f"not {window_ms!r}"
        )
    return problems


@attrs.define(slots=True)
class _Waiting:
    text: str
    future: asyncio.Future[np.ndarray]
    arrived: float


class QueryBatcher:
    """Encodes queries for concurrent callers in shared batches (see the module)."""

    def __init__(self, embedder: Embedder, *, max_batch: int = 32, window: float = 0.002) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be a positive whole number, got {max_batch!r}")
        if isinstance(window, bool) or not isinstance(window, (int, float)) or not (0 <= window < math.inf):
            raise ValueError(f"window must be a finite number of seconds, at least 0, got {window!r}")
        self.embedder = embedder
        self.max_batch = max_batch
        self.window = float(window)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: deque[_Waiting] = deque()
        #: True while an encode runs (a lone caller's own, or the drain task's).
        self._busy = False
        self._drainer: asyncio.Task[None] | None = None
        self._full: asyncio.Event | None = None

    @classmethod
    def from_config(cls, embedder: Embedder, config: VPAConfig) -> QueryBatcher:
        """The batcher ``VPA_QUERY_BATCH_SIZE`` and ``VPA_QUERY_BATCH_WINDOW_MS`` describe; a
        `ConfigError` naming the variable for a value out of bounds (never silently clamped)."""
        problems = query_batching_problems(config.query_batch_size, config.query_batch_window_ms)
        if problems:
            raise ConfigError("; ".join(problems))
        return cls(embedder, max_batch=config.query_batch_size, window=config.query_batch_window_ms / 1000)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """State belongs to one event loop; a system reused under a new loop (``asyncio.run``
        again) starts afresh: the old loop's waiters and drain task died with it."""
        self._loop = loop
        self._pending = deque()
        self._busy = False
        self._drainer = None
        self._full = asyncio.Event()

    async def embed_query(self, text: str) -> np.ndarray:
        """The query's vector (a row of ``embedder.dimension`` float32), batched with concurrent calls."""
        if not isinstance(text, str):  # checked per caller: a bad query never reaches a shared batch
            raise ValidationError(f"a query to embed must be a string, got {type(text).__name__}")
        if self.max_batch == 1:
            return (await self.embedder.aembed([text]))[0]
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._bind(loop)
        if not self._busy:
            # Idle: encode now, in this task, as an unbatched call would. Whoever arrives meanwhile
            # queues, and is served by a drain task started when this encode ends.
            self._busy = True
            try:
                return (await self.embedder.aembed([text]))[0]
            finally:
                self._release()
        waiting = _Waiting(text, loop.create_future(), loop.time())
        self._pending.append(waiting)
        if len(self._pending) >= self.max_batch and self._full is not None:
            self._full.set()
        return await waiting.future  # cancelling this caller cancels its future; the batch skips it

    def _release(self) -> None:
        """The encoder is free: hand the queue to a drain task, or go idle."""
        if self._pending and self._loop is not None and not self._loop.is_closed():
            self._drainer = self._loop.create_task(self._drain())
        else:
            self._busy = False

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        batch: list[_Waiting] = []
        try:
            while self._pending:
                await self._wait_for_joiners(loop)
                batch = []
                while self._pending and len(batch) < self.max_batch:
                    waiting = self._pending.popleft()
                    if not waiting.future.done():
                        batch.append(waiting)
                if self._full is not None and len(self._pending) < self.max_batch:
                    self._full.clear()
                if batch:
                    await self._encode(batch)
                batch = []
        except BaseException:
            # Only the loop's shutdown cancels this task (no caller holds it): nobody is left to
            # serve, so every waiter still here is cancelled rather than left hanging.
            if self._loop is loop:
                batch.extend(self._pending)
                self._pending.clear()
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.cancel()
            raise
        finally:
            self._drainer = None
            if self._loop is loop:
                self._busy = False

    async def _wait_for_joiners(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until the oldest queued caller has waited ``window``, or the batch is full."""
        if not self.window or len(self._pending) >= self.max_batch or self._full is None:
            return
        delay = self._pending[0].arrived + self.window - loop.time()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), delay)

    async def _encode(self, batch: list[_Waiting]) -> None:
        try:
            vectors = await self.embedder.aembed([w.text for w in batch])
            if vectors.shape[0] != len(batch):
                raise ValueError(f"the embedder returned {vectors.shape[0]} rows for {len(batch)} queries")
        except Exception as exc:
            if len(batch) == 1:
                self._fail(batch[0], exc)
                return
            # One query the model cannot encode must not fail the others: each alone, in turn.
            for waiting in batch:
                if waiting.future.done():
                    continue
                try:
                    vector = (await self.embedder.aembed([waiting.text]))[0]
                except Exception as single:
                    self._fail(waiting, single)
                else:
                    if not waiting.future.done():
                        waiting.future.set_result(vector)
            return
        for waiting, row in zip(batch, vectors, strict=True):
            if not waiting.future.done():
                waiting.future.set_result(row.copy())  # a row alone: a cached vector must not pin the batch

    @staticmethod
    def _fail(waiting: _Waiting, exc: Exception) -> None:
        if not waiting.future.done():
            waiting.future.set_exception(exc)

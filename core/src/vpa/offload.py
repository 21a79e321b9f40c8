"""Blocking calls of in-process engines: on a worker thread, or on the loop when that is cheaper.

An engine that runs in this process and holds the GIL while it works (VPA's memory store, Qdrant's
local mode) does not free the event loop by running in a worker thread: the loop gets the GIL back
only when the worker blocks or after CPython's switch interval (5 ms). For such a call the thread
buys nothing when it takes well under that interval, and it costs a hop: 0.1 ms idle, 0.3-0.45 ms
measured on this project's 2-core VM when the worker runs a millisecond or more (the idle loop
thread's CPU has gone to sleep by then). That hop was the largest part of VPA's search overhead
over a bare Qdrant local client.

`Offloader` learns how long each kind of call takes (an exponential average of the call alone,
without the hop) and runs the call inline while that average stays under `INLINE_BELOW`, in a
worker thread otherwise, and always in a worker thread until it has measured the kind. A call
guarded by a lock runs inline only if the lock is free at once, so the loop never waits for a
writer. Engines that release the GIL (Chroma's Rust queries) or wait on a socket (gRPC, HTTP)
must keep using a worker thread: for them the thread is what keeps the loop free.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Hashable
from typing import Protocol, TypeVar

T = TypeVar("T")


class _Lock(Protocol):
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...
    def __enter__(self) -> bool: ...
    def __exit__(self, *exc: object) -> None: ...

#: A call kind whose average is under this many seconds runs on the event loop.
INLINE_BELOW = 0.003
#: Weight of the newest duration in the average.
SMOOTHING = 0.3


class Offloader:
    """Chooses, per kind of call, between the event loop and a worker thread (see the module)."""

    def __init__(self, inline_below: float = INLINE_BELOW) -> None:
        self.inline_below = inline_below
        self._average: dict[Hashable, float] = {}

    def expected(self, kind: Hashable) -> float | None:
        """The average duration of ``kind`` in seconds, or None before its first call."""
        return self._average.get(kind)

    def _note(self, kind: Hashable, seconds: float) -> None:
        previous = self._average.get(kind)
        self._average[kind] = seconds if previous is None else previous + SMOOTHING * (seconds - previous)

    async def run(self, kind: Hashable, fn: Callable[[], T], lock: _Lock | None = None) -> T:
        """``fn()`` (holding ``lock`` if given), inline or in a worker thread."""
        expected = self._average.get(kind)
        quick = expected is not None and expected < self.inline_below
        if quick and (lock is None or lock.acquire(blocking=False)):
            started = time.perf_counter()
            try:
                return fn()
            finally:
                if lock is not None:
                    lock.release()
                self._note(kind, time.perf_counter() - started)

        def in_thread() -> T:
            with lock if lock is not None else contextlib.nullcontext():
                started = time.perf_counter()
                try:
                    return fn()
                finally:
                    self._note(kind, time.perf_counter() - started)

        return await asyncio.to_thread(in_thread)

"""`vpa.offload.Offloader`: quick GIL-bound calls on the loop, slow ones (and locked ones) off it."""

import asyncio
import threading
import time

from vpa.offload import Offloader


def _where() -> int:
    return threading.get_ident()


async def test_a_kind_runs_in_a_thread_until_measured_quick_then_inline():
    offload = Offloader(inline_below=0.002)
    loop_thread = threading.get_ident()
    first = await offload.run("q", _where)
    assert first != loop_thread  # never measured: off the loop
    assert offload.expected("q") is not None and offload.expected("q") < 0.002
    assert await offload.run("q", _where) == loop_thread


async def test_slow_calls_stay_off_the_loop_and_a_call_that_slows_down_leaves_it():
    offload = Offloader(inline_below=0.002)
    loop_thread = threading.get_ident()

    def slow() -> int:
        time.sleep(0.01)
        return threading.get_ident()

    assert await offload.run("slow", slow) != loop_thread
    assert await offload.run("slow", slow) != loop_thread
    await offload.run("grows", _where)
    assert await offload.run("grows", slow) == loop_thread  # measured quick so far: inline once
    assert offload.expected("grows") > 0.002  # that slow call moved the average over the line
    assert await offload.run("grows", _where) != loop_thread


async def test_a_held_lock_sends_the_call_to_a_thread_and_the_loop_keeps_running():
    offload = Offloader(inline_below=0.002)
    lock = threading.RLock()
    await offload.run("q", _where, lock)  # measured quick: would now run inline
    released = threading.Event()

    def writer() -> None:
        with lock:
            released.wait(5)

    holder = threading.Thread(target=writer)
    holder.start()
    try:
        call = asyncio.ensure_future(offload.run("q", _where, lock))
        ticks = 0
        for _ in range(5):
            await asyncio.sleep(0.005)
            ticks += 1
        assert not call.done() and ticks == 5  # waiting for the lock, on a worker thread
        released.set()
        assert await call != threading.get_ident()
    finally:
        released.set()
        holder.join()

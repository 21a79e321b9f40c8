"""What a connection may cost before it has proved anything: header and body deadlines, header
size, and a bound on open connections. `vpa serve` runs uvicorn with a protocol class from
`ConnectionGuard.protocol_class`.

uvicorn (0.3x-0.5x) bounds none of this itself: a fresh connection has no timer at all until its
first response (``timeout_keep_alive`` is armed only after a response and cancelled by the next
byte), httptools accepts headers of any size, and ``limit_concurrency`` answers 503 to *every*
request while too many sockets are merely open — it hands the server to whoever opens them. So the
guard, per connection:

- **headers**: a request's line and headers must be complete within ``header_timeout`` seconds of
  the connection opening or of the request's first byte, and within ``max_header_bytes``;
  otherwise 408 (or 431) and the connection is closed;
- **body**: a body must arrive within ``body_timeout`` seconds of its headers, plus a second for
  every ``min_body_rate`` bytes received (a large upload at a sane rate is never cut; a trickle
  is). A request the application is reading is told (``scope["vpa"]["body_timeout"]``) so it
  answers 408 with the error envelope; a body nobody reads (refused before it was read) just
  ends the connection;
- **connections**: at most ``max_connections`` are open. A new one beyond that closes the
  connection that has waited longest without a request in progress (a fresh or idle keep-alive
  connection, or one still sending headers) — so idle and incomplete sockets can never lock a
  real client out, and the process never runs out of file descriptors. When every connection is
  busy with a request, the new one is answered 503 and closed.

Timers are per connection (``loop.call_at``), so nothing is polled.
"""

from __future__ import annotations

import asyncio
import collections
import http
import json
import resource
import time
from collections.abc import Callable
from typing import Any, ClassVar

import attrs

MAX_HEADER_BYTES = 64 * 1024
MIN_BODY_RATE = 64 * 1024  # bytes per second that buy a second of body time
#: Seconds the application gets to answer 408 itself once told its body timed out.
BODY_TIMEOUT_GRACE = 1.0
#: File descriptors kept for everything but client connections (store files, logs, clients).
FD_RESERVE_MIN = 64
MAX_DEFAULT_CONNECTIONS = 10_000

HEAD, BODY, APP, IDLE = "head", "body", "app", "idle"
TOO_MANY = "the server has too many open connections; retry shortly"


def default_max_connections() -> int:
    """Open connections allowed when none is configured: what RLIMIT_NOFILE leaves after a reserve
    (an eighth, at least 64), at most 10,000 — e.g. 896 under the usual limit of 1024."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_DEFAULT_CONNECTIONS
    return max(16, min(MAX_DEFAULT_CONNECTIONS, soft - max(FD_RESERVE_MIN, soft // 8)))


def raw_error(status: int, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 error response with the error envelope, ending the connection."""
    body = json.dumps({"status": "error", "error": {"code": code, "message": message}}).encode()
    phrase = http.HTTPStatus(status).phrase
    head = (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


@attrs.define(eq=False)
class ConnectionGuard:
    """The limits, and the connections that may be closed to make room (oldest first)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = attrs.field(factory=default_max_connections)
    max_header_bytes: int = MAX_HEADER_BYTES
    min_body_rate: float = MIN_BODY_RATE
    #: Called with a reason each time the guard ends a connection (for metrics).
    on_close: Callable[[str], None] = lambda reason: None
    #: Connections with no request in progress, oldest first: fresh, idle, or sending headers.
    waiting: collections.OrderedDict[Any, None] = attrs.field(factory=collections.OrderedDict)
    open: int = 0

    def evict_oldest(self) -> bool:
        """Close the connection that has waited longest without a request in progress."""
        while self.waiting:
            victim, _ = self.waiting.popitem(last=False)
            if not victim.transport.is_closing():
                victim._vpa_evict()
                return True
        return False

    def protocol_class(self, http: str = "auto") -> type[asyncio.Protocol]:
        """uvicorn's HTTP/1.1 protocol (``httptools`` or ``h11``; ``auto``: httptools when
        installed) with this guard's limits."""
        if http == "auto":
            try:
                import httptools  # noqa: F401
            except ImportError:  # pragma: no cover - the server extra installs it
                http = "h11"
            else:
                http = "httptools"
        if http == "httptools":
            from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

            base: type[Any] = type("GuardedHttpTools", (_HttpToolsHooks, HttpToolsProtocol), {})
        elif http == "h11":
            from uvicorn.protocols.http.h11_impl import H11Protocol

            base = type("GuardedH11", (_H11Hooks, H11Protocol), {})
        else:
            raise ValueError(f"unknown HTTP implementation {http!r}; use auto, httptools or h11")
        return type(base.__name__, (base,), {"guard": self})


class _Guarded:
    """The guard's per-connection state machine: head → body → app → idle → head ..."""

    guard: ClassVar[ConnectionGuard]
    transport: asyncio.Transport
    connections: set[Any]
    cycle: Any
    loop: asyncio.AbstractEventLoop

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._vpa_timer: asyncio.TimerHandle | None = None
        self._vpa_phase = IDLE
        self._vpa_head_bytes = 0
        self._vpa_body_start = 0.0
        self._vpa_body_bytes = 0
        self._vpa_told = False
        guard = self.guard
        guard.open += 1
        self._vpa_counted = True
        if guard.open > guard.max_connections and not guard.evict_oldest():
            self._vpa_close(503, "too_many_connections", TOO_MANY, "refused")
            return
        self._vpa_enter_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._vpa_cancel()
        self._vpa_uncount()
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        if self._vpa_phase == IDLE and not self.transport.is_closing():
            self._vpa_enter_head()  # the next request on a keep-alive connection begins
        if self._vpa_phase == HEAD:
            self._vpa_head_bytes += len(data)
        super().data_received(data)  # type: ignore[misc]
        self._vpa_after_data(len(data))
        if (
            self._vpa_phase == HEAD
            and self._vpa_head_bytes > self.guard.max_header_bytes
            and not self.transport.is_closing()
        ):
            message = f"the request line and headers exceed {self.guard.max_header_bytes} bytes"
            self._vpa_close(431, "headers_too_large", message, "headers_too_large")

    def _vpa_after_data(self, size: int) -> None:
        """Implementation hook: notice header and message ends the parser does not call back."""

    # --- transitions ---------------------------------------------------------------------------

    def _vpa_enter_head(self) -> None:
        self._vpa_phase = HEAD
        self._vpa_head_bytes = 0
        self.guard.waiting[self] = None
        self.guard.waiting.move_to_end(self)
        self._vpa_arm(self.guard.header_timeout)

    def _vpa_headers_done(self) -> None:
        if self._vpa_phase != HEAD:
            return  # a pipelined request's headers: uvicorn holds it until the current one is done
        self.guard.waiting.pop(self, None)
        self._vpa_phase = BODY
        self._vpa_body_start = time.monotonic()
        self._vpa_body_bytes = 0
        self._vpa_told = False
        self._vpa_arm(self.guard.body_timeout)

    def _vpa_body(self, size: int) -> None:
        if self._vpa_phase == BODY:
            self._vpa_body_bytes += size

    def _vpa_message_done(self) -> None:
        if self._vpa_phase != BODY:
            return
        self._vpa_cancel()
        cycle = self.cycle
        if cycle is not None and cycle.response_complete:  # answered before its body was read
            self._vpa_idle()
        else:
            self._vpa_phase = APP

    def _vpa_response_done(self, next_cycle: Any) -> None:
        if self.transport.is_closing():
            return
        if next_cycle is not None:  # a pipelined request starts now
            self._vpa_phase = BODY if next_cycle.more_body else APP
            if next_cycle.more_body:
                self._vpa_body_start, self._vpa_body_bytes, self._vpa_told = time.monotonic(), 0, False
                self._vpa_arm(self.guard.body_timeout)
        elif self._vpa_phase == APP:
            self._vpa_idle()
        elif self._vpa_phase == BODY:  # answered before the body arrived: the deadline still runs
            self.guard.waiting[self] = None

    def _vpa_idle(self) -> None:
        self._vpa_phase = IDLE
        self.guard.waiting[self] = None
        self.guard.waiting.move_to_end(self)
        # uvicorn arms its keep-alive timer when a response completes, but a body that was still
        # arriving then cancelled it: keep-alive is timed here too.
        self._vpa_arm(float(getattr(self, "timeout_keep_alive", 5)))

    # --- timers --------------------------------------------------------------------------------

    def _vpa_arm(self, seconds: float) -> None:
        self._vpa_cancel()
        self._vpa_timer = self.loop.call_later(seconds, self._vpa_expired)

    def _vpa_cancel(self) -> None:
        timer = getattr(self, "_vpa_timer", None)
        if timer is not None:
            timer.cancel()
            self._vpa_timer = None

    def _vpa_expired(self) -> None:
        self._vpa_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        in_response = cycle is not None and not cycle.response_complete
        if self._vpa_phase == IDLE:
            self._vpa_close(None, "idle", "", "idle")
        elif self._vpa_phase == HEAD:
            if in_response:  # a pipelined request is slow: end the connection after this response
                cycle.keep_alive = False
                return
            message = f"the request headers did not arrive within {self.guard.header_timeout:g} s"
            self._vpa_close(408, "request_timeout", message, "header_timeout")
        elif self._vpa_phase == BODY:
            guard = self.guard
            deadline = self._vpa_body_start + guard.body_timeout + self._vpa_body_bytes / guard.min_body_rate
            now = time.monotonic()
            if now < deadline and not self._vpa_told:
                self._vpa_arm(deadline - now)  # the body is still arriving at a sane rate
                return
            message = f"the request body did not arrive within {guard.body_timeout:g} s"
            if not in_response:  # nobody is reading it (answered already): just end the connection
                self._vpa_close(None, "request_timeout", message, "body_timeout")
            elif not cycle.response_started and not self._vpa_told:
                # The application may be reading it: let it answer 408 with the envelope itself.
                self._vpa_told = True
                cycle.scope.setdefault("vpa", {})["body_timeout"] = message
                cycle.message_event.set()
                self._vpa_arm(BODY_TIMEOUT_GRACE)
            elif not cycle.response_started:
                self._vpa_close(408, "request_timeout", message, "body_timeout")
            else:
                cycle.keep_alive = False

    # --- closing -------------------------------------------------------------------------------

    def _vpa_evict(self) -> None:
        """Make room for a newer connection (this one has no request in progress)."""
        if self._vpa_phase == HEAD and self._vpa_head_bytes:
            self._vpa_close(503, "too_many_connections", TOO_MANY, "evicted")
        else:
            self._vpa_close(None, "too_many_connections", "", "evicted")

    def _vpa_uncount(self) -> None:
        self.guard.waiting.pop(self, None)
        if getattr(self, "_vpa_counted", False):
            self._vpa_counted = False
            self.guard.open -= 1

    def _vpa_close(self, status: int | None, code: str, message: str, reason: str) -> None:
        """End the connection (with a last error response when one can still be sent); it stops
        counting against ``max_connections`` at once, not when the transport is finally gone."""
        self._vpa_cancel()
        self._vpa_uncount()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the application's receive() sees http.disconnect
            cycle.message_event.set()
        if status is not None and (cycle is None or not cycle.response_started or cycle.response_complete):
            self.transport.write(raw_error(status, code, message))
        self.transport.close()
        self.guard.on_close(reason)


class _HttpToolsHooks(_Guarded):
    """httptools calls back at each step of the parse."""

    pipeline: Any

    def on_headers_complete(self) -> None:
        super().on_headers_complete()  # type: ignore[misc]
        self._vpa_headers_done()

    def on_body(self, body: bytes) -> None:
        super().on_body(body)  # type: ignore[misc]
        self._vpa_body(len(body))

    def on_message_complete(self) -> None:
        super().on_message_complete()  # type: ignore[misc]
        self._vpa_message_done()

    def on_response_complete(self) -> None:
        next_cycle = self.pipeline[-1][0] if self.pipeline else None
        super().on_response_complete()  # type: ignore[misc]
        self._vpa_response_done(next_cycle)


class _H11Hooks(_Guarded):
    """h11 has no callbacks: its parse state is read after each step."""

    conn: Any

    def _vpa_after_data(self, size: int) -> None:
        import h11

        state = self.conn.their_state
        if self._vpa_phase == HEAD and state is not h11.IDLE:
            self._vpa_headers_done()
        if self._vpa_phase == BODY:
            self._vpa_body(size)
            if state is not h11.SEND_BODY:
                self._vpa_message_done()

    def on_response_complete(self) -> None:
        import h11

        super().on_response_complete()  # type: ignore[misc]
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if self._vpa_phase == BODY:
            if state is h11.SEND_BODY:
                self.guard.waiting[self] = None
                return
            self._vpa_message_done()
        if self._vpa_phase == APP:
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:  # a pipelined request started
                self._vpa_response_done(cycle)
            else:
                self._vpa_idle()

"""Credit for streaming replies (protocol version 3), and whether the running
request asked for one.

A ``stream_request`` carries an initial credit; the host grants more with
``credit`` messages as its consumer reads. The producer of a stream (the
server iterating a handler's generator) takes one unit of credit per chunk
and waits, without asking the generator for its next value, while it has
none. This module must NOT know frames or handlers: the server feeds it.
"""

import asyncio
import contextvars
import threading
from typing import Optional

_STREAMING: "contextvars.ContextVar[bool]" = contextvars.ContextVar("pypool_streaming", default=False)


def streaming_requested() -> bool:
    """Whether the request this code runs for is a ``stream_request``.

    A handler (e.g. ``pypool.run_program`` for a DSPy program) may return a
    generator only then, and a plain value otherwise.
    """
    return _STREAMING.get()


def set_streaming(flag: bool) -> "contextvars.Token[bool]":
    """Marks the current context as serving a streaming request (or not); returns the reset token."""
    return _STREAMING.set(flag)


def reset_streaming(token: "contextvars.Token[bool]") -> None:
    """Undoes :func:`set_streaming`."""
    _STREAMING.reset(token)


class StreamCredit:
    """The credit of one stream, shared by the reader thread (grants, cancels)
    and the producer (a handler thread, the main thread, or the event loop)."""

    __slots__ = ("_cond", "_credit", "_stopped", "_reason", "_loop", "_event")

    def __init__(self, credit: int) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._credit = credit
        self._stopped = False
        #: Why the stream must stop (``"cancelled"``, ``"host_gone"``), once it must.
        self._reason: Optional[str] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._event: Optional[asyncio.Event] = None

    @property
    def credit(self) -> int:
        """Chunks the producer may still send."""
        with self._cond:
            return self._credit

    @property
    def stop_reason(self) -> Optional[str]:
        """``None`` while the stream may go on; else why it must stop."""
        with self._cond:
            return self._reason

    def grant(self, count: int) -> None:
        """Adds ``count`` to the credit and wakes a waiting producer (any thread)."""
        with self._cond:
            self._credit += count
            self._cond.notify_all()
        self._wake_loop()

    def stop(self, reason: str) -> None:
        """Tells the producer to stop (first reason wins) and wakes it (any thread)."""
        with self._cond:
            if self._reason is None:
                self._reason = reason
            self._stopped = True
            self._cond.notify_all()
        self._wake_loop()

    def take(self) -> bool:
        """Waits (blocking this thread) for one unit of credit and takes it;
        False, taking nothing, once the stream must stop."""
        with self._cond:
            while self._credit <= 0 and not self._stopped:
                self._cond.wait()
            if self._stopped:
                return False
            self._credit -= 1
            return True

    async def take_async(self) -> bool:
        """:meth:`take` for a producer on the event loop (it awaits instead of blocking)."""
        while True:
            with self._cond:
                if self._stopped:
                    return False
                if self._credit > 0:
                    self._credit -= 1
                    return True
                if self._event is None:
                    self._loop = asyncio.get_running_loop()
                    self._event = asyncio.Event()
                # Cleared under the lock: a grant after this sets it again.
                self._event.clear()
                event = self._event
            await event.wait()

    def _wake_loop(self) -> None:
        with self._cond:
            loop, event = self._loop, self._event
        if loop is not None and event is not None:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

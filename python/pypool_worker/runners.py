"""Where requests run: the worker's one event loop and its bounded thread pool.

``serial`` requests run on the main thread (the server's loop); ``async``
ones as tasks on :class:`EventLoopThread`, one long-lived loop on its own
thread; ``threads`` ones on :class:`ThreadRunner`, a bounded
``ThreadPoolExecutor``. Each thread first runs an optional initializer (the
server passes one keeping the stop signals for the main thread). Both are started on first use, so a worker whose
commands are all serial starts no extra thread. This module must NOT know
frames, commands or replies.
"""

import asyncio
import concurrent.futures
import threading
from typing import Any, Awaitable, Callable, Optional


class EventLoopThread:
    """One asyncio event loop running forever on a daemon thread."""

    def __init__(self, name: str = "pypool-event-loop", initializer: Optional[Callable[[], None]] = None) -> None:
        self._name = name
        self._initializer = initializer
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop, started on first use."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    if self._initializer is not None:
                        self._initializer()
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=run, name=self._name, daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Runs ``callback(*args)`` on the loop's thread (callable from any thread)."""
        self.loop.call_soon_threadsafe(callback, *args)

    def wait_for(self, awaitable: Awaitable[Any]) -> "concurrent.futures.Future[Any]":
        """Schedules ``awaitable`` on the loop; returns a future another thread may block on or cancel."""

        async def wait() -> Any:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wait(), self.loop)

    def stop(self, timeout: float = 1.0) -> None:
        """Stops the loop (tasks still pending are abandoned) and waits for its thread, briefly."""
        with self._lock:
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)


class ThreadRunner:
    """A bounded ``ThreadPoolExecutor`` created on first use."""

    def __init__(
        self, max_threads: int, name: str = "pypool-handler", initializer: Optional[Callable[[], None]] = None
    ) -> None:
        if max_threads < 1:
            raise ValueError("the thread pool needs at least 1 thread, got %d" % max_threads)
        #: The most threads that run handlers at once.
        self.max_threads = max_threads
        self._name = name
        self._initializer = initializer
        self._lock = threading.Lock()
        self._executor: Optional[concurrent.futures.ThreadPoolExecutor] = None

    def submit(self, function: Callable[..., Any], *args: Any) -> None:
        """Runs ``function(*args)`` on a pool thread (it must handle its own exceptions)."""
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    self.max_threads, thread_name_prefix=self._name, initializer=self._initializer
                )
            executor = self._executor
        executor.submit(function, *args)

    def shutdown(self) -> None:
        """Lets the pool's idle threads end; does not wait for running ones."""
        with self._lock:
            executor = self._executor
        if executor is not None:
            executor.shutdown(wait=False)

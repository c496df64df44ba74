"""Turning SIGTERM and SIGINT into a graceful-stop request.

The signal handlers only record the request; the serve loop decides when to
act (at once when idle, after replying when a request is running). A
self-pipe registered with :func:`signal.set_wakeup_fd` wakes the loop's
``select`` so an idle worker stops promptly. This module must NOT know the
frame format or the commands.
"""

import os
import signal
from types import FrameType
from typing import Optional

#: The signals that ask the worker to stop gracefully.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def block_stop_signals_in_this_thread() -> None:
    """Keeps SIGTERM and SIGINT away from the calling (helper) thread.

    The kernel then delivers them to the main thread, whose blocking calls
    (a serial handler reading a pipe, ``select``) are interrupted so the
    handler records the stop at once; delivered to a helper thread, they
    would wait until the main thread next runs Python code.
    """
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


class StopSignal:
    """Records whether (and by which signal) the worker was asked to stop."""

    def __init__(self) -> None:
        #: The number of the first stop signal received, or ``None``.
        self.signum: Optional[int] = None
        self._wake_read = -1
        self._wake_write = -1

    @property
    def requested(self) -> bool:
        """Whether a stop signal has arrived."""
        return self.signum is not None

    @property
    def name(self) -> str:
        """The received signal's name (``SIGTERM``), or ``""``."""
        if self.signum is None:
            return ""
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return "signal %d" % self.signum

    def install(self) -> None:
        """Installs the handlers and the wake-up pipe. Main thread only."""
        self._wake_read, self._wake_write = os.pipe()  # non-inheritable (PEP 446)
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        signal.set_wakeup_fd(self._wake_write, warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)
        # Python ignores SIGPIPE already; say so explicitly: a write to a host that
        # has gone raises BrokenPipeError, which the server treats as "exit quietly".
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def rearm(self) -> None:
        """Re-registers the wake-up pipe, in case user code (asyncio's
        ``add_signal_handler``, for one) replaced or cleared it during a request."""
        if self._wake_write >= 0:
            signal.set_wakeup_fd(self._wake_write, warn_on_full_buffer=False)

    def fileno(self) -> int:
        """The read end of the wake-up pipe (for ``select``); -1 before :meth:`install`."""
        return self._wake_read

    def drain(self) -> None:
        """Empties the wake-up pipe after ``select`` reported it readable."""
        if self._wake_read < 0:
            return
        while True:
            try:
                if not os.read(self._wake_read, 512):
                    return
            except (BlockingIOError, InterruptedError):
                return

    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        # Keep this minimal: no logging (not reentrant), no raising.
        if self.signum is None:
            self.signum = signum

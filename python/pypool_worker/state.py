"""Facts about the running worker that built-in commands report."""

import os
import platform
import time
from typing import Optional


class WorkerState:
    """The worker's identity and counters, shared by the server and the built-ins."""

    def __init__(self, worker_id: int, started: Optional[float] = None) -> None:
        #: The id the host gave with ``--worker-id``.
        self.worker_id = worker_id
        #: ``time.monotonic()`` when the worker started.
        self.started = time.monotonic() if started is None else started
        #: Requests answered so far (the one being handled is not counted yet).
        self.requests_served = 0
        #: This process's id.
        self.pid = os.getpid()
        #: ``platform.python_version()``.
        self.python_version = platform.python_version()

    def become(self, worker_id: int) -> None:
        """Starts afresh as worker ``worker_id`` in this process (a worker forked from a template)."""
        self.worker_id = worker_id
        self.started = time.monotonic()
        self.requests_served = 0
        self.pid = os.getpid()

    def uptime_s(self) -> float:
        """Seconds since the worker started."""
        return time.monotonic() - self.started


def rss_bytes() -> Optional[int]:
    """Current resident set size from ``/proc/self/statm``, or ``None`` where that is unavailable."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            fields = statm.read().split()
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None

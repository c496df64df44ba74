"""The guardian: a tiny process that makes sure nothing outlives the host.

``python -m pypool_worker`` calls :func:`enter` before it imports anything
that could run user code. On Linux, :func:`enter` forks:

* the **guardian** (the parent, the process the host spawned when there is no
  wrapper in between) stays single-threaded and never runs user code. It is a
  child subreaper, so every process the worker starts -- and every orphan of
  those, including children that started their own session -- re-parents to
  it. It waits for one of: the worker's exit, the host's death (a pidfd on
  ``PYPOOL_HOST_PID``, woken early by its parent-death signal), its own
  parent's death (a non-``exec`` wrapper the host spawned was killed), or a
  SIGTERM/SIGINT, which it forwards to the worker. Then it SIGKILLs every
  descendant, reaps them until none is left, and exits the way the worker
  did (same code, or the same signal), so the host's exit report is unchanged.
* the **worker** (the child) returns from :func:`enter` and runs as before.
  Its parent-death signal is SIGKILL: the guardian is single-threaded, so it
  fires exactly when the guardian dies, however the guardian dies. A handler
  in a CPU loop or a blocking C call cannot delay any of this: the kernel and
  a separate process do the work.

Frames never pass through the guardian: it closes its copies of stdin and
stdout before it waits, so the worker's pipes behave exactly as before.

On systems without ``prctl`` (not Linux), :func:`enter` returns at once and
there is no guardian. This module uses only the standard library and must not
import the rest of the package (user code must not run before the fork).
"""

import ctypes
import os
import select
import signal
import sys
from typing import Dict, List, Optional, Set, Tuple

#: Environment variable naming the host's pid (set by the Rust spawner).
HOST_PID_ENV = "PYPOOL_HOST_PID"

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

#: The guardian's parent-death signal: a wake-up, verified before acting on it
#: (it also fires when the host *thread* that spawned us exits).
PARENT_DEATH_HINT = signal.SIGUSR1

#: How often the guardian re-checks the host when it has no pidfd (seconds).
FALLBACK_POLL_SECONDS = 0.5

_libc = None


def _prctl(option: int, value: int) -> bool:
    """Calls ``prctl(option, value)``; ``False`` when it is unavailable or fails."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        return _libc.prctl(ctypes.c_int(option), ctypes.c_ulong(value), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def parent_of(pid: int) -> Optional[int]:
    """The parent pid of ``pid`` from ``/proc``, or ``None`` if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as stat:
            data = stat.read()
    except OSError:
        return None
    # The command name is parenthesised and may hold spaces or parentheses.
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        return None


def is_ancestor(ancestor: int, pid: int) -> bool:
    """Whether ``ancestor`` is ``pid``'s parent, grandparent, ... (per ``/proc``)."""
    current: Optional[int] = pid
    for _ in range(256):
        current = parent_of(current) if current is not None else None
        if current is None or current <= 0:
            return False
        if current == ancestor:
            return True
    return False


def children_map() -> Dict[int, List[int]]:
    """Every process's children, by parent pid, from one scan of ``/proc``."""
    children: Dict[int, List[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return children
    for name in names:
        if not name.isdigit():
            continue
        pid = int(name)
        parent = parent_of(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    return children


def descendants(root: int) -> List[int]:
    """All descendants of ``root`` (not ``root`` itself), parents before children."""
    children = children_map()
    found: List[int] = []
    seen: Set[int] = {root}
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in seen:
                seen.add(child)
                found.append(child)
                stack.append(child)
    return found


class _Host:
    """Whether the host (and the guardian's own parent) are still there."""

    def __init__(self, host_pid: int, parent_pid: int) -> None:
        self.host_pid = host_pid
        self.parent_pid = parent_pid
        self.pidfd = -1
        if host_pid > 1 and hasattr(os, "pidfd_open"):
            try:
                self.pidfd = os.pidfd_open(host_pid)
            except OSError:
                self.pidfd = -1

    def gone(self) -> bool:
        """The host died, or the process between it and us did (our parent changed)."""
        if os.getppid() != self.parent_pid:
            return True
        if self.host_pid == self.parent_pid:
            return False
        if self.pidfd >= 0:
            ready, _, _ = select.select([self.pidfd], [], [], 0)
            return bool(ready)
        return not is_ancestor(self.host_pid, os.getpid())


def enter() -> None:
    """Becomes the guardian (never returns) in one process, the worker in the other.

    Returns at once, with no guardian, where ``prctl`` is unavailable.
    """
    if not sys.platform.startswith("linux"):
        return
    parent_pid = os.getppid()
    try:
        host_pid = int(os.environ.get(HOST_PID_ENV, ""))
    except ValueError:
        host_pid = parent_pid
    if host_pid <= 1:
        host_pid = parent_pid
    # The parent-death hint must be handled before it is armed: its default
    # action would kill us.
    hints: List[int] = []
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)

    def record(signum: int, _frame: object) -> None:
        hints.append(signum)

    for signum in (PARENT_DEATH_HINT, signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, record)
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    if not _prctl(PR_SET_PDEATHSIG, PARENT_DEATH_HINT):
        _restore_signals(wake_read, wake_write)
        return
    host = _Host(host_pid, parent_pid)
    # Checked after the parent-death signal and the pidfd are armed, so a
    # host that died before either was set up is still noticed.
    if host.gone() or (host.host_pid != parent_pid and not is_ancestor(host_pid, os.getpid())):
        os._exit(0)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    guardian_pid = os.getpid()
    try:
        worker = os.fork()
    except OSError as exc:
        # No guardian (the host's own rules still apply); say so and serve.
        sys.stderr.write("pypool_worker: cannot fork the guardian (%s); running without it\n" % exc)
        if host.pidfd >= 0:
            os.close(host.pidfd)
        # The hint's handler is gone: disarm it (the host's thread could exit).
        _prctl(PR_SET_PDEATHSIG, 0)
        _restore_signals(wake_read, wake_write)
        return
    if worker == 0:
        if host.pidfd >= 0:
            os.close(host.pidfd)
        _restore_signals(wake_read, wake_write)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != guardian_pid:
            os.kill(os.getpid(), signal.SIGKILL)
        return
    _guard(worker, host, hints, wake_read)


def _restore_signals(wake_read: int, wake_write: int) -> None:
    signal.set_wakeup_fd(-1)
    for signum in (PARENT_DEATH_HINT, signal.SIGCHLD, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.close(wake_read)
    os.close(wake_write)


def _release_frame_streams() -> None:
    """Points fds 0 and 1 at /dev/null, so only the worker holds the frame pipes."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in (0, 1):
            try:
                os.dup2(null, fd)
            except OSError:
                pass
    finally:
        os.close(null)


def _guard(worker: int, host: _Host, hints: List[int], wake_read: int) -> None:
    """The guardian's whole life: wait, take the tree down, exit like the worker."""
    _release_frame_streams()
    status: Optional[int] = None
    watched = [wake_read] + ([host.pidfd] if host.pidfd >= 0 else [])
    timeout = None if host.pidfd >= 0 or host.host_pid == host.parent_pid else FALLBACK_POLL_SECONDS
    while status is None:
        while hints:
            signum = hints.pop()
            if signum in (signal.SIGTERM, signal.SIGINT):
                _signal(worker, signum)
        status = _reap(worker)
        if status is not None or host.gone():
            break
        try:
            select.select(watched, [], [], timeout)
        except OSError:
            pass
        drain(wake_read)
    status = _take_down(worker, status)
    _exit_like(status)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except OSError:
        pass


def drain(fd: int) -> None:
    """Reads a non-blocking descriptor (a signal wake-up pipe) until it is empty or closed."""
    while True:
        try:
            if not os.read(fd, 512):
                return
        except OSError:
            return


def _reap(worker: int) -> Optional[int]:
    """Reaps every exited child; returns the worker's wait status if it was among them."""
    return _reap_exited(worker)[0]


def _reap_exited(worker: int) -> Tuple[Optional[int], bool]:
    """Reaps every exited child: the worker's wait status if it was among
    them, and whether any child (living) is left."""
    status: Optional[int] = None
    while True:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status, False
        except InterruptedError:
            continue
        if pid == 0:
            return status, True
        if pid == worker:
            status = wait_status


def _take_down(worker: int, status: Optional[int]) -> Optional[int]:
    """SIGKILLs the worker and every descendant until none is left; returns the worker's status."""
    me = os.getpid()
    while True:
        # The guardian is a subreaper: every living descendant is a child of
        # it or below one. No child left means nothing left to kill, and the
        # scan of /proc (most of a replacement's cost after a plain crash) is
        # skipped.
        reaped, children_left = _reap_exited(worker)
        if reaped is not None:
            status = reaped
        if not children_left:
            return status
        for pid in descendants(me):
            _signal(pid, signal.SIGKILL)
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            return status
        except InterruptedError:
            continue
        if pid == worker:
            status = wait_status


def _exit_like(status: Optional[int]) -> None:
    """Exits with the worker's code, or dies of the worker's signal."""
    signal.set_wakeup_fd(-1)
    if status is None:
        os._exit(0)
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        for step in (
            lambda: signal.signal(signum, signal.SIG_DFL),  # refused for SIGKILL: fine
            lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum]),
            lambda: os.kill(os.getpid(), signum),
        ):
            try:
                step()
            except (OSError, ValueError):
                pass
        os._exit(128 + signum)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


__all__ = ["enter", "descendants", "drain", "is_ancestor", "parent_of", "HOST_PID_ENV"]

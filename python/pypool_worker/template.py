"""The fork template: import once, fork a worker whenever the host asks.

``python -m pypool_worker --template`` runs like a worker up to the point
where the handlers and preloads are imported (an import error is reported
exactly as a worker reports it: a ``startup_error`` frame with the
traceback). Then, instead of serving requests, :func:`serve`:

1. checks that the process is single-threaded (``threading.active_count()``
   and the kernel's count in ``/proc/self/task``): ``fork()`` in a process
   with other threads copies locks those threads may hold, so a template
   with threads says so in its ``template_ready`` event and the host falls
   back to plain spawn (and refuses ``fork`` commands);
2. calls ``gc.freeze()`` so the collector does not touch (and copy) every
   inherited page in the forked workers;
3. sends ``template_ready`` on its frame stream (its stdout) and reads
   commands from its stdin, a ``SOCK_SEQPACKET`` socket: one frame per
   packet (see ``docs/PROTOCOL.md``, "Template control").

A ``fork`` packet carries the new worker's stdin, stdout and stderr as
``SCM_RIGHTS`` descriptors, which only the host and that worker ever hold
(the template closes its copies right after the fork, so no worker inherits
another's). The forked child moves to its own process group, points its fds
0, 1 and 2 at those descriptors, closes the template's own descriptors and
becomes a guardian + worker pair exactly like a spawned worker
(:func:`pypool_worker.guardian.enter`): the guardian is the template's direct
child, whose pid the template reports in ``forked``. The worker then takes
its frame streams privately (fd 1 points at stderr), configures fresh logging
handlers, reseeds ``random`` and announces its own worker id. A standby
(``prefork``) does all of that but the last before it waits for its id, so
an adopted standby answers its host within one handshake.

A child that exits is reported in ``exited`` but *not reaped* until the host
sends ``release``: until then the zombie keeps its pid and process group, so
the host's signals can never reach a recycled pid.

Only the standard library; user code has run (the handler modules were
imported) but the loop here is pypool code, single-threaded.
"""

import gc
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from . import guardian, stdio, wire

#: How many descriptors a ``fork`` command carries: stdin, stdout, stderr.
FORK_FDS = 3

#: The largest command packet read (commands are tiny).
MAX_COMMAND_BYTES = 65536

#: Exit status of a forked child whose set-up failed before it could serve.
EXIT_FORK_SETUP = 71


def thread_count() -> int:
    """How many threads this process has: the larger of Python's and the kernel's count."""
    try:
        kernel = len(os.listdir("/proc/self/task"))
    except OSError:
        kernel = 1
    return max(kernel, threading.active_count())


def parse_command(packet: bytes) -> Dict[str, Any]:
    """One command frame (a whole packet) as a dict; raises ``ValueError`` when malformed."""
    if len(packet) < 4:
        raise ValueError("command packet of %d bytes is shorter than a frame header" % len(packet))
    (length,) = struct.unpack(">I", packet[:4])
    if length != len(packet) - 4:
        raise ValueError("command frame announces %d bytes but the packet holds %d" % (length, len(packet) - 4))
    command = json.loads(packet[4:].decode("utf-8"))
    if not isinstance(command, dict) or not isinstance(command.get("type"), str):
        raise ValueError("command is not an object with a type")
    worker_id = command.get("worker_id")
    if not isinstance(worker_id, int) or isinstance(worker_id, bool) or worker_id < 0:
        raise ValueError("command has no valid worker_id")
    return command


#: The bytes of the worker id the host writes to a standby's stdin.
ADOPT_ID_BYTES = 8


def read_adopted_id(fd: int) -> Optional[int]:
    """A standby's worker id: the first 8 bytes of ``fd`` (big-endian), written by
    the host when it adopts the standby; ``None`` if the stream ends first."""
    data = b""
    while len(data) < ADOPT_ID_BYTES:
        try:
            chunk = os.read(fd, ADOPT_ID_BYTES - len(data))
        except InterruptedError:
            continue
        if not chunk:
            return None
        data += chunk
    (worker_id,) = struct.unpack(">Q", data)
    return int(worker_id)


def exit_fields(code: int, status: int) -> Dict[str, int]:
    """The ``exited`` event's ``code``/``signal`` from a ``waitid`` result's ``si_code``/``si_status``."""
    if code == os.CLD_EXITED:
        return {"code": status}
    return {"signal": status}


class PreparedWorker(NamedTuple):
    """A forked worker set up as far as it can be without its worker id."""

    #: The private descriptor its requests (and, for a standby, its id) arrive on.
    read_fd: int
    #: Serves as worker ``worker_id`` until the worker should exit; returns the exit status.
    serve: Callable[[int], int]


class Template:
    """The template's state: its children by pid and worker id."""

    def __init__(
        self, streams: stdio.FrameStreams, prepare_worker: Callable[[], PreparedWorker], logger: Any
    ) -> None:
        self.streams = streams
        self.prepare_worker = prepare_worker
        self.logger = logger
        self.control = socket.socket(fileno=os.dup(streams.read_fd))
        self.children: Dict[int, int] = {}  # pid -> worker id
        self.reported: Dict[int, int] = {}  # worker id -> pid (exited, waiting for release)
        self.wake_read, self.wake_write = os.pipe()
        self.threads = 1

    def send(self, event: Dict[str, Any]) -> None:
        """Writes one event frame on the template's stdout."""
        self.streams.write_all(wire.encode(event))

    def run(self) -> int:
        """The template's whole life; returns its exit status."""
        self.threads = thread_count()
        if self.threads > 1:
            self.logger.warning(
                "the template has %d threads after importing the handlers and preloads; "
                "forking it is unsafe, so the host starts workers with plain spawn",
                self.threads,
            )
        gc.collect()
        if hasattr(gc, "freeze"):
            gc.freeze()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
        signal.set_wakeup_fd(self.wake_write, warn_on_full_buffer=False)
        try:
            self.send({"type": "template_ready", "pid": os.getpid(), "threads": self.threads})
            while True:
                self.report_exits()
                try:
                    ready, _, _ = select.select([self.control.fileno(), self.wake_read], [], [])
                except InterruptedError:
                    continue
                if self.wake_read in ready:
                    guardian.drain(self.wake_read)
                if self.control.fileno() in ready:
                    if not self.handle_packet():
                        return 0
        except (BrokenPipeError, ConnectionError):
            return 0  # the host is gone; the guardian takes the children down

    def handle_packet(self) -> bool:
        """Reads and obeys one command; ``False`` when the host closed the socket."""
        try:
            packet, fds, _flags, _addr = socket.recv_fds(self.control, MAX_COMMAND_BYTES, FORK_FDS)
        except InterruptedError:
            return True
        if not packet and not fds:
            return False
        try:
            try:
                command = parse_command(packet)
            except (ValueError, UnicodeDecodeError) as exc:
                self.logger.error("ignoring a malformed template command: %s", exc)
                return True
            kind = command["type"]
            if kind == "fork":
                self.fork(command["worker_id"], fds)
            elif kind == "prefork":
                self.fork(command["worker_id"], fds, standby=True)
            elif kind == "release":
                self.release(command["worker_id"])
            else:
                self.logger.error("ignoring an unknown template command %r", kind)
        finally:
            for fd in fds:
                _close(fd)
        return True

    def fork(self, worker_id: int, fds: List[int], standby: bool = False) -> None:
        """Forks worker ``worker_id`` onto ``fds`` (closed by the caller in the template).

        A ``standby`` (``prefork``) is forked and set up ahead of need: it
        waits for its worker id on stdin (see :func:`read_adopted_id`), so
        ``worker_id`` is only the host's name for the process here."""
        # Checked again before every fork: a thread started after the
        # imports (a timer, a lazily started pool) makes forking unsafe too.
        self.threads = max(self.threads, thread_count())
        if self.threads > 1:
            self.send(
                {
                    "type": "fork_failed",
                    "worker_id": worker_id,
                    "message": "the template has %d threads; forking it is unsafe" % self.threads,
                }
            )
            return
        if len(fds) != FORK_FDS:
            self.send(
                {
                    "type": "fork_failed",
                    "worker_id": worker_id,
                    "message": "a fork needs %d descriptors, got %d" % (FORK_FDS, len(fds)),
                }
            )
            return
        stdio.flush_or_silence()
        try:
            pid = os.fork()
        except OSError as exc:
            self.send({"type": "fork_failed", "worker_id": worker_id, "message": str(exc)})
            return
        if pid == 0:
            status = EXIT_FORK_SETUP
            try:
                status = self.child(worker_id, fds, standby)
            except BaseException:  # noqa: B902 - nothing of the child may return into the template
                try:
                    import traceback

                    traceback.print_exc()
                except BaseException:  # noqa: B902
                    pass
            finally:
                stdio.flush_or_silence()
                os._exit(status if isinstance(status, int) else EXIT_FORK_SETUP)
        self.children[pid] = worker_id
        self.send({"type": "forked", "worker_id": worker_id, "pid": pid})

    def child(self, worker_id: int, fds: List[int], standby: bool = False) -> int:
        """In the forked child: private descriptors, own group, guardian, then serve
        (a ``standby`` first waits for its worker id on stdin)."""
        os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # Nothing of the template's plumbing (or of a sibling) stays open here.
        for fd in (self.wake_read, self.wake_write, self.streams.read_fd, self.streams.write_fd):
            _close(fd)
        self.control.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)  # dup2'd fds 0-2 are inheritable, like a spawned worker's
        for fd in fds:
            _close(fd)
        _reopen_stderr()
        guardian.enter()  # returns in the worker; the guardian never returns
        random.seed()
        # A standby prepares before it waits: once adopted, only what needs
        # the worker id is left between the host's id and the handshake.
        prepared = self.prepare_worker()
        if standby:
            adopted = read_adopted_id(prepared.read_fd)
            if adopted is None:
                return 0  # the host discarded the standby (closed its stdin)
            worker_id = adopted
        return prepared.serve(worker_id)

    def report_exits(self) -> None:
        """Sends ``exited`` for every child that exited, leaving it unreaped."""
        for pid, worker_id in list(self.children.items()):
            try:
                result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                del self.children[pid]
                continue
            except InterruptedError:
                continue
            if result is None or result.si_pid == 0:
                continue
            del self.children[pid]
            self.reported[worker_id] = pid
            event: Dict[str, Any] = {"type": "exited", "worker_id": worker_id}
            event.update(exit_fields(result.si_code, result.si_status))
            self.send(event)

    def release(self, worker_id: int) -> None:
        """Reaps the exited child of ``worker_id`` (the host has recorded its end)."""
        pid = self.reported.pop(worker_id, None)
        if pid is None:
            return
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def serve(streams: stdio.FrameStreams, prepare_worker: Callable[[], PreparedWorker], logger: Any) -> int:
    """Runs the template; each forked worker calls ``prepare_worker()``, then
    (a standby once it has its id) the prepared worker's ``serve(worker_id)``,
    whose result is its exit status."""
    return Template(streams, prepare_worker, logger).run()


def _reopen_stderr() -> None:
    """Rebinds ``sys.stderr`` to the new fd 2 with an empty buffer."""
    try:
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)
    except OSError:
        pass


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


__all__ = ["serve", "thread_count", "parse_command", "exit_fields", "PreparedWorker", "Template"]

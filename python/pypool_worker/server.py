"""The serve loop: read requests, run each where its command runs, send the replies.

A worker holds up to ``capacity`` requests at once (protocol version 2):

* a **reader** thread reads frames and never waits for a handler: it checks
  each request (unknown command, arguments that do not bind, a stopping
  worker: answered at once), then hands it over; it also applies ``cancel``;
* ``serial`` requests run one at a time, in arrival order, on the **main
  thread** (which also watches the stop signals);
* ``threads`` requests run on a bounded thread pool, ``async`` ones as tasks
  on **one** long-lived event loop (:mod:`.runners`);
* replies are written by whichever thread finished the request, one frame at
  a time under a lock, so frames are never interleaved; every request is
  answered exactly once (the :class:`Held` state under the server's lock
  decides who answers);
* a handler returning a generator or an async generator to a
  ``stream_request`` (protocol version 3) streams: each value it yields is a
  ``chunk``, sent only while the stream holds credit (:mod:`.streaming`; the
  reader thread applies ``credit``), and its end is the ordinary reply.

The server owns the request lifecycle and the exit statuses of PROTOCOL.md.
It reaches the frame format only through :mod:`pypool_worker.wire`, and the
process's streams only through the reader and writer it is given, so tests can
drive it with pipes or in-memory buffers and an explicit registry.
"""

import asyncio
import collections
import concurrent.futures
import inspect
import io
import logging
import os
import select
import threading
import time
import traceback
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple, Union

from . import builtins, wire
from .errors import CommandError
from .log import logger as default_logger
from .registry import SERIAL, THREADS, Command, Registry
from .results import ok_reply
from .runners import EventLoopThread, ThreadRunner
from .signals import StopSignal, block_stop_signals_in_this_thread
from .streaming import StreamCredit, reset_streaming, set_streaming
from .state import WorkerState

#: Exit status: stdin reached EOF, a stop signal was honoured, or the host went away.
EXIT_OK = 0
#: Exit status: a malformed frame arrived (the connection is dead).
EXIT_PROTOCOL_ERROR = 65
#: Exit status: the worker runtime itself failed (a bug in pypool_worker).
EXIT_INTERNAL_ERROR = 70
#: Exit status: the worker could not start (sent after a ``startup_error`` frame).
EXIT_STARTUP_ERROR = 78

_TRUNCATION_FLOOR = 64

#: After a stop signal, how long the worker waits for the host to close its
#: stdin (the host does so when it reads ``draining``), answering requests it
#: will not start with ``not_started``, before it exits anyway.
DRAIN_GRACE_SECONDS = 2.0

#: The ``error.kind`` of a request the host cancelled before it finished.
CANCELLED = "cancelled"
#: The ``error.kind`` of a request a stopping worker did not start.
NOT_STARTED = "not_started"

# A held request's states: handed over but not started; its handler running;
# its reply decided (being written, or written).
QUEUED, RUNNING, DONE = "queued", "running", "done"

_TIMEOUT = object()


class HostGone(Exception):
    """Writing a frame failed because the host closed its end of the pipe."""


class Held:
    """One request the worker holds, from hand-over to reply."""

    __slots__ = ("id", "name", "command", "args", "mode", "state", "task", "future", "cancel_requested", "stream")

    def __init__(
        self,
        request_id: int,
        name: str,
        command: Command,
        args: Dict[str, Any],
        mode: str,
        stream: Optional[StreamCredit] = None,
    ) -> None:
        self.id = request_id
        self.name = name
        self.command = command
        self.args = args
        #: Where it runs: ``serial``, ``threads`` or ``async``.
        self.mode = mode
        self.state = QUEUED
        #: The asyncio task of an ``async`` request (set on the loop before it starts).
        self.task: Optional["asyncio.Task[Any]"] = None
        #: The future of a coroutine a sync handler returned, awaited on the loop.
        self.future: Optional["concurrent.futures.Future[Any]"] = None
        #: The host sent ``cancel`` while it ran.
        self.cancel_requested = False
        #: The stream's credit, for a ``stream_request``; ``None`` for a plain request.
        self.stream = stream


class Server:
    """Serves requests from ``reader`` until EOF, a stop signal, or a protocol error."""

    def __init__(
        self,
        registry: Registry,
        state: WorkerState,
        reader: Union[io.RawIOBase, io.BufferedIOBase],
        write: Callable[[bytes], None],
        max_frame_bytes: int = wire.DEFAULT_MAX_FRAME_BYTES,
        stop: Optional[StopSignal] = None,
        logger: Optional[logging.Logger] = None,
        capacity: Optional[int] = None,
    ) -> None:
        self.registry = registry
        self.state = state
        self.reader = reader
        self.max_frame_bytes = max_frame_bytes
        self.stop = stop
        self.log = logger if logger is not None else default_logger
        #: How many requests the worker holds at once (announced in the handshake).
        self.capacity = capacity if capacity is not None else builtins.default_capacity(registry)
        if self.capacity < 1:
            raise ValueError("a worker's capacity must be at least 1, got %d" % self.capacity)
        #: Whether :meth:`serve` returned while handlers were still running (the
        #: process must then exit without waiting for their threads).
        self.abandoned = False
        self._write = write
        self._write_lock = threading.Lock()
        self._lock = threading.Lock()
        self._held: Dict[int, Held] = {}
        self._stopping = False
        self._want_idle = False
        self._host_gone = False
        self._reader_end: Any = _TIMEOUT  # None: EOF; an int: the exit status
        self._stopped_during: List[int] = []  # serial requests that ran when the stop signal came
        self._inbox: Deque[Tuple[Any, ...]] = collections.deque()
        self._main_waiting = False
        self._wake_read = -1
        self._wake_write = -1
        self._loop = EventLoopThread(initializer=block_stop_signals_in_this_thread)
        self._threads = ThreadRunner(self.capacity, initializer=block_stop_signals_in_this_thread)

    # -- frames --------------------------------------------------------------

    def send(self, message: Dict[str, Any]) -> None:
        """Encodes and writes one frame; raises :class:`HostGone` if the host has closed the pipe."""
        self.send_bytes(wire.encode(message, self.max_frame_bytes))

    def send_bytes(self, frame: bytes) -> None:
        """Writes an encoded frame whole (one writer at a time); raises :class:`HostGone`
        if the host has closed the pipe."""
        with self._write_lock:
            try:
                self._write(frame)
            except BrokenPipeError as exc:
                raise HostGone(str(exc)) from exc

    def handshake(self) -> Dict[str, Any]:
        """The handshake message announcing this worker's commands and capacity."""
        return {
            "type": "handshake",
            "protocol": wire.PROTOCOL_VERSION,
            "worker_id": self.state.worker_id,
            "pid": self.state.pid,
            "python_version": self.state.python_version,
            "commands": self.registry.describe(),
            "capacity": self.capacity,
        }

    # -- the main thread -----------------------------------------------------

    def serve(self) -> int:
        """Sends the handshake, then serves; returns the process exit status."""
        try:
            self.send(self.handshake())
        except HostGone:
            self.log.debug("the host closed the frame pipe; exiting")
            return EXIT_OK
        self.log.info(
            "worker %d ready (pid %d, capacity %d), serving: %s",
            self.state.worker_id,
            self.state.pid,
            self.capacity,
            ", ".join(self.registry.names()),
        )
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        reader = threading.Thread(target=self._read_loop, name="pypool-reader", daemon=True)
        reader.start()
        try:
            return self._serve_requests()
        finally:
            with self._lock:
                self.abandoned = bool(self._held)
            self._threads.shutdown()
            if not self.abandoned:
                self._loop.stop()
            reader.join(0.5 if self._reader_end is not _TIMEOUT else 0.0)
            if not reader.is_alive():
                # Closed only when no thread can write to it any more.
                os.close(self._wake_read)
                os.close(self._wake_write)

    def _serve_requests(self) -> int:
        while True:
            if self._host_gone:
                return self._host_went_away()
            if self._stop_requested():
                return self._stop_serving()
            if self._reader_end is not _TIMEOUT:
                return self._finish(self._reader_end)
            item = self._next_item(None, watch_stop=True)
            if item is not None:
                self._handle(item)

    def _handle(self, item: Tuple[Any, ...]) -> None:
        """Acts on one item the other threads posted to the main thread."""
        kind = item[0]
        if kind == "serial":
            self._run_held(item[1])
            if self._stop_requested() and not self._stopping:
                self._stopped_during.append(item[1].id)
        elif kind == "end":
            self._reader_end = item[1]
        elif kind == "gone":
            self._host_gone = True
        # "idle": only wakes a wait for the last reply.

    def _host_went_away(self) -> int:
        self.log.debug("the host closed the frame pipe; exiting")
        return EXIT_OK

    def _stop_serving(self) -> int:
        """A stop signal arrived: answer what has not started ``not_started``, finish
        what runs, reply, say ``draining``, then refuse until stdin closes."""
        name = self.stop.name if self.stop is not None else "stop"
        with self._lock:
            self._stopping = True
            unstarted = [held for held in self._held.values() if held.state == QUEUED]
            for held in unstarted:
                held.state = DONE
            running = sorted(request_id for request_id, held in self._held.items() if held.state != DONE)
        finished = sorted(set(self._stopped_during + running))
        for held in unstarted:
            self._answer_not_started(held.id, held.name)
            with self._lock:
                self._held.pop(held.id, None)
        if running:
            self.log.info(
                "received %s with %d request(s) running (%s); finishing them (%d not started)",
                name, len(running), ", ".join(str(r) for r in running), len(unstarted),
            )
        # Also waits for replies being written right now (their requests are
        # done but still held): `draining` must follow every reply.
        if not self._wait_idle(watch_stop=False):
            return self._host_went_away()
        if finished:
            self._log_stopped_during(name, finished)
        else:
            self.log.info("received %s while idle; exiting", name)
        return self._drain()

    def _log_stopped_during(self, name: str, finished: List[int]) -> None:
        if len(finished) == 1:
            self.log.info("received %s during request %d; replied, exiting", name, finished[0])
        else:
            self.log.info(
                "received %s during requests %s; replied to each, exiting", name, ", ".join(str(r) for r in finished)
            )

    def _drain(self) -> int:
        """Tells the host (``draining``), then waits for it to close stdin (the reader
        answers every request still arriving ``not_started``), at most
        :data:`DRAIN_GRACE_SECONDS`. The host retries those elsewhere."""
        try:
            self.send({"type": "draining"})
        except HostGone:
            return self._host_went_away()
        deadline = time.monotonic() + DRAIN_GRACE_SECONDS
        while self._reader_end is _TIMEOUT and not self._host_gone:
            item = self._next_item(deadline, watch_stop=False)
            if item is _TIMEOUT:
                self.log.info("the host did not close stdin within %.1f s of draining; exiting", DRAIN_GRACE_SECONDS)
                return EXIT_OK
            if item is not None:
                self._handle(item)
        if self._reader_end is None:
            self.log.info("stdin closed by the host after draining; exiting")
        return EXIT_OK

    def _finish(self, status: Optional[int]) -> int:
        """The reader stopped (EOF, or a protocol error it logged): finish and answer
        what the worker holds, then exit with ``status`` (0 for EOF)."""
        with self._lock:
            holding = len(self._held)
        if holding:
            self.log.info("no more requests will arrive; finishing the %d held", holding)
            if not self._wait_idle(watch_stop=False):
                return self._host_went_away()
        if status is None:
            self.log.info("stdin closed by the host; exiting")
            return EXIT_OK
        return status

    def _wait_idle(self, watch_stop: bool) -> bool:
        """Runs serial requests as they come until nothing is held; False if the host went away."""
        while True:
            with self._lock:
                if not self._held:
                    self._want_idle = False
                    return True
                self._want_idle = True
            if self._host_gone:
                return False
            item = self._next_item(None, watch_stop=watch_stop)
            if item is not None:
                self._handle(item)

    def _next_item(self, deadline: Optional[float], watch_stop: bool) -> Any:
        """The next item posted to the main thread; ``None`` when a stop signal
        arrived (if ``watch_stop``); ``_TIMEOUT`` after ``deadline``."""
        stop_fd = self.stop.fileno() if self.stop is not None else -1
        while True:
            if self._inbox:
                return self._inbox.popleft()
            # Say so before looking again: a thread posting after this look
            # sees the flag and writes a wake-up byte (none is written while
            # the main thread is busy, which saves two system calls a request).
            self._main_waiting = True
            if self._inbox:
                self._main_waiting = False
                return self._inbox.popleft()
            if watch_stop and self._stop_requested():
                self._main_waiting = False
                return None
            timeout = None
            if deadline is not None:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    return _TIMEOUT
            fds = [self._wake_read]
            if stop_fd >= 0:
                assert self.stop is not None
                self.stop.rearm()
                fds.append(stop_fd)
            readable, _, _ = select.select(fds, [], [], timeout)
            self._main_waiting = False
            if stop_fd >= 0 and stop_fd in readable:
                assert self.stop is not None
                self.stop.drain()
            if self._wake_read in readable:
                _drain_pipe(self._wake_read)

    def _post(self, item: Tuple[Any, ...]) -> None:
        """Hands ``item`` to the main thread (from any thread)."""
        self._inbox.append(item)
        if not self._main_waiting:
            return
        try:
            os.write(self._wake_write, b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # the pipe is full: the main thread is awake anyway
        except OSError:
            pass  # serving has ended

    def _stop_requested(self) -> bool:
        return self.stop is not None and self.stop.requested

    # -- the reader thread ---------------------------------------------------

    def _read_loop(self) -> None:
        """Reads frames until EOF or a protocol error; never waits for a handler."""
        block_stop_signals_in_this_thread()
        try:
            end = self._read_frames()
            # No credit can arrive any more: streams waiting for it must end.
            self._stop_streams("host_gone")
            self._post(("end", end))
        except HostGone:
            self._stop_streams("host_gone")
            self._post(("gone",))
        except BaseException:  # a bug in this runtime
            self.log.exception("internal error in the request reader; exiting")
            self._post(("end", EXIT_INTERNAL_ERROR))

    def _read_frames(self) -> Optional[int]:
        frames = wire.FrameReader(self.reader, self.max_frame_bytes)
        while True:
            try:
                message = frames.read()
            except wire.NestingTooDeep as exc:
                if exc.request_id is None:
                    self.log.error("protocol error: %s, and no request id could be read; exiting", exc)
                    return EXIT_PROTOCOL_ERROR
                # The frame was read whole: the stream is still in step.
                self._answer_now(
                    exc.request_id,
                    exc.command or "?",
                    _error_reply(exc.request_id, "invalid_arguments", "command %r: %s" % (exc.command, exc)),
                )
                continue
            except wire.WireError as exc:
                self.log.error(
                    "protocol error: malformed frame from the host (%s: %s); the connection is dead, exiting",
                    exc.error_class,
                    exc,
                )
                return EXIT_PROTOCOL_ERROR
            except (OSError, ValueError) as exc:  # the stream was closed under the reader
                self.log.debug("reading requests failed (%s); treating it as the end of stdin", exc)
                return None
            if message is None:
                return None
            kind = message["type"]
            if kind == "request":
                if not self._accept(message):
                    return EXIT_PROTOCOL_ERROR
            elif kind == "stream_request":
                if not self._accept(message, StreamCredit(message["credit"])):
                    return EXIT_PROTOCOL_ERROR
            elif kind == "cancel":
                self._cancel(message["id"])
            elif kind == "credit":
                self._credit(message["id"], message["grant"])
            else:
                self.log.error(
                    "protocol error: the host sent a %r message, only requests, stream requests, cancels and credits are allowed; exiting",
                    kind,
                )
                return EXIT_PROTOCOL_ERROR

    def _accept(self, request: Dict[str, Any], stream: Optional[StreamCredit] = None) -> bool:
        """Answers ``request`` at once or hands it over (``stream``: the credit of a
        ``stream_request``); False on a protocol violation."""
        request_id = request["id"]
        name = request["command"]
        args = request.get("args", {})
        command = self.registry.get(name)
        if self._stopping or self._stop_requested():
            self._answer_not_started(request_id, name)
            return True
        if command is None:
            self._answer_now(
                request_id,
                name,
                _error_reply(
                    request_id,
                    "unknown_command",
                    "no command named %r; this worker serves: %s" % (name, ", ".join(self.registry.names())),
                ),
            )
            return True
        try:
            command.check_arguments(args)
        except TypeError as exc:
            self._answer_now(request_id, name, _error_reply(request_id, "invalid_arguments", "command %r: %s" % (name, exc)))
            return True
        held = Held(request_id, name, command, args, command.concurrency_for(args), stream)
        with self._lock:
            if request_id in self._held:
                self.log.error(
                    "protocol error: the host sent request id %d while request %d is still held; exiting",
                    request_id, request_id,
                )
                return False
            if self._stopping:
                stopping = True
            else:
                stopping = False
                self._held[request_id] = held
        if stopping:
            self._answer_not_started(request_id, name)
        elif command.inline and stream is None:
            # A built-in that runs no user code and never blocks (``ping``):
            # answered here, which saves handing it to another thread and back.
            # Never a stream: this thread applies credits, so nothing that may
            # wait for one runs here.
            self._run_inline(held)
        elif held.mode == SERIAL:
            self._post(("serial", held))
        elif held.mode == THREADS:
            self._threads.submit(self._run_held, held)
        else:
            self._loop.call_soon(self._start_task, held)
        return True

    def _credit(self, request_id: int, grant: int) -> None:
        """Applies ``credit``: more chunks for a stream; ignored for an id not held as one."""
        with self._lock:
            held = self._held.get(request_id)
            stream = held.stream if held is not None and held.state != DONE else None
        if stream is None:
            self.log.debug("credit for request %d, which is not a stream this worker holds: ignored", request_id)
            return
        stream.grant(grant)

    def _stop_streams(self, reason: str) -> None:
        """Ends every stream's wait for credit (the host closed stdin: none will come)."""
        with self._lock:
            streams = [held.stream for held in self._held.values() if held.stream is not None]
        for stream in streams:
            stream.stop(reason)

    def _cancel(self, request_id: int) -> None:
        """Applies ``cancel``: answers an unstarted request ``cancelled``, interrupts
        a running coroutine; a running plain function finishes; an unknown id is ignored."""
        with self._lock:
            held = self._held.get(request_id)
            if held is None or held.state == DONE:
                action = "unknown"
            elif held.state == QUEUED:
                held.state = DONE
                action = "unstarted"
            else:
                held.cancel_requested = True
                action = "task" if held.task is not None else "future" if held.future is not None else "sync"
        if action == "unknown":
            self.log.debug("cancel for request %d, which this worker does not hold (answered already?): ignored", request_id)
            return
        assert held is not None
        if held.stream is not None:
            # A producer waiting for credit, or between two chunks, stops at once.
            held.stream.stop(CANCELLED)
        if action == "unstarted":
            self.log.info("request %d %r cancelled before it started", request_id, held.name)
            message = "request %d %r was cancelled by the host before it started; it did not run" % (request_id, held.name)
            self._reply_then_release(held, wire.encode(_error_reply(request_id, CANCELLED, message), self.max_frame_bytes))
        elif action == "task":
            task = held.task
            assert task is not None
            self._loop.call_soon(task.cancel)
        elif action == "future":
            future = held.future
            assert future is not None
            future.cancel()
        elif held.stream is not None:
            self.log.info("request %d %r: its stream stops at its next chunk", request_id, held.name)
        else:
            self.log.info(
                "request %d %r cannot be cancelled: it runs a plain function, which is not interruptible; "
                "it finishes and its reply is sent",
                request_id, held.name,
            )

    def _answer_now(self, request_id: int, name: str, reply: Dict[str, Any]) -> None:
        """Sends a reply decided without running anything (counted as served)."""
        frame = self._encode_reply(reply, name)
        self._log_outcome(request_id, name, None, reply, 0.0, frame)
        self.send_bytes(frame)
        with self._lock:
            self.state.requests_served += 1

    def _answer_not_started(self, request_id: int, name: str) -> None:
        self.log.info("request %d %r not started: this worker is stopping", request_id, name)
        reply = _error_reply(
            request_id,
            NOT_STARTED,
            "worker %d is stopping and did not start %r; run it elsewhere" % (self.state.worker_id, name),
        )
        try:
            self.send_bytes(wire.encode(reply, self.max_frame_bytes))
        except HostGone:
            self._host_gone = True
            self._post(("gone",))

    # -- running a request ---------------------------------------------------

    def _begin(self, held: Held) -> bool:
        """QUEUED -> RUNNING; False when it was answered already (cancelled, not started)."""
        with self._lock:
            if held.state != QUEUED:
                return False
            held.state = RUNNING
            return True

    def _run_held(self, held: Held) -> None:
        """Runs a ``serial`` (main thread) or ``threads`` (pool thread) request and replies."""
        if not self._begin(held):
            return
        started = time.monotonic()
        try:
            reply = self._call_sync(held)
        except Exception as exc:  # a bug in this runtime, not in the handler
            self.log.exception("internal error while handling request %d %r", held.id, held.name)
            reply = _error_reply(held.id, "internal", "pypool_worker failed: %s" % _text_of(exc))
        self._complete(held, reply, started)

    def _run_inline(self, held: Held) -> None:
        """Runs an inline built-in (``ping``) on the reader thread and replies.

        The short path of :meth:`_run_held`: nothing else can touch ``held``
        while it runs (a cancel is read by this same thread, after it), the
        handler is a plain function that returns no generator or coroutine, and
        no stream or event loop is involved; the reply is encoded, logged and
        sent exactly as :meth:`_complete` does.
        """
        held.state = RUNNING
        started = time.monotonic()
        try:
            reply = ok_reply(held.id, held.command.handler(**held.args))
        except CommandError as exc:
            reply = _error_reply(held.id, exc.kind, exc.message, traceback_text=exc.traceback_text)
        except BaseException as exc:  # noqa: B036 - as in _call_sync: the handler's fault, never the worker's end
            reply = _exception_reply(held.id, exc)
        frame = self._encode_reply(reply, held.name)
        self._log_outcome(held.id, held.name, held.command, reply, time.monotonic() - started, frame)
        held.state = DONE
        self._reply_then_release(held, frame)

    def _call_sync(self, held: Held) -> Dict[str, Any]:
        request_id = held.id
        token = set_streaming(held.stream is not None)
        try:
            result = held.command.handler(**held.args)
            if inspect.isgenerator(result):
                if held.stream is not None:
                    return self._stream_sync(held, result)
                result = list(result)
            elif inspect.isasyncgen(result):
                result = self._stream_async(held, result) if held.stream is not None else _collect(result)
            if inspect.isawaitable(result):
                # A coroutine from a plain function (or a serial `async def`):
                # it runs on the event loop while this thread waits for it.
                future = self._loop.wait_for(result)
                with self._lock:
                    held.future = future
                    cancel = held.cancel_requested
                if cancel:
                    future.cancel()
                try:
                    result = future.result()
                except concurrent.futures.CancelledError:
                    return self._cancelled_reply(held)
        except CommandError as exc:
            return _error_reply(request_id, exc.kind, exc.message, traceback_text=exc.traceback_text)
        except BaseException as exc:  # noqa: B036 - KeyboardInterrupt, GeneratorExit, SystemExit too
            # The runtime's own stop signals never raise here (signals.py only
            # records them); whatever a handler raises is the handler's fault and
            # gets an error reply, and the worker keeps serving.
            return _exception_reply(request_id, exc)
        finally:
            reset_streaming(token)
        if isinstance(result, _Reply):
            return result.reply
        return ok_reply(request_id, result)

    def _start_task(self, held: Held) -> None:
        """On the event loop: starts an ``async`` request as a task."""
        held.task = asyncio.ensure_future(self._run_async(held))

    async def _run_async(self, held: Held) -> None:
        if not self._begin(held):
            return
        started = time.monotonic()
        try:
            reply = await self._call_async(held)
        except Exception as exc:  # a bug in this runtime, not in the handler
            self.log.exception("internal error while handling request %d %r", held.id, held.name)
            reply = _error_reply(held.id, "internal", "pypool_worker failed: %s" % _text_of(exc))
        self._complete(held, reply, started)

    async def _call_async(self, held: Held) -> Dict[str, Any]:
        request_id = held.id
        set_streaming(held.stream is not None)  # this task's own context
        try:
            result = held.command.handler(**held.args)
            if inspect.isasyncgen(result):
                result = await (self._stream_async(held, result) if held.stream is not None else _collect(result))
            if inspect.isawaitable(result):
                result = await result
        except asyncio.CancelledError as exc:
            if held.cancel_requested:
                return self._cancelled_reply(held)
            return _exception_reply(request_id, exc)
        except CommandError as exc:
            return _error_reply(request_id, exc.kind, exc.message, traceback_text=exc.traceback_text)
        except BaseException as exc:  # noqa: B036 - as in _call_sync
            return _exception_reply(request_id, exc)
        if isinstance(result, _Reply):
            return result.reply
        return ok_reply(request_id, result)

    # -- streaming replies ---------------------------------------------------

    def _stream_sync(self, held: Held, generator: Any) -> Dict[str, Any]:
        """Iterates a sync generator where the request runs, one chunk per unit of
        credit; returns the final reply (it never raises the generator's errors)."""
        stream = held.stream
        assert stream is not None
        seq = 0
        try:
            while True:
                # Waits for credit before asking for the next value: a paused
                # producer holds nothing back, and a cancel wakes the wait.
                if not stream.take():
                    generator.close()  # GeneratorExit where it yields
                    return self._stream_stopped_reply(held, seq)
                try:
                    value = next(generator)
                except StopIteration as stop:
                    return ok_reply(held.id, stop.value)
                if stream.stop_reason is not None:
                    generator.close()
                    return self._stream_stopped_reply(held, seq)
                frame = self._encode_chunk(held, seq, value)
                if isinstance(frame, dict):
                    generator.close()
                    return frame
                self.send_bytes(frame)
                seq += 1
        except HostGone:
            stream.stop("host_gone")
            generator.close()
            return self._stream_stopped_reply(held, seq)
        except CommandError as exc:
            return _error_reply(held.id, exc.kind, exc.message, traceback_text=exc.traceback_text)
        except BaseException as exc:  # noqa: B036 - as in _call_sync
            return _exception_reply(held.id, exc)

    async def _stream_async(self, held: Held, generator: Any) -> "_Reply":
        """Iterates an async generator on the event loop, one chunk per unit of
        credit; a cancel arrives as ``CancelledError`` (raised to the caller, after
        the generator was closed)."""
        stream = held.stream
        assert stream is not None
        seq = 0
        try:
            while True:
                if not await stream.take_async():
                    await generator.aclose()
                    if stream.stop_reason == CANCELLED:
                        raise asyncio.CancelledError()
                    return _Reply(self._stream_stopped_reply(held, seq))
                try:
                    value = await generator.__anext__()
                except StopAsyncIteration:
                    return _Reply({"type": "reply", "id": held.id, "status": "ok", "result": None})
                frame = self._encode_chunk(held, seq, value)
                if isinstance(frame, dict):
                    await generator.aclose()
                    return _Reply(frame)
                try:
                    self.send_bytes(frame)
                except HostGone:
                    stream.stop("host_gone")
                    await generator.aclose()
                    return _Reply(self._stream_stopped_reply(held, seq))
                seq += 1
        except asyncio.CancelledError:
            # Cancelled while waiting for credit or for the generator: closing
            # it raises GeneratorExit where it is suspended (a no-op if the
            # CancelledError came out of the generator itself).
            await generator.aclose()
            raise

    def _stream_stopped_reply(self, held: Held, sent: int) -> Dict[str, Any]:
        stream = held.stream
        reason = stream.stop_reason if stream is not None else None
        if reason == "host_gone":
            message = "request %d %r: the host closed the connection after %d chunk(s); the stream was closed" % (
                held.id, held.name, sent)
        else:
            message = "request %d %r was cancelled by the host after %d chunk(s); its generator was closed" % (
                held.id, held.name, sent)
        return _error_reply(held.id, CANCELLED, message)

    def _encode_chunk(self, held: Held, seq: int, value: Any) -> Union[bytes, Dict[str, Any]]:
        """The chunk frame for ``value``, or the ``invalid_result`` reply ending the stream."""
        chunk = {"type": "chunk", "id": held.id, "seq": seq, "data": value}
        problem: Exception
        try:
            frame = wire.encode(chunk, self.max_frame_bytes)
            if not (
                wire.may_be_too_deep(frame, wire.MAX_NESTING_DEPTH + 1)
                and wire.nesting_depth_exceeds(value, wire.MAX_NESTING_DEPTH)
            ):
                return frame
            detail = "command %r yielded a value nested deeper than %d levels of arrays and objects (the protocol's limit)" % (
                held.name, wire.MAX_NESTING_DEPTH)
        except wire.FrameTooLarge as exc:
            detail = "command %r yielded a value too large to send: %s" % (held.name, exc)
        except wire.InvalidMessage as exc:
            problem = exc
            detail = "command %r yielded a value that is not JSON-serialisable: %s" % (
                held.name, _text_of(problem.__cause__ or problem))
        return _error_reply(held.id, "invalid_result", "%s; the stream ends after chunk %d" % (detail, seq))

    def _cancelled_reply(self, held: Held) -> Dict[str, Any]:
        return _error_reply(
            held.id,
            CANCELLED,
            "request %d %r was cancelled by the host while it ran (its coroutine got CancelledError)"
            % (held.id, held.name),
        )

    def _complete(self, held: Held, reply: Dict[str, Any], started: float) -> None:
        """Encodes, logs and sends the reply of a request that ran."""
        frame = self._encode_reply(reply, held.name)
        self._log_outcome(held.id, held.name, held.command, reply, time.monotonic() - started, frame)
        with self._lock:
            if held.state == DONE:  # cannot happen: only the runner ends a running request
                return
            held.state = DONE
        self._reply_then_release(held, frame)

    def _reply_then_release(self, held: Held, frame: bytes) -> None:
        """Sends the reply of a request already marked DONE, then forgets it
        (in that order: the main thread says ``draining`` only once every reply is out)."""
        try:
            self.send_bytes(frame)
        except HostGone:
            self._host_gone = True
            self._post(("gone",))
        with self._lock:
            self._held.pop(held.id, None)
            self.state.requests_served += 1
            wake = self._want_idle and not self._held
        if wake:
            self._post(("idle",))

    def _encode_reply(self, reply: Dict[str, Any], name: str) -> bytes:
        problem: Exception
        try:
            frame = wire.encode(reply, self.max_frame_bytes)
            # The reply object adds one level around ``result``.
            if not (
                reply["status"] == "ok"
                and wire.may_be_too_deep(frame, wire.MAX_NESTING_DEPTH + 1)
                and wire.nesting_depth_exceeds(reply["result"], wire.MAX_NESTING_DEPTH)
            ):
                return frame
            problem = wire.NestingTooDeep(
                "the result is nested deeper than %d levels of arrays and objects" % wire.MAX_NESTING_DEPTH
            )
        except (wire.InvalidMessage, wire.FrameTooLarge) as exc:
            problem = exc
        if reply["status"] == "ok":
            if isinstance(problem, wire.NestingTooDeep):
                detail = "command %r returned a value that cannot be sent: %s (the protocol's limit)" % (name, problem)
            elif isinstance(problem, wire.FrameTooLarge):
                detail = "command %r returned a result too large to send: %s" % (name, problem)
            else:
                detail = "command %r returned a value that is not JSON-serialisable: %s" % (
                    name,
                    _text_of(problem.__cause__ or problem),
                )
            reply = _error_reply(reply["id"], "invalid_result", detail)
        budget = max(_TRUNCATION_FLOOR, self.max_frame_bytes // 16)
        for attempt in (budget, _TRUNCATION_FLOOR, 0):
            error = dict(reply["error"])
            error["message"] = _truncate(error["message"], max(attempt, _TRUNCATION_FLOOR))
            if "traceback" in error:
                if attempt:
                    error["traceback"] = _truncate(error["traceback"], attempt)
                else:
                    del error["traceback"]
            try:
                return wire.encode(dict(reply, error=error), self.max_frame_bytes)
            except wire.FrameTooLarge:
                continue
        # Only reachable with an absurdly small --max-frame-bytes: nothing fits.
        return wire.encode(reply, self.max_frame_bytes)

    def _log_outcome(
        self,
        request_id: int,
        name: str,
        command: Optional[Command],
        reply: Dict[str, Any],
        elapsed: float,
        frame: bytes,
    ) -> None:
        millis = elapsed * 1000.0
        if reply["status"] == "ok":
            level = logging.DEBUG if command is not None and command.quiet else logging.INFO
            if self.log.isEnabledFor(level):
                self.log.log(level, "request %d %r ok in %.1f ms (%d bytes)", request_id, name, millis, len(frame))
            return
        error = reply["error"]
        kind = error["kind"]
        if kind == "python_exception":
            self.log.warning(
                "request %d %r raised %s after %.1f ms: %s",
                request_id, name, error.get("exception_type"), millis, error["message"],
            )
            self.log.debug("%s", error.get("traceback", ""))
        else:
            self.log.warning("request %d %r failed (%s): %s", request_id, name, kind, error["message"])


def _error_reply(
    request_id: int,
    kind: str,
    message: str,
    exception_type: Optional[str] = None,
    traceback_text: Optional[str] = None,
) -> Dict[str, Any]:
    error: Dict[str, Any] = {"kind": kind, "message": _clean(message)}
    if exception_type is not None:
        error["exception_type"] = exception_type
    if traceback_text is not None:
        error["traceback"] = _clean(traceback_text)
    return {"type": "reply", "id": request_id, "status": "error", "error": error}


def _exception_reply(request_id: int, exc: BaseException) -> Dict[str, Any]:
    return _error_reply(
        request_id,
        "python_exception",
        _text_of(exc),
        exception_type=type(exc).__name__,
        traceback_text=_format_traceback(exc),
    )


class _Reply:
    """A reply a streaming helper already decided (so the caller does not wrap it as a result)."""

    __slots__ = ("reply",)

    def __init__(self, reply: Dict[str, Any]) -> None:
        self.reply = reply


async def _collect(generator: Any) -> List[Any]:
    """Every value of an async generator, for a plain request to a streaming handler."""
    return [value async for value in generator]


def _drain_pipe(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 4096):
                return
        except (BlockingIOError, InterruptedError):
            return


def _format_traceback(exc: BaseException) -> str:
    tb = exc.__traceback__
    # Drop the first entry: it is this module's call into the handler.
    if tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _text_of(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not take the worker down
        return "<unprintable %s>" % type(exc).__name__


def _clean(text: str) -> str:
    """Replaces characters UTF-8 cannot carry (lone surrogates) so the reply always encodes."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + "... [%d characters truncated]" % (len(text) - limit)


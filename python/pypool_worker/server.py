"""The serve loop: read a request, run its handler, send the reply, repeat.

The server owns the request lifecycle and the exit statuses of PROTOCOL.md.
It reaches the frame format only through :mod:`pypool_worker.wire`, and the
process's streams only through the reader and writer it is given, so tests can
drive it with pipes or in-memory buffers and an explicit registry.
"""

import inspect
import io
import logging
import select
import time
import traceback
from typing import Any, Callable, Dict, Optional, Union

from . import wire
from .errors import CommandError
from .log import logger as default_logger
from .registry import Command, Registry
from .signals import StopSignal
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


class HostGone(Exception):
    """Writing a frame failed because the host closed its end of the pipe."""


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
    ) -> None:
        self.registry = registry
        self.state = state
        self.reader = reader
        self.max_frame_bytes = max_frame_bytes
        self.stop = stop
        self.log = logger if logger is not None else default_logger
        self._write = write

    # -- frames --------------------------------------------------------------

    def send(self, message: Dict[str, Any]) -> None:
        """Encodes and writes one frame; raises :class:`HostGone` if the host has closed the pipe."""
        self.send_bytes(wire.encode(message, self.max_frame_bytes))

    def send_bytes(self, frame: bytes) -> None:
        """Writes an encoded frame; raises :class:`HostGone` if the host has closed the pipe."""
        try:
            self._write(frame)
        except BrokenPipeError as exc:
            raise HostGone(str(exc)) from exc

    def handshake(self) -> Dict[str, Any]:
        """The handshake message announcing this worker's commands."""
        return {
            "type": "handshake",
            "protocol": wire.PROTOCOL_VERSION,
            "worker_id": self.state.worker_id,
            "pid": self.state.pid,
            "python_version": self.state.python_version,
            "commands": self.registry.describe(),
            "capacity": 1,
        }

    # -- the loop ------------------------------------------------------------

    def serve(self) -> int:
        """Sends the handshake, then serves; returns the process exit status."""
        try:
            self.send(self.handshake())
            self.log.info(
                "worker %d ready (pid %d), serving: %s",
                self.state.worker_id,
                self.state.pid,
                ", ".join(self.registry.names()),
            )
            return self._serve_requests()
        except HostGone:
            self.log.debug("the host closed the frame pipe; exiting")
            return EXIT_OK

    def _serve_requests(self) -> int:
        while True:
            if self._stop_requested():
                self.log.info("received %s while idle; exiting", self.stop.name if self.stop else "stop")
                return self._drain()
            if not self._wait_for_input():
                continue
            try:
                message = wire.read_frame(self.reader, self.max_frame_bytes)
            except wire.NestingTooDeep as exc:
                if exc.request_id is None:
                    self.log.error("protocol error: %s, and no request id could be read; exiting", exc)
                    return EXIT_PROTOCOL_ERROR
                # The frame was read whole: the stream is still in step.
                self.send(
                    _error_reply(exc.request_id, "invalid_arguments", "command %r: %s" % (exc.command, exc))
                )
                self.log.warning("request %d %r refused: %s", exc.request_id, exc.command, exc)
                continue
            except wire.WireError as exc:
                self.log.error(
                    "protocol error: malformed frame from the host (%s: %s); the connection is dead, exiting",
                    exc.error_class,
                    exc,
                )
                return EXIT_PROTOCOL_ERROR
            if message is None:
                self.log.info("stdin closed by the host; exiting")
                return EXIT_OK
            if message["type"] != "request":
                self.log.error(
                    "protocol error: the host sent a %r message, only requests are allowed; exiting",
                    message["type"],
                )
                return EXIT_PROTOCOL_ERROR
            frame = self.respond(message)
            self.send_bytes(frame)
            self.state.requests_served += 1
            if self._stop_requested():
                self.log.info(
                    "received %s during request %d; replied, exiting", self.stop.name if self.stop else "stop",
                    message["id"],
                )
                return self._drain()

    def _drain(self) -> int:
        """Stops serving: tells the host (``draining``), then answers every request
        already on its way with ``not_started`` until the host closes stdin (or
        :data:`DRAIN_GRACE_SECONDS` pass). The host retries those elsewhere."""
        self.send({"type": "draining"})
        deadline = time.monotonic() + DRAIN_GRACE_SECONDS
        while True:
            if not self._readable_before(deadline):
                self.log.info("the host did not close stdin within %.1f s of draining; exiting", DRAIN_GRACE_SECONDS)
                return EXIT_OK
            try:
                message = wire.read_frame(self.reader, self.max_frame_bytes)
            except wire.NestingTooDeep as exc:
                if exc.request_id is None:
                    return EXIT_OK
                message = {"type": "request", "id": exc.request_id, "command": exc.command}
            except wire.WireError:
                return EXIT_OK
            if message is None:
                self.log.info("stdin closed by the host after draining; exiting")
                return EXIT_OK
            if message.get("type") != "request":
                return EXIT_OK
            self.log.info("request %d %r not started: this worker is stopping", message["id"], message["command"])
            self.send(
                _error_reply(
                    message["id"],
                    "not_started",
                    "worker %d is stopping and did not start %r; run it elsewhere"
                    % (self.state.worker_id, message["command"]),
                )
            )

    def _readable_before(self, deadline: float) -> bool:
        """Whether the reader has data (or EOF) before ``deadline``; True when it cannot be polled."""
        try:
            source = self.reader.fileno()
        except (AttributeError, OSError, ValueError):
            return True  # an in-memory stream: reading never blocks
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                readable, _, _ = select.select([source], [], [], remaining)
            except InterruptedError:
                continue
            return bool(readable)

    def _stop_requested(self) -> bool:
        return self.stop is not None and self.stop.requested

    def _wait_for_input(self) -> bool:
        """Blocks until the reader has data (True) or a stop signal arrives (False)."""
        if self.stop is None or self.stop.fileno() < 0:
            return True
        self.stop.rearm()
        wake = self.stop.fileno()
        source = self.reader.fileno()
        readable, _, _ = select.select([source, wake], [], [])
        if wake in readable:
            self.stop.drain()
        if self.stop.requested:
            return False
        return source in readable

    # -- one request ---------------------------------------------------------

    def respond(self, request: Dict[str, Any]) -> bytes:
        """Runs ``request`` and returns its encoded reply frame (never raises for handler faults)."""
        request_id = request["id"]
        name = request["command"]
        args = request.get("args", {})
        started = time.monotonic()
        command = self.registry.get(name)
        try:
            reply = self._run(request_id, name, command, args)
        except Exception as exc:  # a bug in this runtime, not in the handler
            self.log.exception("internal error while handling request %d %r", request_id, name)
            reply = _error_reply(request_id, "internal", "pypool_worker failed: %s" % _text_of(exc))
        frame = self._encode_reply(reply, name)
        self._log_outcome(request_id, name, command, reply, time.monotonic() - started, frame)
        return frame

    def _run(self, request_id: int, name: str, command: Optional[Command], args: Dict[str, Any]) -> Dict[str, Any]:
        if command is None:
            return _error_reply(
                request_id,
                "unknown_command",
                "no command named %r; this worker serves: %s" % (name, ", ".join(self.registry.names())),
            )
        try:
            command.check_arguments(args)
        except TypeError as exc:
            return _error_reply(request_id, "invalid_arguments", "command %r: %s" % (name, exc))
        try:
            result = command.handler(**args)
            if inspect.isawaitable(result):
                result = _run_awaitable(result)
        except CommandError as exc:
            return _error_reply(request_id, exc.kind, exc.message, traceback_text=exc.traceback_text)
        except BaseException as exc:  # noqa: B036 - KeyboardInterrupt, GeneratorExit, SystemExit too
            # The runtime's own stop signals never raise here (signals.py only
            # records them); whatever a handler raises is the handler's fault and
            # gets an error reply, and the worker keeps serving.
            return _error_reply(
                request_id,
                "python_exception",
                _text_of(exc),
                exception_type=type(exc).__name__,
                traceback_text=_format_traceback(exc),
            )
        return {"type": "reply", "id": request_id, "status": "ok", "result": result}

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


def _run_awaitable(awaitable: Any) -> Any:
    import asyncio

    async def wait() -> Any:
        return await awaitable

    return asyncio.run(wait())


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


"""The worker's entry point: ``python -m pypool_worker --worker-id N [...]``.

Start-up order matters: take the frame streams (before anything can print to
stdout), parse the arguments, configure logging, install the stop signals,
register the built-ins, import the ``--preload`` libraries and the handler
modules, then hand over to the server, which sends the handshake and serves.
"""

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any, List, NoReturn, Optional, Sequence

from . import builtins, loader, log, programs, settings_store, stdio, wire
from .registry import Registry, registry as default_registry
from .server import EXIT_INTERNAL_ERROR, EXIT_STARTUP_ERROR, HostGone, Server
from .signals import StopSignal
from .state import WorkerState

if TYPE_CHECKING:
    from .template import PreparedWorker

#: Exit status for bad command-line arguments (argparse's convention).
EXIT_USAGE = 2


class UsageError(Exception):
    """The command line could not be parsed; carries argparse's message."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be a non-negative integer, got %s" % text)
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer, got %s" % text)
    return value


# argparse names the type in its "invalid ... value" message.
_non_negative_int.__name__ = "non-negative integer"
_positive_int.__name__ = "positive integer"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (errors raise :class:`UsageError` instead of exiting)."""
    parser = _Parser(
        prog="python -m pypool_worker",
        description="A pypool worker: serves commands to its host over framed JSON on stdin/stdout.",
    )
    parser.add_argument("--worker-id", type=_non_negative_int, required=True, help="the id the host assigned")
    parser.add_argument(
        "--handlers",
        nargs="+",
        action="append",
        default=[],
        metavar="MOD_OR_FILE",
        help="handler modules to import: module names or paths to .py files (repeatable)",
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=log.LEVELS,
        default="info",
        help="minimum level of the log lines written to stderr (default: info)",
    )
    parser.add_argument(
        "--max-frame-bytes",
        type=_positive_int,
        default=wire.DEFAULT_MAX_FRAME_BYTES,
        help="largest frame body accepted or sent (default: %d)" % wire.DEFAULT_MAX_FRAME_BYTES,
    )
    parser.add_argument(
        "--program-cache",
        type=_positive_int,
        default=programs.DEFAULT_CAPACITY,
        metavar="N",
        help="how many built programs to keep (LRU; default: %d)" % programs.DEFAULT_CAPACITY,
    )
    parser.add_argument(
        "--capacity",
        type=_positive_int,
        default=None,
        metavar="N",
        help="how many requests the worker holds at once (default: 1 when every handler is serial, "
        "else %d); serial commands still run one at a time" % builtins.CONCURRENT_CAPACITY,
    )
    parser.add_argument(
        "--template",
        action="store_true",
        help="run as a fork template: import the preloads and handlers once, then fork a worker "
        "for each request of the host (see pypool_worker.template); --worker-id is ignored",
    )
    parser.add_argument(
        "--preload",
        nargs="+",
        action="append",
        default=[],
        choices=programs.PRELOADABLE,
        metavar="LIBRARY",
        help="import these libraries at start instead of on first use (choices: %s)" % ", ".join(programs.PRELOADABLE),
    )
    return parser


def main(argv: Optional[Sequence[str]] = None, registry: Optional[Registry] = None) -> int:
    """Runs a worker until it should exit; returns the exit status."""
    started = time.monotonic()
    try:
        streams = stdio.take_frame_streams()
    except OSError as exc:
        sys.stderr.write("pypool_worker: cannot take the frame streams (stdin/stdout are not open?): %s\n" % exc)
        return EXIT_STARTUP_ERROR

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        message = "%s: error: %s" % (parser.prog, exc)
        sys.stderr.write(message + "\n")
        _send_startup_error(streams, "bad_arguments", message)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0

    logger = log.configure(args.log_level)
    stop = StopSignal()
    if not args.template:
        # A template dies of SIGTERM (its guardian then takes its workers down).
        stop.install()
    state = WorkerState(args.worker_id, started=started)
    commands = registry if registry is not None else default_registry
    runner = programs.ProgramRunner(programs.ProgramCache(args.program_cache), settings_store.store, logger)
    builtins.install(commands, state, runner=runner, settings=settings_store.store)

    preloads: List[str] = [name for group in args.preload for name in group]
    try:
        programs.preload(preloads)
    except (Exception, SystemExit) as exc:
        message = "cannot preload %s: %s: %s" % (" ".join(preloads), type(exc).__name__, exc)
        logger.error("%s", message)
        _send_startup_error(streams, "handler_import", message, loader.format_import_error(exc), args.max_frame_bytes)
        return EXIT_STARTUP_ERROR

    handler_specs: List[str] = [spec for group in args.handlers for spec in group]
    try:
        loader.load_all(handler_specs)
    except (Exception, SystemExit) as exc:
        message = "%s: %s" % (type(exc).__name__, exc)
        logger.error("cannot import the handler modules (%s): %s", " ".join(handler_specs), message)
        trace = loader.format_import_error(exc)
        sys.stderr.write(trace)
        _send_startup_error(streams, "handler_import", message, trace, args.max_frame_bytes)
        return EXIT_STARTUP_ERROR

    if args.template:
        from . import template

        return template.serve(streams, lambda: _prepare_forked(args, commands, state), logger)
    return _serve(_make_server(streams, args, commands, state, stop, logger), logger)


def _prepare_forked(args: argparse.Namespace, commands: Registry, state: WorkerState) -> "PreparedWorker":
    """A forked worker's start up to the point where it needs its worker id.

    Runs in the child right after the template set up its fds 0, 1 and 2: it
    takes the frame streams, sets up fresh logging handlers and builds the
    server. A standby does this before it waits for its id, so an adopted
    standby only installs its stop signals, learns its id and sends its
    handshake."""
    from . import template

    streams = stdio.take_frame_streams()
    logger = log.configure(args.log_level)
    stop = StopSignal()
    server = _make_server(streams, args, commands, state, stop, logger)

    def serve(worker_id: int) -> int:
        stop.install()
        state.become(worker_id)
        return _serve(server, logger)

    return template.PreparedWorker(streams.read_fd, serve)


def _make_server(
    streams: stdio.FrameStreams,
    args: argparse.Namespace,
    commands: Registry,
    state: WorkerState,
    stop: StopSignal,
    logger: Any,
) -> Server:
    """The server for this process's frame streams, as the arguments configure it."""
    return Server(
        commands, state, streams.reader, streams.write_all, args.max_frame_bytes, stop, logger, capacity=args.capacity
    )


def _serve(server: Server, logger: Any) -> int:
    """Serves requests until the worker should exit; returns the exit status."""
    try:
        status = server.serve()
    except wire.WireError as exc:
        logger.error("cannot send a frame: %s", exc)
        status = EXIT_INTERNAL_ERROR
    except Exception:
        logger.exception("internal error in pypool_worker; exiting")
        status = EXIT_INTERNAL_ERROR
    if server.abandoned:
        # Handlers still run (the host went away mid-request): the interpreter
        # would wait for their threads at exit; nobody is left to answer.
        logger.debug("exiting with handlers still running")
        stdio.flush_or_silence()
        os._exit(status)
    return status


def _send_startup_error(
    streams: stdio.FrameStreams,
    kind: str,
    message: str,
    trace: Optional[str] = None,
    max_frame_bytes: int = wire.DEFAULT_MAX_FRAME_BYTES,
) -> None:
    frame: Any = {"type": "startup_error", "kind": kind, "message": message}
    if trace is not None:
        frame["traceback"] = trace
    try:
        try:
            data = wire.encode(frame, max_frame_bytes)
        except wire.FrameTooLarge:
            frame.pop("traceback", None)
            frame["message"] = message[:200]
            data = wire.encode(frame, max_frame_bytes)
        streams.write_all(data)
    except (BrokenPipeError, wire.WireError, HostGone):
        pass  # the host is gone or the limit is absurd: stderr already has the story


def run() -> NoReturn:
    """Console entry point: runs :func:`main` and exits with its status."""
    status = main()
    stdio.flush_or_silence()
    sys.exit(status)

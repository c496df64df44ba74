"""Taking the process's standard streams away from user code.

Frames travel over private duplicates of the worker's original stdin and
stdout. Once :func:`take_frame_streams` has run, fd 1 and ``sys.stdout`` point
at stderr (so ``print()``, ``os.write(1, ...)``, subprocesses and C extensions
cannot corrupt the frame stream) and fd 0 reads ``/dev/null`` (so nothing but
the worker can consume request bytes). This module must NOT know the frame
format.
"""

import io
import os
import sys
from typing import Any


class FrameStreams:
    """The private, non-inheritable file descriptors that carry frames."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        #: Where requests arrive (a duplicate of the original fd 0).
        self.read_fd = read_fd
        #: Where frames go (a duplicate of the original fd 1).
        self.write_fd = write_fd
        #: Unbuffered binary reader over :attr:`read_fd` (blocking ``readinto``).
        self.reader = io.FileIO(read_fd, "rb", closefd=False)

    def write_all(self, data: bytes) -> None:
        """Writes every byte of ``data``; raises ``BrokenPipeError`` when the host is gone."""
        view = memoryview(data)
        while view:
            written = os.write(self.write_fd, view)
            view = view[written:]


def take_frame_streams() -> FrameStreams:
    """Duplicates fds 0 and 1 privately and re-points the originals.

    Must run before any handler module is imported. Raises ``OSError`` when
    fd 0 or fd 1 is not open (the worker cannot talk to its host then).
    """
    _flush(sys.stdout)
    write_fd = os.dup(1)  # non-inheritable (PEP 446): subprocesses cannot write frames
    read_fd = os.dup(0)
    for fd in (write_fd, read_fd):
        os.set_inheritable(fd, False)  # already so since PEP 446; stated for the reader
        os.set_blocking(fd, True)
    try:
        os.dup2(2, 1)
    except OSError:
        _point_at_devnull(1, os.O_WRONLY)
    _point_at_devnull(0, os.O_RDONLY)
    if sys.stderr is not None:
        sys.stdout = sys.stderr
    return FrameStreams(read_fd, write_fd)


def _point_at_devnull(fd: int, flags: int) -> None:
    null = os.open(os.devnull, flags)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


def _flush(stream: Any) -> None:
    if stream is None:
        return
    try:
        stream.flush()
    except (OSError, ValueError):
        pass


def flush_or_silence() -> None:
    """Flushes ``sys.stdout``/``sys.stderr``; replaces them with ``/dev/null`` if that fails.

    Called before exiting: when the host has gone, stderr may be a broken pipe
    and the interpreter would otherwise turn the failed final flush into exit
    status 120 and an "Exception ignored" message nobody can read.
    """
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            continue
        try:
            stream.flush()
        except (OSError, ValueError):
            setattr(sys, name, open(os.devnull, "w"))

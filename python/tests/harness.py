"""Test harness: runs ``python -m pypool_worker`` as a subprocess and plays the host.

Frames are encoded and decoded here independently of ``pypool_worker.wire``
(plain struct + json), so the end-to-end tests cross-check the worker's wire
code rather than reuse it. Every wait has a timeout so a broken worker fails a
test instead of hanging the suite.
"""

import itertools
import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional

TESTS_DIR = Path(__file__).resolve().parent
PYTHON_DIR = TESTS_DIR.parent
REPO_DIR = PYTHON_DIR.parent
FIXTURES_DIR = TESTS_DIR / "fixtures"
REPO_FIXTURES_DIR = REPO_DIR / "tests" / "fixtures"

TIMEOUT = 15.0


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def encode(message: Dict[str, Any]) -> bytes:
    return frame(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


class StderrCollector(threading.Thread):
    """Drains a pipe into memory and lets tests wait for a substring to appear."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self._fd = fd
        self._data = bytearray()
        self._closed = False
        self._cond = threading.Condition()

    def run(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:
                chunk = b""
            with self._cond:
                if not chunk:
                    self._closed = True
                    self._cond.notify_all()
                    return
                self._data.extend(chunk)
                self._cond.notify_all()

    def text(self) -> str:
        with self._cond:
            return self._data.decode("utf-8", "replace")

    def wait_for(self, needle: str, timeout: float = TIMEOUT) -> str:
        """Blocks until ``needle`` appears (returns all text so far) or fails the test."""
        encoded = needle.encode("utf-8")
        with self._cond:
            ok = self._cond.wait_for(lambda: encoded in self._data or self._closed, timeout)
            if not ok or encoded not in self._data:
                raise AssertionError("%r never appeared on stderr; stderr was:\n%s" % (needle, self._data.decode("utf-8", "replace")))
            return self._data.decode("utf-8", "replace")

    def wait_closed(self, timeout: float = TIMEOUT) -> str:
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed, timeout):
                raise AssertionError("stderr was never closed")
            return self._data.decode("utf-8", "replace")


class Worker:
    """One worker subprocess and the host end of its pipes."""

    def __init__(
        self,
        *args: str,
        extra_pythonpath: Optional[List[str]] = None,
        read_handshake: bool = True,
        env: Optional[Dict[str, Optional[str]]] = None,
    ) -> None:
        """Starts a worker; ``env`` adds variables to (``None``: removes them from) the inherited environment."""
        env_overrides = env or {}
        env = os.environ.copy()
        for name, value in env_overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        paths = [str(PYTHON_DIR)] + list(extra_pythonpath or [])
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env.pop("PYTHONUNBUFFERED", None)
        self.argv = [sys.executable, "-m", "pypool_worker"] + list(args)
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            env=env,
            cwd=str(REPO_DIR),
        )
        self.stderr = StderrCollector(self.proc.stderr.fileno())
        self.stderr.start()
        self._ids = itertools.count(1)
        self.handshake: Optional[Dict[str, Any]] = self.recv() if read_handshake else None

    # -- frames -------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: Dict[str, Any]) -> None:
        self.send_raw(encode(message))

    def _read_exactly(self, count: int, timeout: float) -> bytes:
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        data = bytearray()
        while len(data) < count:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([fd], [], [], max(0.0, remaining))
            if not readable:
                raise AssertionError(
                    "timed out waiting for %d bytes from the worker; stderr:\n%s" % (count, self.stderr.text())
                )
            chunk = os.read(fd, count - len(data))
            if not chunk:
                break
            data.extend(chunk)
        return bytes(data)

    def recv(self, timeout: float = TIMEOUT) -> Dict[str, Any]:
        prefix = self._read_exactly(4, timeout)
        if len(prefix) < 4:
            raise AssertionError("worker closed its frame stream; stderr:\n%s" % self.stderr.text())
        (length,) = struct.unpack(">I", prefix)
        body = self._read_exactly(length, timeout)
        assert len(body) == length, "truncated frame from the worker"
        return json.loads(body.decode("utf-8"))

    def read_to_eof(self, timeout: float = TIMEOUT) -> bytes:
        """Everything left on the frame stream until the worker closes it."""
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        data = bytearray()
        while True:
            readable, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not readable:
                raise AssertionError("the worker kept its frame stream open; stderr:\n%s" % self.stderr.text())
            chunk = os.read(fd, 65536)
            if not chunk:
                return bytes(data)
            data.extend(chunk)

    # -- requests -----------------------------------------------------------

    def request(self, command: str, **args: Any) -> int:
        request_id = next(self._ids)
        self.send({"type": "request", "id": request_id, "command": command, "args": args})
        return request_id

    def call(self, command: str, **args: Any) -> Dict[str, Any]:
        """Sends a request and returns its reply (checking the id)."""
        request_id = self.request(command, **args)
        reply = self.recv()
        assert reply["type"] == "reply", reply
        assert reply["id"] == request_id, reply
        return reply

    def ok(self, command: str, **args: Any) -> Any:
        """Calls ``command`` and returns its result, failing the test on an error reply."""
        reply = self.call(command, **args)
        assert reply["status"] == "ok", reply
        return reply["result"]

    def error(self, command: str, **args: Any) -> Dict[str, Any]:
        """Calls ``command`` and returns its error, failing the test on success."""
        reply = self.call(command, **args)
        assert reply["status"] == "error", reply
        return reply["error"]

    # -- process ------------------------------------------------------------

    def signal(self, signum: int) -> None:
        """Signals the process the test spawned (the guardian, which forwards stop signals)."""
        self.proc.send_signal(signum)

    def signal_worker(self, signum: int) -> None:
        """Signals the worker itself (the pid from its handshake), skipping the guardian.

        Use it when the test needs the signal delivered before its next step:
        the guardian forwards asynchronously, so a signal sent through it may
        land after a request the test releases next has already finished."""
        assert self.handshake is not None, "no handshake read: the worker pid is unknown"
        os.kill(self.handshake["pid"], signum)

    def close_stdin(self) -> None:
        self.proc.stdin.close()

    def wait(self, timeout: float = TIMEOUT) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        """Ends the worker (EOF, then SIGKILL if it lingers) and closes the pipes."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.stderr.join(timeout=5)
        self.proc.stderr.close()


class FakeOpenAI:
    """``tests/fixtures/fake_openai.py`` in a subprocess; ready once it has printed ``READY <port>``."""

    SCRIPT = REPO_FIXTURES_DIR / "fake_openai.py"

    def __init__(self, script: Optional[Path] = None, extra_args: List[str] = ()) -> None:  # type: ignore[assignment]
        self.proc = subprocess.Popen(
            [sys.executable, str(script or self.SCRIPT), "--port", "0", *extra_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        self.stderr = StderrCollector(self.proc.stderr.fileno())
        self.stderr.start()
        line = self._read_line()
        if not line.startswith("READY "):
            raise AssertionError("fake_openai.py printed %r instead of READY <port>; stderr:\n%s" % (line, self.stderr.text()))
        #: The port it listens on (127.0.0.1).
        self.port = int(line.split()[1])
        #: ``api_base`` for successful completions.
        self.api_base = "http://127.0.0.1:%d/v1" % self.port
        #: ``api_base`` whose completions fail with HTTP 500.
        self.fail_api_base = "http://127.0.0.1:%d/fail/v1" % self.port

    def _read_line(self, timeout: float = TIMEOUT) -> str:
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        data = bytearray()
        while not data.endswith(b"\n"):
            readable, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not readable:
                raise AssertionError("fake_openai.py never printed READY; stderr:\n%s" % self.stderr.text())
            chunk = os.read(fd, 1)
            if not chunk:
                break
            data.extend(chunk)
        return data.decode("utf-8").strip()

    def get(self, path: str) -> Any:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path), timeout=TIMEOUT) as response:
            return json.loads(response.read().decode("utf-8"))

    def post(self, path: str, body: Dict[str, Any]) -> Any:
        """POSTs JSON; returns ``(status, decoded body)`` (HTTP errors included)."""
        request = urllib.request.Request(
            "http://127.0.0.1:%d%s" % (self.port, path),
            data=json.dumps(body).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return response.status, json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read().decode("utf-8"))

    def requests(self) -> int:
        """Completion requests received so far (including failed ones)."""
        return int(self.get("/stats")["requests"])

    def stop(self) -> int:
        """Closes its stdin (which makes it exit) and returns its exit status."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        return self.proc.returncode

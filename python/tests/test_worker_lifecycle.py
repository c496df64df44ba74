"""End-to-end: start-up failures, exits and signals. Each test runs its own worker."""

import os
import signal
import struct

import pytest

from harness import FIXTURES_DIR, REPO_FIXTURES_DIR, Worker, frame

BASIC = str(REPO_FIXTURES_DIR / "handlers_basic.py")
E2E = str(FIXTURES_DIR / "handlers_e2e.py")


def test_stdin_eof_exits_0(spawn):
    worker = spawn("--worker-id", "1")
    worker.close_stdin()
    assert worker.read_to_eof() == b""
    assert worker.wait() == 0
    assert "stdin closed" in worker.stderr.wait_closed()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_while_idle_exits_0_promptly(spawn, signum):
    worker = spawn("--worker-id", "1")
    worker.signal(signum)
    assert worker.wait() == 0
    assert "while idle" in worker.stderr.wait_closed()


def test_sigterm_during_a_request_finishes_it_replies_then_exits_0(spawn, tmp_path):
    worker = spawn("--worker-id", "2", "--handlers", E2E)
    release = tmp_path / "release"
    os.mkfifo(release)
    request_id = worker.request("e2e_wait_for_release", marker="slow-request-started", release_fifo=str(release))
    worker.stderr.wait_for("slow-request-started")
    worker.signal_worker(signal.SIGTERM)
    with open(release, "wb") as fifo:
        fifo.write(b"go")
    reply = worker.recv()
    assert reply == {"type": "reply", "id": request_id, "status": "ok", "result": {"released": True}}
    assert worker.recv() == {"type": "draining"}
    worker.close_stdin()
    assert worker.wait() == 0
    assert "received SIGTERM during request %d; replied, exiting" % request_id in worker.stderr.wait_closed()
    assert worker.read_to_eof() == b""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopping_worker_says_draining_and_answers_later_requests_not_started(spawn, signum):
    worker = spawn("--worker-id", "3")
    worker.signal(signum)
    assert worker.recv() == {"type": "draining"}
    for _ in range(2):
        error = worker.error("ping")
        assert error["kind"] == "not_started"
        assert "stopping" in error["message"]
    worker.close_stdin()
    assert worker.wait() == 0
    assert "stdin closed by the host after draining" in worker.stderr.wait_closed()
    assert worker.read_to_eof() == b""


def test_a_draining_worker_exits_on_its_own_when_the_host_never_closes_stdin(spawn):
    worker = spawn("--worker-id", "4")
    worker.signal(signal.SIGTERM)
    assert worker.recv() == {"type": "draining"}
    assert worker.wait() == 0
    assert "did not close stdin" in worker.stderr.wait_closed()


@pytest.mark.parametrize(
    "data",
    [
        frame(b""),
        frame(b'{"type":"request","id":1,'),
        frame(b'{"type":"gossip"}'),
        frame(b'{"type":"request","id":-1,"command":"ping","args":{}}'),
        frame(b'{"type":"reply","id":1,"status":"ok","result":null}'),
        struct.pack(">I", 40) + b'{"type":"request"',  # then EOF mid-frame
        b"\x00\x00",  # EOF inside the prefix
        struct.pack(">I", 2048) + b"{}",  # above --max-frame-bytes 1024
    ],
    ids=["zero_length", "invalid_json", "unknown_type", "negative_id", "not_a_request", "eof_mid_body", "eof_mid_prefix", "too_large"],
)
def test_a_malformed_frame_exits_65_with_a_protocol_error_on_stderr(spawn, data):
    worker = spawn("--worker-id", "3", "--max-frame-bytes", "1024")
    worker.send_raw(data)
    worker.close_stdin()
    assert worker.wait() == 65
    assert "protocol error" in worker.stderr.wait_closed()
    assert worker.read_to_eof() == b""


def test_requests_before_a_malformed_frame_are_answered(spawn):
    worker = spawn("--worker-id", "3")
    assert worker.ok("ping")["pong"] is True
    worker.send_raw(frame(b"[1,2,3]"))
    assert worker.wait() == 65


def test_a_missing_handler_module_sends_startup_error_and_exits_78(spawn):
    worker = spawn("--worker-id", "4", "--handlers", "pypool_no_such_module", read_handshake=False)
    message = worker.recv()
    assert message["type"] == "startup_error"
    assert message["kind"] == "handler_import"
    assert message["message"] == "ModuleNotFoundError: No module named 'pypool_no_such_module'"
    assert "Traceback" in message["traceback"]
    assert worker.wait() == 78
    assert worker.read_to_eof() == b""
    assert "pypool_no_such_module" in worker.stderr.wait_closed()


@pytest.mark.parametrize(
    "handler, expected_message",
    [
        (str(FIXTURES_DIR / "handlers_broken.py"), "ZeroDivisionError: division by zero"),
        (str(FIXTURES_DIR / "does_not_exist.py"), "FileNotFoundError: handler file"),
        (str(FIXTURES_DIR / "handlers_duplicate_ping.py"), "DuplicateCommand: command 'ping' is already registered"),
    ],
    ids=["raises_at_import", "missing_file", "duplicate_builtin"],
)
def test_handler_files_that_cannot_load_send_startup_error(spawn, handler, expected_message):
    worker = spawn("--worker-id", "4", "--handlers", E2E, handler, read_handshake=False)
    message = worker.recv()
    assert message["type"] == "startup_error" and message["kind"] == "handler_import"
    assert message["message"].startswith(expected_message)
    assert worker.wait() == 78


def test_a_startup_traceback_starts_at_the_users_code(spawn):
    broken = str(FIXTURES_DIR / "handlers_broken.py")
    worker = spawn("--worker-id", "4", "--handlers", broken, read_handshake=False)
    lines = worker.recv()["traceback"].splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[1].startswith('  File "%s"' % broken), lines
    assert lines[-1] == "ZeroDivisionError: division by zero"
    assert worker.wait() == 78


@pytest.mark.parametrize(
    "args, complaint",
    [
        ([], "--worker-id"),
        (["--worker-id", "abc"], "--worker-id"),
        (["--worker-id", "-1"], "--worker-id"),
        (["--worker-id", "1", "--log-level", "loud"], "--log-level"),
        (["--worker-id", "1", "--max-frame-bytes", "0"], "--max-frame-bytes"),
    ],
    ids=["missing_worker_id", "non_integer_id", "negative_id", "bad_level", "zero_max_frame"],
)
def test_bad_arguments_exit_2_with_usage_and_a_startup_error(spawn, args, complaint):
    worker = spawn(*args, read_handshake=False)
    message = worker.recv()
    assert message["type"] == "startup_error" and message["kind"] == "bad_arguments"
    assert complaint in message["message"]
    assert worker.wait() == 2
    stderr = worker.stderr.wait_closed()
    assert "usage:" in stderr and complaint in stderr


def test_a_reply_to_a_host_that_has_gone_exits_0_quietly(spawn):
    worker = spawn("--worker-id", "5")
    worker.proc.stdout.close()  # the host stops reading frames
    worker.request("ping")
    worker.close_stdin()
    assert worker.wait() == 0
    stderr = worker.stderr.wait_closed()
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_log_level_warning_hides_routine_lines(spawn):
    worker = spawn("--worker-id", "6", "--log-level", "WARNING", "--handlers", BASIC)
    assert worker.ok("add", a=1, b=2) == 3
    worker.error("fail")
    worker.close_stdin()
    assert worker.wait() == 0
    stderr = worker.stderr.wait_closed()
    assert "raised ValueError" in stderr
    assert "ok in" not in stderr and "ready" not in stderr


class TestRepositoryFixture:
    """tests/fixtures/handlers_basic.py, which the Rust integration tests use too."""

    def test_every_command_behaves_as_documented(self, spawn):
        worker = spawn("--worker-id", "8", "--handlers", BASIC)
        announced = {c["name"]: c["idempotent"] for c in worker.handshake["commands"]}
        assert announced == {
            "ping": True, "info": True, "pypool.run_program": False, "pypool.apply_settings": True, "echo": True, "add": True, "fail": False, "noisy_print": False,
            "noisy_fd1": False, "sleep": False, "crash": False, "rss": True,
        }
        assert worker.ok("echo", a=1, b=[2]) == {"a": 1, "b": [2]}
        assert worker.ok("add", a=2, b=40) == 42
        error = worker.error("fail")
        assert (error["exception_type"], error["message"]) == ("ValueError", "boom")
        assert worker.ok("noisy_print", text="printed-by-basic") == {"printed": "printed-by-basic"}
        worker.stderr.wait_for("printed-by-basic")
        assert worker.ok("noisy_fd1", text="fd1-by-basic") == {"written": len("fd1-by-basic")}
        worker.stderr.wait_for("fd1-by-basic")
        assert worker.ok("sleep", seconds=0) == {"slept": 0}
        before = worker.ok("rss")
        after = worker.ok("rss", grow_mb=8)
        assert after["retained_bytes"] == before["retained_bytes"] + 8 * 1024 * 1024
        if before["rss_bytes"] is not None:
            assert after["rss_bytes"] >= before["rss_bytes"] + 6 * 1024 * 1024

    def test_crash_kills_the_worker_without_a_reply(self, spawn):
        worker = spawn("--worker-id", "9", "--handlers", BASIC)
        worker.request("crash", code=3)
        assert worker.read_to_eof() == b""
        assert worker.wait() == 3


def test_help_goes_to_stderr_not_the_frame_stream():
    worker = Worker("--help", read_handshake=False)
    try:
        assert worker.read_to_eof() == b""
        assert worker.wait() == 0
        assert "--worker-id" in worker.stderr.wait_closed()
    finally:
        worker.stop()

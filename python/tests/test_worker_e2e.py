"""End-to-end: one long-lived `python -m pypool_worker` subprocess, driven frame by frame.

These tests share a worker (see conftest.shared_worker) and must leave it serving.
"""

import os
import platform
import uuid


def _worker_pid(worker):
    """The pid that should serve: the guardian's child on Linux, the process itself elsewhere."""
    if not platform.system() == "Linux":
        return worker.proc.pid
    from pypool_worker.guardian import descendants

    children = descendants(worker.proc.pid)
    assert children, "the guardian has a worker child"
    return children[0]


def _marker(label):
    return "%s-%s" % (label, uuid.uuid4().hex)


def test_handshake_announces_identity_and_commands(shared_worker):
    handshake = shared_worker.handshake
    assert handshake["type"] == "handshake"
    assert handshake["protocol"] == 3
    assert handshake["worker_id"] == 7
    # The process started is the guardian; the worker is its child (Linux).
    assert handshake["pid"] == _worker_pid(shared_worker)
    assert handshake["python_version"] == platform.python_version()
    commands = {c["name"]: c["idempotent"] for c in handshake["commands"]}
    assert [c["name"] for c in handshake["commands"]][:2] == ["ping", "info"]
    assert commands["ping"] is True and commands["info"] is True
    assert commands["e2e_echo"] is True and commands["e2e_add"] is True
    assert commands["e2e_fail"] is False
    assert commands["modname_hello"] is True  # imported by module name


def test_ping_echoes_its_payload(shared_worker):
    payload = {"nested": [1, "two", None]}
    assert shared_worker.ok("ping", payload=payload) == {"pong": True, "worker_id": 7, "payload": payload}


def test_a_request_without_args_means_no_arguments(shared_worker):
    shared_worker.send({"type": "request", "id": 900001, "command": "ping"})
    reply = shared_worker.recv()
    assert reply == {"type": "reply", "id": 900001, "status": "ok", "result": {"pong": True, "worker_id": 7, "payload": None}}


def test_info_reports_the_worker_and_counts_requests(shared_worker):
    first = shared_worker.ok("info")
    second = shared_worker.ok("info")
    assert first["worker_id"] == 7
    assert first["pid"] == _worker_pid(shared_worker)
    assert first["python_version"] == platform.python_version()
    assert first["commands"] == shared_worker.handshake["commands"]
    assert second["requests_served"] == first["requests_served"] + 1
    assert second["uptime_s"] >= first["uptime_s"] >= 0
    if os.path.exists("/proc/self/statm"):
        assert isinstance(first["rss_bytes"], int) and first["rss_bytes"] > 1024 * 1024
    else:
        assert first["rss_bytes"] is None


def test_unknown_command_is_named_in_the_error(shared_worker):
    error = shared_worker.error("no_such_command")
    assert error["kind"] == "unknown_command"
    assert "no_such_command" in error["message"]


def test_a_raising_handler_yields_python_exception_and_the_worker_keeps_serving(shared_worker):
    error = shared_worker.error("e2e_fail", message="text must not be empty")
    assert error["kind"] == "python_exception"
    assert error["exception_type"] == "ValueError"
    assert error["message"] == "text must not be empty"
    assert "handlers_e2e.py" in error["traceback"]
    assert error["traceback"].rstrip().endswith("ValueError: text must not be empty")
    assert shared_worker.ok("e2e_add", a=2, b=3) == 5


def test_sys_exit_in_a_handler_is_an_error_reply_not_an_exit(shared_worker):
    error = shared_worker.error("e2e_exit")
    assert error["exception_type"] == "SystemExit"
    assert shared_worker.ok("ping")["pong"] is True


def test_missing_argument_is_named(shared_worker):
    error = shared_worker.error("e2e_add", a=1)
    assert error["kind"] == "invalid_arguments"
    assert "'b'" in error["message"]


def test_unexpected_argument_is_named(shared_worker):
    error = shared_worker.error("e2e_add", a=1, b=2, colour="red")
    assert error["kind"] == "invalid_arguments"
    assert "'colour'" in error["message"]


def test_keyword_defaults_apply(shared_worker):
    assert shared_worker.ok("e2e_add", a=1, b=2, scale=10) == 30


def test_unserialisable_results_are_invalid_result(shared_worker):
    error = shared_worker.error("e2e_unserialisable")
    assert error["kind"] == "invalid_result"
    assert "set" in error["message"]
    assert shared_worker.error("e2e_nan")["kind"] == "invalid_result"
    assert shared_worker.ok("ping")["pong"] is True


def test_print_goes_to_stderr_and_the_frame_stream_stays_intact(shared_worker):
    text = _marker("printed")
    assert shared_worker.ok("e2e_print", text=text) == {"printed": text}
    shared_worker.stderr.wait_for(text)
    assert shared_worker.ok("ping", payload=1)["payload"] == 1


def test_raw_writes_to_fd1_go_to_stderr(shared_worker):
    text = _marker("garbage-without-newline")
    assert shared_worker.ok("e2e_fd1", text=text) == {"written": text}
    shared_worker.stderr.wait_for(text)
    assert shared_worker.ok("ping", payload=2)["payload"] == 2


def test_subprocess_stdout_goes_to_stderr(shared_worker):
    text = _marker("from-echo")
    assert shared_worker.ok("e2e_subprocess_echo", text=text) == {"returncode": 0}
    shared_worker.stderr.wait_for(text)
    assert shared_worker.ok("ping", payload=3)["payload"] == 3


def test_user_code_and_children_cannot_read_request_bytes_from_stdin(shared_worker):
    assert shared_worker.ok("e2e_read_stdin") == {"stdin": "", "child": ""}


def test_async_handlers_are_awaited(shared_worker):
    assert shared_worker.ok("e2e_async_add", a=20, b=22) == 42


def test_a_handler_file_can_import_its_siblings(shared_worker):
    assert shared_worker.ok("e2e_sibling") == "hello from a sibling module"


def test_a_handler_module_imported_by_name_serves(shared_worker):
    assert shared_worker.ok("modname_hello", name="pypool") == "hello, pypool"


def test_unicode_and_extreme_ids_round_trip(shared_worker):
    args = {"text": "héllo — 世界 🐍", "n": [1, 2.5, None, True]}
    shared_worker.send({"type": "request", "id": 2 ** 64 - 1, "command": "e2e_echo", "args": args})
    reply = shared_worker.recv()
    assert reply == {"type": "reply", "id": 2 ** 64 - 1, "status": "ok", "result": args}


def test_large_frames_cross_the_pipe_both_ways(shared_worker):
    blob = "ab" * (3 * 1024 * 1024)  # 6 MiB each way: many pipe-sized chunks
    assert shared_worker.ok("e2e_echo", blob=blob) == {"blob": blob}
    assert len(shared_worker.ok("e2e_big", size=5 * 1024 * 1024)) == 5 * 1024 * 1024


def test_unknown_request_fields_are_ignored(shared_worker):
    shared_worker.send({"type": "request", "id": 900002, "command": "ping", "args": {}, "deadline_ms": 5})
    assert shared_worker.recv()["id"] == 900002


def test_routine_pings_log_at_debug_and_other_requests_at_info(shared_worker):
    shared_worker.ok("ping")
    shared_worker.ok("e2e_add", a=0, b=0)
    text = shared_worker.stderr.wait_for("'e2e_add' ok in")
    assert "DEBUG pypool_worker: request" in text and "'ping' ok in" in text
    assert "INFO pypool_worker: request" in text

"""The serve loop driven in-process with an explicit registry and in-memory streams."""

import io
import logging

import pytest

from pypool_worker import Registry, builtins, wire
from pypool_worker.server import EXIT_OK, EXIT_PROTOCOL_ERROR, Server
from pypool_worker.state import WorkerState


def _registry():
    reg = Registry()

    @reg.command(idempotent=True)
    def add(a, b):
        return a + b

    @reg.command
    def fail(message="boom"):
        raise ValueError(message)

    @reg.command
    def surrogate():
        raise RuntimeError("bad \ud800 text")

    @reg.command
    def huge_error(size):
        raise ValueError("e" * size)

    @reg.command
    def huge_result(size):
        return "r" * size

    @reg.command
    def raise_base(kind):
        raise {
            "KeyboardInterrupt": KeyboardInterrupt,
            "BaseException": BaseException,
            "GeneratorExit": GeneratorExit,
            "SystemExit": SystemExit,
        }[kind]("from the handler")

    @reg.command
    def echo(**kwargs):
        return kwargs

    @reg.command
    def deep_result(depth):
        value = []
        for _ in range(depth - 1):
            value = [value]
        return value

    @reg.command
    def unprintable():
        class Weird(Exception):
            def __str__(self):
                raise RuntimeError("no")

        raise Weird()

    return reg


def _serve(requests, registry=None, max_frame_bytes=wire.DEFAULT_MAX_FRAME_BYTES, raw_tail=b""):
    reg = registry if registry is not None else _registry()
    state = WorkerState(worker_id=5)
    builtins.install(reg, state)
    data = b"".join(wire.encode(r) for r in requests) + raw_tail
    written = bytearray()
    server = Server(reg, state, io.BytesIO(data), written.extend, max_frame_bytes, logger=logging.getLogger("test"))
    status = server.serve()
    out = io.BytesIO(bytes(written))
    frames = []
    while True:
        frame = wire.read_frame(out, max(max_frame_bytes, 1 << 20))
        if frame is None:
            return status, frames, state
        frames.append(frame)


def _req(request_id, command, **args):
    return {"type": "request", "id": request_id, "command": command, "args": args}


def test_handshake_then_replies_in_order_then_clean_exit():
    status, frames, state = _serve([_req(1, "add", a=1, b=2), _req(2, "ping", payload="p"), _req(3, "info")])
    assert status == EXIT_OK
    handshake = frames[0]
    assert handshake["type"] == "handshake" and handshake["worker_id"] == 5 and handshake["protocol"] == 3
    names = [c["name"] for c in handshake["commands"]]
    assert names[-4:] == ["ping", "info", "pypool.run_program", "pypool.apply_settings"]
    assert tuple(names[-4:]) == builtins.BUILTIN_NAMES
    # Serial requests are answered in order; `ping` is answered by the reader
    # as it arrives (it may overtake a serial request still queued).
    replies = {frame["id"]: frame for frame in frames[1:]}
    assert [frame["id"] for frame in frames[1:] if frame["id"] != 2] == [1, 3]
    assert replies[1] == {"type": "reply", "id": 1, "status": "ok", "result": 3}
    assert replies[2]["result"] == {"pong": True, "worker_id": 5, "payload": "p"}
    assert replies[3]["result"]["requests_served"] == 2
    assert state.requests_served == 3


def test_handler_exception_becomes_an_error_reply_and_serving_continues():
    status, frames, _ = _serve([_req(1, "fail", message="nope"), _req(2, "add", a=2, b=2)])
    error = frames[1]["error"]
    assert error["kind"] == "python_exception"
    assert error["exception_type"] == "ValueError"
    assert error["message"] == "nope"
    assert error["traceback"].startswith("Traceback (most recent call last)")
    assert "raise ValueError(message)" in error["traceback"]
    assert "command.handler(**args)" not in error["traceback"]
    assert frames[2]["result"] == 4
    assert status == EXIT_OK


def test_lone_surrogates_in_exception_text_still_produce_a_valid_reply():
    _, frames, _ = _serve([_req(1, "surrogate")])
    assert frames[1]["error"]["message"] == "bad ? text"


def test_an_exception_whose_str_fails_is_still_reported():
    _, frames, _ = _serve([_req(1, "unprintable")])
    assert frames[1]["error"]["exception_type"] == "Weird"
    assert "unprintable Weird" in frames[1]["error"]["message"]


def test_an_error_too_large_for_a_frame_is_truncated_not_dropped():
    _, frames, _ = _serve([_req(1, "huge_error", size=50000), _req(2, "add", a=1, b=1)], max_frame_bytes=4096)
    error = frames[1]["error"]
    assert error["kind"] == "python_exception"
    assert "characters truncated" in error["message"]
    assert len(wire.encode_body(frames[1])) <= 4096
    assert frames[2]["result"] == 2


def test_a_result_too_large_for_a_frame_is_invalid_result():
    status, frames, _ = _serve([_req(1, "huge_result", size=5000), _req(2, "add", a=1, b=1)], max_frame_bytes=4096)
    assert frames[1]["error"]["kind"] == "invalid_result"
    assert "too large" in frames[1]["error"]["message"]
    assert frames[2]["result"] == 2
    assert status == EXIT_OK


@pytest.mark.parametrize(
    "tail",
    [
        b"\x00\x00\x00\x00",
        b"\x00\x00\x00\x05{}",
        b"\x00\x00\x00\x02[]",
        wire.encode({"type": "startup_error", "kind": "internal", "message": "host sent this"}),
    ],
    ids=["zero_length", "truncated", "not_an_object", "not_a_request"],
)
def test_a_malformed_frame_after_good_ones_exits_65(tail):
    status, frames, _ = _serve([_req(1, "add", a=1, b=1)], raw_tail=tail)
    assert status == EXIT_PROTOCOL_ERROR
    assert frames[1]["result"] == 2
    assert len(frames) == 2


def test_a_host_that_has_gone_ends_serving_quietly():
    reg = Registry()
    state = WorkerState(worker_id=1)
    builtins.install(reg, state)

    def broken_pipe(_data):
        raise BrokenPipeError(32, "Broken pipe")

    server = Server(reg, state, io.BytesIO(wire.encode(_req(1, "ping"))), broken_pipe)
    assert server.serve() == EXIT_OK


@pytest.mark.parametrize("kind", ["KeyboardInterrupt", "BaseException", "GeneratorExit", "SystemExit"])
def test_a_base_exception_from_a_handler_is_an_error_reply_and_serving_continues(kind):
    status, frames, state = _serve([_req(1, "raise_base", kind=kind), _req(2, "add", a=1, b=1)])
    error = frames[1]["error"]
    assert error["kind"] == "python_exception"
    assert error["exception_type"] == kind
    assert frames[2]["result"] == 2
    assert status == EXIT_OK and state.requests_served == 2


def _nested_args_frame(request_id, depth):
    """A raw request frame whose args object is nested ``depth`` levels deep."""
    args = '{"k":' * (depth - 1) + "{}" + "}" * (depth - 1)
    return _frame(('{"type":"request","id":%d,"command":"echo","args":%s}' % (request_id, args)).encode())


def _frame(body):
    import struct

    return struct.pack(">I", len(body)) + body


@pytest.mark.parametrize("depth", [101, 2000, 1000000])
def test_arguments_nested_too_deep_are_invalid_arguments_and_serving_continues(depth):
    status, frames, state = _serve([], raw_tail=_nested_args_frame(1, depth) + wire.encode(_req(2, "add", a=1, b=1)))
    assert frames[1]["id"] == 1 and frames[1]["status"] == "error"
    assert frames[1]["error"]["kind"] == "invalid_arguments"
    assert "nested deeper than 100" in frames[1]["error"]["message"]
    assert frames[2]["result"] == 2
    assert status == EXIT_OK


def test_arguments_at_the_limit_are_served():
    status, frames, _ = _serve([], raw_tail=_nested_args_frame(1, 100))
    assert frames[1]["status"] == "ok"
    assert status == EXIT_OK


def test_deep_arguments_are_refused_even_when_a_handler_raised_the_recursion_limit():
    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000_000)
    try:
        status, frames, _ = _serve([], raw_tail=_nested_args_frame(1, 2_000_000))
    finally:
        sys.setrecursionlimit(old)
    assert frames[1]["error"]["kind"] == "invalid_arguments"
    assert status == EXIT_OK


@pytest.mark.parametrize("depth", [101, 5000])
def test_a_result_nested_too_deep_is_invalid_result_and_serving_continues(depth):
    status, frames, _ = _serve([_req(1, "deep_result", depth=depth), _req(2, "deep_result", depth=100)])
    assert frames[1]["error"]["kind"] == "invalid_result"
    assert frames[2]["status"] == "ok"
    assert status == EXIT_OK

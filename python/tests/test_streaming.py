"""Streaming replies (protocol version 3) in-process: generators and async
generators stream their yields as chunks under the host's credit, pause at
zero credit, stop on cancel, and end with the ordinary reply.

The server runs on a test thread (:class:`LiveServer`); handlers wait on
events the test sets, no sleeps.
"""

import asyncio
import threading

from pypool_worker import Registry
from pypool_worker.registry import ASYNC, SERIAL
from pypool_worker.server import EXIT_OK
from pypool_worker.streaming import StreamCredit, streaming_requested

from harness import REPO_FIXTURES_DIR
from test_concurrency import WAIT, LiveServer, _error, _result, _wait

STREAM_HANDLERS = str(REPO_FIXTURES_DIR / "handlers_stream.py")


def _stream(live, request_id, command, credit, **args):
    live.send({"type": "stream_request", "id": request_id, "command": command, "args": args, "credit": credit})


def _credit(live, request_id, grant):
    live.send({"type": "credit", "id": request_id, "grant": grant})


def _chunk(frame, request_id, seq):
    assert frame["type"] == "chunk" and frame["id"] == request_id and frame["seq"] == seq, frame
    return frame["data"]


def _registry(events=None):
    reg = Registry()
    produced = []
    closed = []
    where = []

    @reg.command
    def count(n):
        where.append(threading.current_thread().name)
        for i in range(n):
            produced.append(i)
            yield {"i": i}
        return {"total": n}

    @reg.command(concurrency="threads")
    def count_threads(n):
        where.append(threading.current_thread().name)
        for i in range(n):
            produced.append(i)
            yield i
        return "done"

    @reg.command(concurrency="threads")
    def endless():
        try:
            i = 0
            while True:
                produced.append(i)
                yield i
                i += 1
        except GeneratorExit:
            closed.append("GeneratorExit")
            raise

    @reg.command
    async def agen(n):
        for i in range(n):
            produced.append(i)
            yield {"a": i}
            await asyncio.sleep(0)

    @reg.command
    async def agen_stuck():
        yield "first"
        try:
            await asyncio.Event().wait()  # never set: only a cancel ends it
        except asyncio.CancelledError:
            closed.append("CancelledError")
            raise

    @reg.command
    def bad_yield():
        yield 1
        try:
            yield object()
        except GeneratorExit:
            closed.append("GeneratorExit")
            raise

    @reg.command
    def raises_midway():
        yield 1
        raise ValueError("midway")

    @reg.command
    def flag():
        return streaming_requested()

    @reg.command
    def flag_gen():
        yield streaming_requested()

    return reg, produced, closed, where


def test_a_generator_streams_its_yields_in_order_then_its_return_value():
    reg, _, _, where = _registry()
    live = LiveServer(reg)
    _stream(live, 1, "count", 16, n=3)
    assert [_chunk(live.recv(), 1, seq) for seq in range(3)] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert _result(live.recv(), 1) == {"total": 3}
    assert where == [live._thread.name], "a serial generator runs on the main thread"
    assert live.close() == EXIT_OK


def test_the_producer_pauses_at_zero_credit_and_resumes_with_each_grant():
    reg, produced, _, where = _registry()
    live = LiveServer(reg)
    _stream(live, 1, "count_threads", 2, n=10)
    assert [_chunk(live.recv(), 1, seq) for seq in range(2)] == [0, 1]
    # A round trip on another command: the producer has had every chance to run ahead.
    live.request(2, "ping")
    assert _result(live.recv(), 2)["pong"] is True
    assert live.pending_frames() == []
    assert produced == [0, 1], "the generator was not asked for a value it had no credit to send"
    assert where != [live._thread.name], "a threads generator runs on the pool"
    _credit(live, 1, 3)
    assert [_chunk(live.recv(), 1, seq) for seq in range(2, 5)] == [2, 3, 4]
    live.request(3, "ping")
    assert _result(live.recv(), 3)["pong"] is True
    assert produced == [0, 1, 2, 3, 4]
    _credit(live, 1, 100)
    assert [_chunk(live.recv(), 1, seq) for seq in range(5, 10)] == [5, 6, 7, 8, 9]
    assert _result(live.recv(), 1) == "done"
    assert live.close() == EXIT_OK


def test_a_stream_request_to_ping_is_answered_and_credit_still_reaches_a_waiting_stream():
    # `ping` is answered by the request reader, which also applies credits:
    # neither may hold up the other.
    reg, produced, _, _ = _registry()
    live = LiveServer(reg)
    _stream(live, 1, "count_threads", 0, n=2)
    _stream(live, 2, "ping", 0, payload="p")
    live.request(3, "ping")
    replies = {frame["id"]: frame for frame in (live.recv(), live.recv())}
    assert _result(replies[2], 2)["payload"] == "p"
    assert _result(replies[3], 3)["pong"] is True
    assert produced == [], "no credit, no value"
    # The producer asks for a value only with credit in hand: two chunks and
    # the end take three.
    _credit(live, 1, 3)
    assert [_chunk(live.recv(), 1, seq) for seq in range(2)] == [0, 1]
    assert _result(live.recv(), 1) == "done"
    assert live.close() == EXIT_OK


def test_zero_initial_credit_sends_nothing_until_a_credit_arrives():
    reg, produced, _, _ = _registry()
    live = LiveServer(reg)
    _stream(live, 1, "count_threads", 0, n=2)
    live.request(2, "ping")
    assert _result(live.recv(), 2)["pong"] is True
    assert produced == []
    _credit(live, 1, 5)
    assert [_chunk(live.recv(), 1, seq) for seq in range(2)] == [0, 1]
    assert _result(live.recv(), 1) == "done"
    live.close()


def test_cancel_closes_a_generator_waiting_for_credit():
    reg, _, closed, _ = _registry()
    live = LiveServer(reg)
    _stream(live, 1, "endless", 3)
    assert [_chunk(live.recv(), 1, seq) for seq in range(3)] == [0, 1, 2]
    live.cancel(1)
    error = _error(live.recv(), 1)
    assert error["kind"] == "cancelled" and "after 3 chunk(s)" in error["message"]
    assert closed == ["GeneratorExit"]
    # The id is free again; a late credit for it is ignored.
    _credit(live, 1, 10)
    live.request(2, "ping")
    assert _result(live.recv(), 2)["pong"] is True
    assert live.close() == EXIT_OK


def test_an_async_generator_streams_on_the_event_loop():
    reg, _, _, _ = _registry()
    live = LiveServer(reg)
    assert reg.get("agen").concurrency == ASYNC
    _stream(live, 1, "agen", 1, n=3)
    assert _chunk(live.recv(), 1, 0) == {"a": 0}
    live.request(2, "ping")
    assert _result(live.recv(), 2)["pong"] is True
    assert live.pending_frames() == [], "no credit, no second chunk"
    _credit(live, 1, 2)
    assert [_chunk(live.recv(), 1, seq) for seq in (1, 2)] == [{"a": 1}, {"a": 2}]
    _credit(live, 1, 1)
    assert _result(live.recv(), 1) is None
    live.close()


def test_cancel_raises_cancelled_error_where_an_async_generator_awaits():
    reg, _, closed, _ = _registry()
    live = LiveServer(reg)
    _stream(live, 1, "agen_stuck", 8)
    assert _chunk(live.recv(), 1, 0) == "first"
    live.cancel(1)
    assert _error(live.recv(), 1)["kind"] == "cancelled"
    assert closed == ["CancelledError"]
    live.close()


def test_cancel_of_an_async_generator_waiting_for_credit_closes_it():
    reg, produced, _, _ = _registry()
    live = LiveServer(reg)
    _stream(live, 1, "agen", 1, n=100)
    assert _chunk(live.recv(), 1, 0) == {"a": 0}
    live.cancel(1)
    assert _error(live.recv(), 1)["kind"] == "cancelled"
    assert produced == [0]
    live.close()


def test_a_plain_request_to_a_generator_gets_the_list_of_its_values():
    reg, _, _, _ = _registry()
    live = LiveServer(reg)
    live.request(1, "count", n=3)
    assert _result(live.recv(), 1) == [{"i": 0}, {"i": 1}, {"i": 2}]
    live.request(2, "agen", n=2)
    assert _result(live.recv(), 2) == [{"a": 0}, {"a": 1}]
    live.close()


def test_a_value_that_cannot_be_sent_ends_the_stream_with_invalid_result():
    reg, _, closed, _ = _registry()
    live = LiveServer(reg)
    _stream(live, 1, "bad_yield", 8)
    assert _chunk(live.recv(), 1, 0) == 1
    error = _error(live.recv(), 1)
    assert error["kind"] == "invalid_result" and "not JSON-serialisable" in error["message"]
    assert closed == ["GeneratorExit"]
    live.close()


def test_a_generator_that_raises_ends_the_stream_with_its_error_after_its_chunks():
    reg, _, _, _ = _registry()
    live = LiveServer(reg)
    _stream(live, 1, "raises_midway", 8)
    assert _chunk(live.recv(), 1, 0) == 1
    error = _error(live.recv(), 1)
    assert error["kind"] == "python_exception" and error["exception_type"] == "ValueError"
    live.close()


def test_a_handler_knows_whether_its_request_streams():
    reg, _, _, _ = _registry()
    live = LiveServer(reg)
    live.request(1, "flag")
    assert _result(live.recv(), 1) is False
    _stream(live, 2, "flag", 4)
    assert _result(live.recv(), 2) is True, "a plain value to a stream_request: its reply, no chunk"
    _stream(live, 3, "flag_gen", 4)
    assert _chunk(live.recv(), 3, 0) is True
    assert _result(live.recv(), 3) is None
    live.close()


def test_eof_ends_a_stream_waiting_for_credit():
    reg, _, closed, _ = _registry()
    live = LiveServer(reg)
    _stream(live, 1, "endless", 1)
    assert _chunk(live.recv(), 1, 0) == 0
    assert live.close() == EXIT_OK, "the worker finishes after EOF instead of waiting for credit forever"
    assert closed == ["GeneratorExit"]


def test_generator_functions_default_to_serial_and_async_generators_to_async():
    reg, _, _, _ = _registry()
    assert reg.get("count").concurrency == SERIAL
    assert reg.get("agen").concurrency == ASYNC
    assert reg.add("explicit_async", _async_gen_handler, concurrency="async").concurrency == ASYNC


async def _async_gen_handler():
    yield 1


def test_stream_credit_take_waits_and_stop_wakes_it():
    credit = StreamCredit(1)
    assert credit.take() is True
    taken = []
    waiter = threading.Thread(target=lambda: taken.append(credit.take()))
    waiter.start()
    credit.stop("cancelled")
    waiter.join(WAIT)
    assert taken == [False] and credit.stop_reason == "cancelled"


def test_stream_credit_async_take_wakes_on_a_grant_from_another_thread():
    credit = StreamCredit(0)

    async def main():
        task = asyncio.ensure_future(credit.take_async())
        await asyncio.sleep(0)
        assert not task.done()
        granted = threading.Event()
        threading.Thread(target=lambda: (credit.grant(1), granted.set())).start()
        assert await asyncio.wait_for(task, WAIT) is True
        _wait(granted, "grant")

    asyncio.run(main())


def test_a_real_worker_streams_while_its_generator_prints_to_stdout(spawn):
    worker = spawn("--worker-id", "4", "--handlers", STREAM_HANDLERS)
    # An id the harness's own counter (from 1) never reaches in this test.
    worker.send({"type": "stream_request", "id": 9001, "command": "endless", "args": {"marker": "m1"}, "credit": 5})
    chunks = [worker.recv() for _ in range(5)]
    assert [(c["type"], c["seq"], c["data"]["i"]) for c in chunks] == [("chunk", i, i) for i in range(5)]
    worker.stderr.wait_for("endless m1 produced 4")  # print() went to stderr, not into the frames
    worker.send({"type": "cancel", "id": 9001})
    reply = worker.recv()
    assert reply["id"] == 9001 and reply["error"]["kind"] == "cancelled", reply
    worker.stderr.wait_for("closed-m1")
    assert worker.ok("produced", marker="m1") == {"produced": 5, "closed": "GeneratorExit"}
    worker.close_stdin()
    assert worker.wait() == 0

"""Protocol v2 in-process: the server holds several requests, runs each where its
command runs, answers cancels, and writes every reply as one whole frame.

The server runs on a test thread over a real pipe (requests) and a recording
writer (replies), with handlers that wait on events the test sets: no sleeps.
"""

import asyncio
import json
import logging
import os
import struct
import threading
import time

import pytest

from pypool_worker import Registry, builtins, wire
from pypool_worker.server import EXIT_OK, Server
from pypool_worker.state import WorkerState

WAIT = 30.0


class LiveServer:
    """A :class:`Server` on a thread: ``send`` requests, ``recv`` replies (any order)."""

    def __init__(self, registry, capacity=None, chunk=None):
        self.registry = registry
        self._read_fd, self._write_fd = os.pipe()
        self._cond = threading.Condition()
        self._buffer = bytearray()
        self._frames = []
        self._chunk = chunk
        self.status = None
        state = WorkerState(worker_id=3)
        builtins.install(registry, state)
        self.server = Server(
            registry,
            state,
            open(self._read_fd, "rb", buffering=0),
            self._write,
            stop=None,
            logger=logging.getLogger("test-concurrency"),
            capacity=capacity,
        )
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self.handshake = self.recv()

    def _serve(self):
        self.status = self.server.serve()
        with self._cond:
            self._cond.notify_all()

    def _write(self, data):
        # Writes in small pieces, yielding between them: two writers not
        # serialised by the server would interleave their pieces here.
        step = self._chunk or len(data)
        for start in range(0, len(data), step):
            with self._cond:
                self._buffer.extend(data[start:start + step])
                self._parse()
                self._cond.notify_all()
            if self._chunk:
                time.sleep(0)  # a yield to other threads, not synchronisation

    def _parse(self):
        while len(self._buffer) >= 4:
            (length,) = struct.unpack(">I", self._buffer[:4])
            if len(self._buffer) < 4 + length:
                return
            body = bytes(self._buffer[4:4 + length])
            del self._buffer[:4 + length]
            self._frames.append(json.loads(body.decode("utf-8")))  # raises on an interleaved frame

    def send(self, message):
        os.write(self._write_fd, wire.encode(message))

    def request(self, request_id, command, **args):
        self.send({"type": "request", "id": request_id, "command": command, "args": args})

    def cancel(self, request_id):
        self.send({"type": "cancel", "id": request_id})

    def recv(self):
        with self._cond:
            if not self._cond.wait_for(lambda: self._frames, WAIT):
                raise AssertionError("no frame from the server within %.0f s" % WAIT)
            return self._frames.pop(0)

    def pending_frames(self):
        with self._cond:
            return list(self._frames)

    def close(self):
        """EOF on the request pipe; returns the exit status once the server has finished."""
        os.close(self._write_fd)
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the server did not finish after EOF"
        with self._cond:
            assert not self._buffer, "a partial frame was left: %r" % bytes(self._buffer)
        return self.status


def _wait(event, what="event"):
    assert event.wait(WAIT), "%s never happened" % what


def _result(frame, request_id):
    assert frame["type"] == "reply" and frame["id"] == request_id, frame
    assert frame["status"] == "ok", frame
    return frame["result"]


def _error(frame, request_id):
    assert frame["type"] == "reply" and frame["id"] == request_id, frame
    assert frame["status"] == "error", frame
    return frame["error"]


# -- serial --------------------------------------------------------------------


def test_serial_commands_run_one_at_a_time_in_arrival_order():
    reg = Registry()
    lock = threading.Lock()
    running = [0]
    most = [0]
    order = []
    first_may_finish = threading.Event()
    first_started = threading.Event()

    @reg.command
    def step(n):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            order.append(n)
        if n == 0:
            first_started.set()
            _wait(first_may_finish, "release of step 0")
        with lock:
            running[0] -= 1
        return n

    live = LiveServer(reg, capacity=32)
    for n in range(20):
        live.request(n + 1, "step", n=n)
    _wait(first_started, "step 0 started")
    # Every request is with the worker, and none but the first has started.
    assert live.pending_frames() == []
    assert order == [0]
    first_may_finish.set()
    replies = [live.recv() for _ in range(20)]
    assert [r["id"] for r in replies] == list(range(1, 21)), "replies in arrival order"
    assert [r["result"] for r in replies] == list(range(20))
    assert order == list(range(20))
    assert most[0] == 1, "never two serial handlers at once"
    assert live.close() == EXIT_OK


def test_serial_handlers_run_on_the_main_thread_of_the_server():
    reg = Registry()

    @reg.command
    def where():
        return threading.current_thread().name

    live = LiveServer(reg)
    live.request(1, "where")
    assert _result(live.recv(), 1) == live._thread.name
    live.close()


def test_a_blocked_serial_handler_does_not_block_the_reader_or_concurrent_commands():
    reg = Registry()
    release = threading.Event()
    started = threading.Event()

    @reg.command
    def slow():
        started.set()
        _wait(release, "release of the serial handler")
        return "slow"

    @reg.command(concurrency="threads")
    def quick_thread():
        return "thread"

    @reg.command
    async def quick_async():
        return "async"

    live = LiveServer(reg)
    live.request(1, "slow")
    _wait(started, "the serial handler started")
    live.request(2, "quick_thread")
    live.request(3, "quick_async")
    replies = {frame["id"]: frame for frame in (live.recv(), live.recv())}
    assert _result(replies[2], 2) == "thread" and _result(replies[3], 3) == "async"
    release.set()
    assert _result(live.recv(), 1) == "slow"
    live.close()


def test_ping_is_answered_by_the_reader_while_a_serial_handler_blocks_the_main_thread():
    reg = Registry()
    release = threading.Event()
    started = threading.Event()

    @reg.command
    def slow():
        started.set()
        _wait(release, "release of the serial handler")
        return "slow"

    live = LiveServer(reg)
    live.request(1, "slow")
    _wait(started, "the serial handler started")
    live.request(2, "ping", payload="p")
    # Handed to the main thread, this ping would wait behind `slow` forever.
    assert _result(live.recv(), 2) == {"pong": True, "worker_id": 3, "payload": "p"}
    release.set()
    assert _result(live.recv(), 1) == "slow"
    assert live.close() == EXIT_OK


def test_ping_runs_on_the_reader_thread_and_is_announced_threads():
    reg = Registry()
    live = LiveServer(reg)
    modes = {c["name"]: c["concurrency"] for c in live.handshake["commands"]}
    assert modes["ping"] == "threads"
    ping = reg.get("ping")
    assert ping is not None and ping.inline
    assert not any(command.inline for command in reg if command.name != "ping")
    live.request(1, "ping")
    assert _result(live.recv(), 1)["pong"] is True
    live.close()


# -- concurrency -----------------------------------------------------------------


def test_threads_commands_run_concurrently_on_the_bounded_pool():
    reg = Registry()
    parties = 8
    barrier = threading.Barrier(parties, timeout=WAIT)
    names = set()
    lock = threading.Lock()

    @reg.command(concurrency="threads")
    def meet(n):
        barrier.wait()  # breaks (an error reply) unless all 8 run at once
        with lock:
            names.add(threading.current_thread().name)
        return n

    live = LiveServer(reg, capacity=parties)
    for n in range(parties):
        live.request(n + 1, "meet", n=n)
    replies = [live.recv() for _ in range(parties)]
    assert sorted(_result(r, r["id"]) for r in replies) == list(range(parties))
    assert len(names) == parties and all(name.startswith("pypool-handler") for name in names)
    live.close()


def test_the_thread_pool_is_bounded_by_the_capacity():
    reg = Registry()
    lock = threading.Lock()
    running = [0]
    most = [0]
    release = threading.Event()
    two_running = threading.Event()

    @reg.command(concurrency="threads")
    def work(n):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            if running[0] == 2:
                two_running.set()
        _wait(release, "release")
        with lock:
            running[0] -= 1
        return n

    live = LiveServer(reg, capacity=2)
    for n in range(6):
        live.request(n + 1, "work", n=n)
    _wait(two_running, "two handlers running")
    release.set()
    assert sorted(live.recv()["id"] for _ in range(6)) == list(range(1, 7))
    assert most[0] == 2, "at most `capacity` threads run handlers"
    live.close()


def test_async_commands_run_concurrently_on_one_long_lived_event_loop():
    reg = Registry()
    count = 50
    arrived = []
    loops = set()
    everyone = {}

    @reg.command
    async def gather(n):
        loop = asyncio.get_running_loop()
        loops.add(id(loop))
        event = everyone.setdefault("event", asyncio.Event())
        arrived.append(n)
        if len(arrived) == count:
            event.set()
        await asyncio.wait_for(event.wait(), WAIT)  # times out unless all 50 are in at once
        return n

    live = LiveServer(reg)
    assert {c["name"]: c["concurrency"] for c in live.handshake["commands"]}["gather"] == "async"
    for n in range(count):
        live.request(n + 1, "gather", n=n)
    replies = [live.recv() for _ in range(count)]
    assert sorted(_result(r, r["id"]) for r in replies) == list(range(count))
    assert len(loops) == 1, "one event loop serves every request"
    # Later requests still run on that same loop (not asyncio.run per call).
    arrived.clear()
    everyone["event"] = asyncio.Event()
    count = 1
    live.request(100, "gather", n=100)
    assert _result(live.recv(), 100) == 100
    assert len(loops) == 1
    live.close()


def test_many_concurrent_replies_are_each_one_whole_frame():
    reg = Registry()
    size = 20000

    @reg.command(concurrency="threads")
    def blob_thread(n):
        return {"n": n, "data": "t%d" % n * (size // 4)}

    @reg.command
    async def blob_async(n):
        await asyncio.sleep(0)
        return {"n": n, "data": "a%d" % n * (size // 4)}

    live = LiveServer(reg, capacity=64, chunk=512)
    total = 200
    for n in range(total):
        live.request(n + 1, "blob_thread" if n % 2 else "blob_async", n=n)
    seen = {}
    for _ in range(total):
        frame = live.recv()  # json-decoded whole: an interleaved frame fails here
        assert frame["id"] not in seen, "request %d answered twice" % frame["id"]
        seen[frame["id"]] = frame
    assert sorted(seen) == list(range(1, total + 1))
    for request_id, frame in seen.items():
        n = request_id - 1
        prefix = "t" if n % 2 else "a"
        assert _result(frame, request_id) == {"n": n, "data": "%s%d" % (prefix, n) * (size // 4)}
    live.close()
    assert live.pending_frames() == []


# -- cancel ----------------------------------------------------------------------


def test_cancel_of_a_queued_request_answers_cancelled_without_running_it():
    reg = Registry()
    release = threading.Event()
    started = threading.Event()
    ran = []

    @reg.command
    def slow(n):
        ran.append(n)
        if n == 1:
            started.set()
            _wait(release, "release")
        return n

    live = LiveServer(reg, capacity=4)
    live.request(1, "slow", n=1)
    _wait(started, "request 1 started")
    live.request(2, "slow", n=2)
    live.request(3, "slow", n=3)
    live.cancel(2)
    error = _error(live.recv(), 2)  # at once, while request 1 still runs
    assert error["kind"] == "cancelled"
    assert "before it started" in error["message"]
    release.set()
    assert _result(live.recv(), 1) == 1
    assert _result(live.recv(), 3) == 3
    assert ran == [1, 3], "the cancelled request never ran"
    assert live.close() == EXIT_OK
    assert live.pending_frames() == []


def test_cancel_of_a_running_coroutine_delivers_cancelled_error_and_replies_cancelled():
    reg = Registry()
    started = threading.Event()
    saw_cancel = threading.Event()

    @reg.command
    async def forever():
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            saw_cancel.set()
            raise
        return "never"

    live = LiveServer(reg)
    live.request(1, "forever")
    _wait(started, "the coroutine started")
    live.cancel(1)
    error = _error(live.recv(), 1)
    assert error["kind"] == "cancelled"
    assert "while it ran" in error["message"]
    assert saw_cancel.is_set()
    live.request(2, "ping")
    assert _result(live.recv(), 2)["pong"] is True
    assert live.close() == EXIT_OK
    assert live.pending_frames() == [], "answered exactly once"


def test_a_coroutine_that_finishes_despite_cancel_sends_its_own_result_once():
    reg = Registry()
    started = threading.Event()

    @reg.command
    async def stubborn():
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "kept going"
        return "never"

    live = LiveServer(reg)
    live.request(1, "stubborn")
    _wait(started, "the coroutine started")
    live.cancel(1)
    assert _result(live.recv(), 1) == "kept going"
    assert live.close() == EXIT_OK
    assert live.pending_frames() == []


def test_cancel_of_a_running_plain_function_lets_it_finish_and_reply():
    reg = Registry()
    started = threading.Event()
    release = threading.Event()

    @reg.command(concurrency="threads")
    def busy():
        started.set()
        _wait(release, "release")
        return "finished"

    live = LiveServer(reg)
    live.request(1, "busy")
    _wait(started, "the handler started")
    live.cancel(1)
    live.request(2, "ping")  # the cancel was read before this ping: no reply for it
    assert _result(live.recv(), 2)["pong"] is True
    release.set()
    assert _result(live.recv(), 1) == "finished"
    assert live.close() == EXIT_OK
    assert live.pending_frames() == [], "one reply, not a cancelled one as well"


def test_cancel_of_an_unknown_or_answered_id_is_ignored():
    reg = Registry()
    live = LiveServer(reg)
    live.request(1, "ping")
    assert _result(live.recv(), 1)["pong"] is True
    live.cancel(1)  # answered already
    live.cancel(424242)  # never sent
    live.request(2, "ping", payload="still here")
    assert _result(live.recv(), 2)["payload"] == "still here"
    assert live.close() == EXIT_OK
    assert live.pending_frames() == []


# -- handshake and capacity --------------------------------------------------------


def test_the_handshake_announces_capacity_and_per_command_concurrency():
    reg = Registry()

    @reg.command
    def plain():
        return 1

    @reg.command(concurrency="threads")
    def pooled():
        return 2

    @reg.command
    async def coroutine():
        return 3

    live = LiveServer(reg, capacity=7)
    modes = {c["name"]: c["concurrency"] for c in live.handshake["commands"]}
    assert live.handshake["protocol"] == 3
    assert live.handshake["capacity"] == 7
    assert modes["plain"] == "serial" and modes["pooled"] == "threads" and modes["coroutine"] == "async"
    assert modes["ping"] == builtins.PING_CONCURRENCY
    assert modes["pypool.run_program"] == "threads"
    live.close()


@pytest.mark.parametrize(
    "handlers, expected",
    [
        ({"plain": "serial"}, 1),
        ({"plain": "serial", "pooled": "threads"}, builtins.CONCURRENT_CAPACITY),
        ({"coroutine": "async"}, builtins.CONCURRENT_CAPACITY),
        ({}, builtins.CONCURRENT_CAPACITY),
    ],
    ids=["all_serial", "one_threads", "one_async", "no_handlers"],
)
def test_the_default_capacity(handlers, expected):
    reg = Registry()
    for name, mode in handlers.items():
        if mode == "async":

            async def handler():
                return None

        else:

            def handler():
                return None

        reg.add(name, handler, concurrency=mode)
    builtins.install(reg, WorkerState(worker_id=1))
    assert builtins.default_capacity(reg) == expected


def test_eof_with_requests_in_hand_finishes_and_answers_them_before_exiting():
    reg = Registry()
    release = threading.Event()
    started = threading.Event()

    @reg.command(concurrency="threads")
    def slow():
        started.set()
        _wait(release, "release")
        return "done"

    live = LiveServer(reg)
    live.request(1, "slow")
    _wait(started, "the handler started")
    os.close(live._write_fd)  # EOF while request 1 runs
    assert live.status is None
    release.set()
    assert _result(live.recv(), 1) == "done"
    live._thread.join(WAIT)
    assert live.status == EXIT_OK


# -- programs --------------------------------------------------------------------

PROGRAM_MODULE = "test_concurrency_programs"


@pytest.fixture
def program_module(monkeypatch, tmp_path):
    """A module of program callables the test controls (events, a barrier)."""
    import sys
    import types

    module = types.ModuleType(PROGRAM_MODULE)
    module.barrier = threading.Barrier(4, timeout=WAIT)
    module.started = threading.Event()

    def meet(n):
        module.barrier.wait()
        return {"n": n, "thread": threading.current_thread().name}

    def plain(n):
        return {"n": n, "thread": threading.current_thread().name}

    async def forever():
        module.started.set()
        await asyncio.Event().wait()

    module.meet, module.plain, module.forever = meet, plain, forever
    monkeypatch.setitem(sys.modules, PROGRAM_MODULE, module)
    return module


def _definition(function, concurrency=None):
    spec = {"callable": "%s:%s" % (PROGRAM_MODULE, function)}
    if concurrency is not None:
        spec["concurrency"] = concurrency
    return {"kind": "python", "spec": spec}


def test_a_python_program_declared_threads_runs_concurrently(program_module):
    live = LiveServer(Registry(), capacity=8)
    args = dict(program_id="meet", version="v1", namespace="global")
    for n in range(4):
        live.request(n + 1, "pypool.run_program", definition=_definition("meet", "threads"), inputs={"n": n}, **args)
    replies = [live.recv() for _ in range(4)]
    assert sorted(_result(r, r["id"])["n"] for r in replies) == [0, 1, 2, 3]
    # Cached: later requests without the definition run on the pool too.
    program_module.barrier = threading.Barrier(1)
    live.request(9, "pypool.run_program", inputs={"n": 9}, **args)
    assert _result(live.recv(), 9)["thread"].startswith("pypool-handler")
    live.close()


def test_a_python_program_is_serial_unless_its_spec_says_otherwise(program_module):
    live = LiveServer(Registry(), capacity=8)
    live.request(1, "pypool.run_program", program_id="plain", version="v1", definition=_definition("plain"), inputs={"n": 1})
    assert _result(live.recv(), 1)["thread"] == live._thread.name, "on the main thread"
    live.close()


def test_an_async_python_program_can_be_cancelled(program_module):
    live = LiveServer(Registry(), capacity=8)
    live.request(1, "pypool.run_program", program_id="f", version="v1", definition=_definition("forever", "async"))
    _wait(program_module.started, "the async program started")
    live.cancel(1)
    assert _error(live.recv(), 1)["kind"] == "cancelled"
    live.close()


@pytest.mark.parametrize(
    "function, concurrency, complaint",
    [("plain", "async", "async def"), ("plain", "fibres", "spec.concurrency must be one of")],
)
def test_a_python_program_with_an_impossible_concurrency_is_invalid_arguments(program_module, function, concurrency, complaint):
    live = LiveServer(Registry())
    live.request(1, "pypool.run_program", program_id="x", version="v1", definition=_definition(function, concurrency))
    error = _error(live.recv(), 1)
    assert error["kind"] == "invalid_arguments" and complaint in error["message"], error
    live.close()

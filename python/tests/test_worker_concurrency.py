"""Protocol v2 end-to-end: a real worker process holding several requests,
stopped by SIGTERM, and its capacity option. Each test runs its own worker."""

import os
import signal
import time

import pytest

from harness import FIXTURES_DIR, REPO_FIXTURES_DIR, TIMEOUT

FIFO_HANDLERS = str(FIXTURES_DIR / "handlers_fifo.py")
BASIC = str(REPO_FIXTURES_DIR / "handlers_basic.py")


def _recv_until_draining(worker):
    frames = []
    while True:
        frame = worker.recv()
        if frame["type"] == "draining":
            return frames
        frames.append(frame)


def test_sigterm_with_several_requests_in_hand_finishes_the_running_ones_then_drains(spawn, tmp_path):
    worker = spawn("--worker-id", "8", "--handlers", FIFO_HANDLERS)
    assert worker.handshake["capacity"] == 64
    fifos = {}
    for name in ("t1", "t2", "a3", "s4", "s5"):
        fifos[name] = str(tmp_path / name)
        os.mkfifo(fifos[name])
    ids = {
        "t1": worker.request("fifo_thread", marker="running-t1", release_fifo=fifos["t1"]),
        "t2": worker.request("fifo_thread", marker="running-t2", release_fifo=fifos["t2"]),
        "a3": worker.request("fifo_async", marker="running-a3", release_fifo=fifos["a3"]),
        "s4": worker.request("fifo_serial", marker="running-s4", release_fifo=fifos["s4"]),
        # Queued behind s4 on the main thread: it has not started when the signal comes.
        "s5": worker.request("fifo_serial", marker="running-s5", release_fifo=fifos["s5"]),
    }
    for name in ("t1", "t2", "a3", "s4"):
        worker.stderr.wait_for("running-" + name)
    worker.signal_worker(signal.SIGTERM)
    # A bounded wait for the signal to be recorded: from then on a new
    # request is refused at once (`not_started`); before, it is answered.
    deadline = time.monotonic() + TIMEOUT
    while True:
        assert time.monotonic() < deadline, "the worker never started refusing requests after SIGTERM"
        reply = worker.call("probe")
        if reply["status"] == "error":
            assert reply["error"]["kind"] == "not_started"
            break
        assert reply["result"] == "probe"
    for name in ("t1", "t2", "a3", "s4"):
        with open(fifos[name], "wb") as fifo:
            fifo.write(b"go")
    frames = _recv_until_draining(worker)
    by_id = {frame["id"]: frame for frame in frames}
    assert len(by_id) == len(frames) == 5, "each held request answered exactly once before `draining`: %r" % frames
    for name in ("t1", "t2", "a3", "s4"):
        assert by_id[ids[name]] == {
            "type": "reply", "id": ids[name], "status": "ok", "result": {"released": "running-" + name},
        }
    assert by_id[ids["s5"]]["status"] == "error"
    assert by_id[ids["s5"]]["error"]["kind"] == "not_started", "a queued request never ran: retried elsewhere"
    # After `draining`: later requests are refused; closing stdin ends the worker.
    assert worker.error("probe")["kind"] == "not_started"
    worker.close_stdin()
    assert worker.wait() == 0
    stderr = worker.stderr.wait_closed()
    assert "running-s5" not in stderr
    assert "received SIGTERM during request" in stderr  # which ones depends on who finished first
    assert worker.read_to_eof() == b""


@pytest.mark.parametrize(
    "args, capacity",
    [
        (("--handlers", BASIC), 1),
        (("--handlers", FIFO_HANDLERS), 64),
        ((), 64),
        (("--handlers", BASIC, "--capacity", "3"), 3),
    ],
    ids=["serial_handlers", "concurrent_handlers", "no_handlers", "explicit"],
)
def test_the_handshake_announces_the_capacity(spawn, args, capacity):
    worker = spawn("--worker-id", "9", *args)
    assert worker.handshake["capacity"] == capacity
    modes = {c["name"]: c["concurrency"] for c in worker.handshake["commands"]}
    assert modes["pypool.run_program"] == "threads"
    assert worker.ok("ping")["pong"] is True


def test_a_capacity_below_one_is_a_usage_error(spawn):
    worker = spawn("--worker-id", "9", "--capacity", "0", read_handshake=False)
    frame = worker.recv()
    assert frame["type"] == "startup_error" and frame["kind"] == "bad_arguments"
    assert "--capacity" in frame["message"]
    assert worker.wait() == 2

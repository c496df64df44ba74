"""The fork template (pypool_worker.template): its pure parts, and one
template driven end to end over its control socket."""

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from harness import TIMEOUT
from pypool_worker import template, wire

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _frame(command):
    body = json.dumps(command).encode()
    return struct.pack(">I", len(body)) + body


def test_parse_command_reads_one_framed_command():
    assert template.parse_command(_frame({"type": "fork", "worker_id": 3})) == {"type": "fork", "worker_id": 3}


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        b"\x00\x00",
        struct.pack(">I", 10) + b"{}",
        _frame(["fork"]),
        _frame({"worker_id": 1}),
        _frame({"type": "fork"}),
        _frame({"type": "fork", "worker_id": -1}),
        _frame({"type": "fork", "worker_id": True}),
        _frame({"type": "fork", "worker_id": "1"}),
    ],
)
def test_parse_command_refuses_malformed_packets(packet):
    with pytest.raises(ValueError):
        template.parse_command(packet)


def test_exit_fields_tell_a_code_from_a_signal():
    assert template.exit_fields(os.CLD_EXITED, 3) == {"code": 3}
    assert template.exit_fields(os.CLD_KILLED, 9) == {"signal": 9}
    assert template.exit_fields(os.CLD_DUMPED, 11) == {"signal": 11}


def test_thread_count_sees_a_thread_python_did_not_start_too():
    assert template.thread_count() == 1 or threading.active_count() > 1
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    try:
        assert template.thread_count() >= 2
    finally:
        stop.set()
        helper.join()


def _read_frame(fd):
    def exactly(count):
        data = b""
        while len(data) < count:
            chunk = os.read(fd, count - len(data))
            if not chunk:
                raise EOFError("stream ended after %d bytes" % len(data))
            data += chunk
        return data

    (length,) = struct.unpack(">I", exactly(4))
    return json.loads(exactly(length))


def _fork(host, events, kind, worker_id):
    """Sends ``fork`` or ``prefork`` with fresh pipes (stderr shared with the test)
    and checks ``forked``: ``(pid, the child's stdin writer, its stdout reader)``."""
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    socket.send_fds(host, [_frame({"type": kind, "worker_id": worker_id})], [stdin_r, stdout_w, 2])
    os.close(stdin_r)
    os.close(stdout_w)
    forked = _read_frame(events)
    assert forked == {"type": "forked", "worker_id": worker_id, "pid": forked["pid"]}, forked
    return forked["pid"], stdin_w, stdout_r


@pytest.fixture
def running_template():
    """A template driven over its control socket: ``(host socket, events fd)``.
    Afterwards the host closes its socket and the template must exit 0."""
    host, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR, PYPOOL_HOST_PID=str(os.getpid()))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pypool_worker", "--worker-id", "0", "--template"],
        stdin=child.fileno(),
        stdout=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    child.close()
    try:
        yield host, proc.stdout.fileno()
    finally:
        host.close()  # the template exits when the host closes its socket
        try:
            proc.wait(timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork mode needs Linux")
def test_a_template_forks_workers_that_serve_on_their_own_pipes(running_template):
    host, events = running_template
    ready = _read_frame(events)
    assert ready["type"] == "template_ready" and ready["threads"] == 1, ready
    workers = []
    for worker_id in (7, 8):
        pid, stdin_w, stdout_r = _fork(host, events, "fork", worker_id)
        handshake = _read_frame(stdout_r)
        assert handshake["type"] == "handshake" and handshake["worker_id"] == worker_id, handshake
        workers.append((pid, stdin_w, stdout_r))
    for pid, stdin_w, stdout_r in workers:
        os.write(stdin_w, wire.encode({"type": "request", "id": 1, "command": "ping", "args": {"payload": pid}}))
        reply = _read_frame(stdout_r)
        assert reply["result"]["payload"] == pid, reply
        os.close(stdin_w)  # EOF: the worker exits 0
    exits = [_read_frame(events) for _ in workers]
    assert sorted(event["worker_id"] for event in exits) == [7, 8]
    assert all(event["type"] == "exited" and event.get("code") == 0 for event in exits), exits
    for event in exits:
        socket.send_fds(host, [_frame({"type": "release", "worker_id": event["worker_id"]})], [])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork mode needs Linux")
def test_a_standby_waits_for_its_id_on_stdin_and_exits_quietly_without_one(running_template):
    host, events = running_template
    assert _read_frame(events)["type"] == "template_ready"
    standbys = []
    for name in (1 << 62, (1 << 62) + 1):
        _pid, stdin_w, stdout_r = _fork(host, events, "prefork", name)
        standbys.append((name, stdin_w, stdout_r))
    # Adopted: the id written to its stdin is the one it announces.
    name, stdin_w, stdout_r = standbys[0]
    os.write(stdin_w, struct.pack(">Q", 42))
    handshake = _read_frame(stdout_r)
    assert handshake["type"] == "handshake" and handshake["worker_id"] == 42, handshake
    os.write(stdin_w, wire.encode({"type": "request", "id": 1, "command": "ping", "args": {}}))
    assert _read_frame(stdout_r)["result"]["worker_id"] == 42
    os.close(stdin_w)
    # Discarded: its stdin closes before any id; it exits 0 without a handshake.
    other, other_stdin, other_stdout = standbys[1]
    os.close(other_stdin)
    exits = [_read_frame(events) for _ in standbys]
    assert sorted(event["worker_id"] for event in exits) == [name, other], exits
    assert all(event.get("code") == 0 for event in exits), exits
    with pytest.raises(EOFError):
        _read_frame(other_stdout)
    for event in exits:
        socket.send_fds(host, [_frame({"type": "release", "worker_id": event["worker_id"]})], [])


def _children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as children:
        return [int(child) for child in children.read().split()]


def _waiting_read(pid):
    """The fd ``pid`` waits reading on (``/proc/<pid>/syscall``), or ``None`` while it does anything else."""
    with open("/proc/%d/syscall" % pid) as syscall:
        fields = syscall.read().split()
    return int(fields[1], 16) if fields and fields[0] == "0" else None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork mode needs Linux")
def test_a_standby_is_set_up_before_it_waits_for_its_id(running_template):
    host, events = running_template
    assert _read_frame(events)["type"] == "template_ready"
    guardian_pid, stdin_w, stdout_r = _fork(host, events, "prefork", 1 << 62)
    deadline = time.monotonic() + TIMEOUT
    while True:
        workers = _children(guardian_pid)
        waiting_on = _waiting_read(workers[0]) if workers else None
        if waiting_on is not None or time.monotonic() > deadline:
            break
        os.sched_yield()
    # It waits for its id on its private frame descriptor: it has already taken
    # its frame streams (fd 0 reads /dev/null), so adoption only sends the handshake.
    assert waiting_on is not None and waiting_on != 0, waiting_on
    assert os.readlink("/proc/%d/fd/0" % workers[0]) == os.devnull
    os.write(stdin_w, struct.pack(">Q", 5))
    handshake = _read_frame(stdout_r)
    assert handshake["type"] == "handshake" and handshake["worker_id"] == 5, handshake
    os.close(stdin_w)
    exited = _read_frame(events)
    assert exited["type"] == "exited" and exited.get("code") == 0, exited
    socket.send_fds(host, [_frame({"type": "release", "worker_id": exited["worker_id"]})], [])


def test_read_adopted_id_reads_eight_big_endian_bytes_or_none_at_the_end():
    read_end, write_end = os.pipe()
    os.write(write_end, struct.pack(">Q", 7)[:3])
    os.write(write_end, struct.pack(">Q", 7)[3:])
    assert template.read_adopted_id(read_end) == 7
    os.write(write_end, b"\x00\x01")
    os.close(write_end)
    assert template.read_adopted_id(read_end) is None
    os.close(read_end)

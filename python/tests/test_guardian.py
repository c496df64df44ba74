"""The guardian (pypool_worker.guardian): the process started is a tiny parent
that owns the worker's whole tree and exits the way the worker did."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from harness import REPO_FIXTURES_DIR, TIMEOUT, Worker
from pypool_worker.guardian import descendants, is_ancestor, parent_of

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the guardian needs Linux")


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_gone(pid, bound=TIMEOUT):
    """Polls /proc until ``pid`` is gone; whether it went within ``bound``."""
    deadline = time.monotonic() + bound
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)  # allowed: poll interval of a bounded wait
    return True


def test_proc_helpers_see_children_and_ancestry():
    child = subprocess.Popen(["sleep", "60"])
    try:
        assert parent_of(child.pid) == os.getpid()
        assert child.pid in descendants(os.getpid())
        assert is_ancestor(os.getpid(), child.pid)
        assert not is_ancestor(child.pid, os.getpid())
        assert parent_of(0) is None
    finally:
        child.kill()
        child.wait()


def test_the_worker_is_the_guardians_only_child(spawn):
    worker = spawn("--worker-id", "1")
    served_by = worker.handshake["pid"]
    assert served_by != worker.proc.pid
    assert parent_of(served_by) == worker.proc.pid
    assert descendants(worker.proc.pid) == [served_by]


def test_a_clean_exit_is_mirrored(spawn):
    worker = spawn("--worker-id", "1")
    worker.close_stdin()
    assert worker.wait() == 0


def test_a_worker_killed_by_a_signal_is_mirrored(spawn):
    worker = spawn("--worker-id", "1")
    os.kill(worker.handshake["pid"], signal.SIGKILL)
    assert worker.wait() == -signal.SIGKILL


def test_sigterm_to_the_guardian_stops_the_worker_gracefully(spawn):
    worker = spawn("--worker-id", "1")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    worker.stderr.wait_for("SIGTERM")


def test_grandchildren_die_with_the_worker(spawn):
    worker = spawn("--worker-id", "1", "--handlers", str(REPO_FIXTURES_DIR / "grandchild.py"))
    grandchild = worker.ok("start_grandchild")["pid"]
    assert _alive(grandchild)
    worker.close_stdin()
    assert worker.wait() == 0
    assert _wait_gone(grandchild), "the grandchild outlived its worker"


def test_a_host_that_is_not_an_ancestor_means_no_worker(spawn):
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        worker = spawn("--worker-id", "1", read_handshake=False, env={"PYPOOL_HOST_PID": str(stranger.pid)})
        assert worker.read_to_eof() == b"", "no handshake: the host named is gone"
        assert worker.wait() == 0
    finally:
        stranger.kill()
        stranger.wait()


def test_the_spawning_thread_exiting_is_not_the_host_dying(spawn):
    # The parent-death signal fires when the *thread* that forked exits; the
    # guardian checks that the host really went before acting.
    started = []
    thread = threading.Thread(target=lambda: started.append(spawn("--worker-id", "1")))
    thread.start()
    thread.join()
    worker = started[0]
    assert worker.ok("ping")["pong"] is True
    worker.close_stdin()
    assert worker.wait() == 0, "the worker was not killed when the spawning thread ended"

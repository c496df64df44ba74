"""Shared fixtures: the package on sys.path, and a long-lived worker for tests that do not kill it."""

import sys

import pytest

from harness import FIXTURES_DIR, PYTHON_DIR, FakeOpenAI, Worker

if str(PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(PYTHON_DIR))


@pytest.fixture(scope="session")
def shared_worker():
    """A worker serving the e2e fixtures (one by path, one by module name); tests must not kill it."""
    worker = Worker(
        "--worker-id", "7",
        "--log-level", "debug",
        "--handlers", str(FIXTURES_DIR / "handlers_e2e.py"), "handlers_modname",
        extra_pythonpath=[str(FIXTURES_DIR)],
    )
    yield worker
    worker.close_stdin()
    assert worker.wait() == 0, worker.stderr.text()
    worker.stop()


@pytest.fixture
def spawn():
    """Starts workers for a test and cleans them up afterwards."""
    workers = []

    def start(*args, **kwargs):
        worker = Worker(*args, **kwargs)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture(scope="module")
def fake_openai():
    """tests/fixtures/fake_openai.py, shared by a test module; stopped (stdin closed) afterwards."""
    server = FakeOpenAI()
    yield server
    assert server.stop() == 0, server.stderr.text()

"""Measurements behind two choices of the worker runtime (not a test).

Run: ``.venv/bin/python python/tests/measure_concurrency.py [--calls N]``

1. DSPy programs: ``threads`` (``module(**inputs)`` on the thread pool) vs
   ``async`` (``await module.acall(**inputs)`` on the event loop), one worker,
   64 requests in flight, against a loopback OpenAI-compatible server that
   answers after 100 ms (``--latency-ms``).
2. A trivial command as ``serial`` vs ``threads`` vs ``async`` (what ``ping``
   could be declared), one worker, 64 in flight.

Each figure is requests per second through a real worker process, driven
by this script over the worker's pipes; compare them within one run.
"""

import argparse
import subprocess
import sys
import time

from harness import REPO_FIXTURES_DIR, Worker

LATENCY_SERVER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import fake_openai
latency = float(sys.argv[2]) / 1000.0
original = fake_openai.make_handler
def make_handler(stats, verbose):
    handler = original(stats, verbose)
    class Slow(handler):
        def do_POST(self):
            time.sleep(latency)  # the simulated network and model time
            handler.do_POST(self)
    return Slow
fake_openai.make_handler = make_handler
fake_openai.ThreadingHTTPServer.request_queue_size = 1024  # 64+ clients connect at once
sys.exit(fake_openai.main(["--port", "0"]))
"""


def pipelined(worker, calls, window, make_args, command):
    """Sends ``calls`` requests keeping ``window`` in flight; returns requests/s."""
    sent = 0
    answered = 0
    started = time.perf_counter()
    while sent < min(window, calls):
        worker.request(command, **make_args(sent))
        sent += 1
    while answered < calls:
        reply = worker.recv()
        assert reply["type"] == "reply" and reply["status"] == "ok", reply
        answered += 1
        if sent < calls:
            worker.request(command, **make_args(sent))
            sent += 1
    return calls / (time.perf_counter() - started)


def measure_dspy(calls, window, latency_ms):
    server = subprocess.Popen(
        [sys.executable, "-c", LATENCY_SERVER, str(REPO_FIXTURES_DIR), str(latency_ms)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
    )
    line = server.stdout.readline().decode().split()
    assert line and line[0] == "READY", line
    api_base = "http://127.0.0.1:%s/v1" % line[1]
    definition = {
        "kind": "dspy",
        "spec": {"module": "Predict", "signature": "question: str -> answer: str", "instructions": "Answer briefly."},
    }
    figures = {}
    try:
        for mode in ("threads", "async"):
            worker = Worker(
                "--worker-id", "1", "--log-level", "warning", "--preload", "dspy", "--capacity", str(window),
                env={"PYPOOL_DSPY_CONCURRENCY": mode, "PYPOOL_BENCH_KEY": "sk-test"},
            )
            try:
                worker.ok("pypool.apply_settings", version=1, settings={"lm": {
                    "model": "openai/fake-model", "api_base": api_base, "api_key_env": "PYPOOL_BENCH_KEY",
                }})
                args = dict(program_id="p", version="v1", namespace="global")
                worker.ok("pypool.run_program", definition=definition, inputs={"question": "warm-up"}, **args)
                pipelined(worker, window, window, lambda n: dict(inputs={"question": "w%d" % n}, **args), "pypool.run_program")
                figures[mode] = pipelined(
                    worker, calls, window, lambda n: dict(inputs={"question": "q%d" % n}, **args), "pypool.run_program"
                )
            finally:
                worker.stop()
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    return figures


def measure_trivial(calls, window):
    worker = Worker("--worker-id", "2", "--log-level", "warning", "--handlers", str(REPO_FIXTURES_DIR / "handlers_bench.py"),
                    "--capacity", str(window))
    figures = {}
    try:
        for command in ("echo_serial", "echo_threads", "echo_async", "ping"):
            pipelined(worker, 2000, window, lambda n: {"payload": n}, command)  # warm-up
            figures[command] = pipelined(worker, calls, window, lambda n: {"payload": n}, command)
    finally:
        worker.stop()
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1024, help="DSPy calls per mode (default 1024)")
    parser.add_argument("--trivial-calls", type=int, default=20000, help="trivial requests per mode (default 20000)")
    parser.add_argument("--window", type=int, default=64, help="requests in flight (and --capacity; default 64)")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="the fake LM's latency (default 100)")
    parser.add_argument("--skip-dspy", action="store_true", help="measure the trivial commands only")
    args = parser.parse_args()
    if not args.skip_dspy:
        dspy = measure_dspy(args.calls, args.window, args.latency_ms)
        print("DSPy Predict, 1 worker, %d in flight, LM latency %.0f ms:" % (args.window, args.latency_ms))
        for mode, rate in dspy.items():
            print("  %-8s %8.1f calls/s" % (mode, rate))
        print("  async/threads = %.2f" % (dspy["async"] / dspy["threads"]))
    trivial = measure_trivial(args.trivial_calls, args.window)
    print("trivial command, 1 worker, %d in flight:" % args.window)
    for command, rate in trivial.items():
        print("  %-13s %9.0f req/s  (%.2f x echo_serial)" % (command, rate, rate / trivial["echo_serial"]))


if __name__ == "__main__":
    main()

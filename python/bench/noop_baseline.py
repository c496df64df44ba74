"""The no-op baselines: Python's own process pools running an empty function.

``cargo xtask bench`` runs it next to pypool's built-in ``ping`` with the same
worker count and the same number of requests outstanding::

    python python/bench/noop_baseline.py --mode mp_pool --workers 2 --outstanding 256 --seconds 5

``--mode mp_pool``: ``multiprocessing.Pool(workers).apply_async``;
``--mode ppe``: ``concurrent.futures.ProcessPoolExecutor(workers).submit``.
Requests are submitted while fewer than ``--outstanding`` are unanswered,
until ``--seconds`` have passed; the run ends when every answer is in. The
pool is started and warmed (one round trip per worker) before timing.
Prints one JSON line: ``{"mode", "workers", "outstanding", "requests",
"seconds", "requests_per_second"}``. Standard library only.
"""

import argparse
import concurrent.futures
import json
import multiprocessing
import sys
import threading
import time
from typing import Any, Dict


def noop(payload: Any) -> Any:
    """The work: none. Returns its argument, as pypool's ``ping`` echoes its payload."""
    return payload


def drive(submit: Any, outstanding: int, seconds: float) -> Dict[str, Any]:
    """Submits through ``submit(payload, on_done)`` keeping ``outstanding`` in flight."""
    slots = threading.BoundedSemaphore(outstanding)
    lock = threading.Lock()
    answered = [0]

    def on_done(_result: Any) -> None:
        with lock:
            answered[0] += 1
        slots.release()

    started = time.perf_counter()
    deadline = started + seconds
    sent = 0
    while time.perf_counter() < deadline:
        slots.acquire()
        submit({"payload": sent}, on_done)
        sent += 1
    for _ in range(outstanding):
        slots.acquire()
    elapsed = time.perf_counter() - started
    return {"requests": answered[0], "sent": sent, "seconds": elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("mp_pool", "ppe"), required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--outstanding", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    if args.mode == "mp_pool":
        with multiprocessing.Pool(args.workers) as pool:
            for result in [pool.apply_async(noop, (n,)) for n in range(args.workers * 4)]:
                result.get()

            def submit_mp(payload: Any, on_done: Any) -> None:
                pool.apply_async(noop, (payload,), callback=on_done, error_callback=on_done)

            result = drive(submit_mp, args.outstanding, args.seconds)
    else:
        with concurrent.futures.ProcessPoolExecutor(args.workers) as executor:
            for future in [executor.submit(noop, n) for n in range(args.workers * 4)]:
                future.result()

            def submit_ppe(payload: Any, on_done: Any) -> None:
                executor.submit(noop, payload).add_done_callback(on_done)

            result = drive(submit_ppe, args.outstanding, args.seconds)
    result.update(
        mode=args.mode,
        workers=args.workers,
        outstanding=args.outstanding,
        requests_per_second=result["requests"] / result["seconds"] if result["seconds"] > 0 else 0.0,
    )
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

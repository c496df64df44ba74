"""The LM-bound baseline: one plain Python process calling a DSPy ``Predict``.

``cargo xtask bench`` runs it next to pypool against the same loopback fake LM
(``fake_lm.py``) and the same program (``dspy.Predict("question: str -> answer:
str")``), at the same concurrency::

    python python/bench/lm_baseline.py --api-base http://127.0.0.1:PORT/v1 \\
        --mode threads --concurrency 256 --seconds 10

``--mode threads``: ``--concurrency`` threads each calling the program in a
loop. ``--mode asyncio``: ``--concurrency`` tasks on one event loop each
awaiting ``program.acall`` in a loop. Each caller starts calls until
``--seconds`` have passed; the run ends when the last call has returned.
Prints one JSON line: ``{"mode", "concurrency", "calls", "errors", "seconds",
"calls_per_second"}``. Needs DSPy; otherwise the standard library only.
"""

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from typing import Any, Dict, List

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy  # noqa: E402 - after the environment default above

SIGNATURE = "question: str -> answer: str"


def make_program(api_base: str) -> Any:
    lm = dspy.LM("openai/fake-model", api_base=api_base, api_key="sk-bench", cache=False, num_retries=0)
    dspy.configure(lm=lm)
    return dspy.Predict(SIGNATURE)


def run_threads(program: Any, concurrency: int, seconds: float) -> Dict[str, Any]:
    deadline = time.perf_counter() + seconds
    counts: List[int] = [0] * concurrency
    errors: List[int] = [0] * concurrency
    first_error: List[str] = []

    def caller(index: int) -> None:
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            try:
                program(question="q%d-%d" % (index, n))
                counts[index] += 1
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors[index] += 1
                if not first_error:
                    first_error.append(repr(exc))

    started = time.perf_counter()
    threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"calls": sum(counts), "errors": sum(errors), "seconds": elapsed, "first_error": first_error[:1]}


async def run_asyncio(program: Any, concurrency: int, seconds: float) -> Dict[str, Any]:
    deadline = time.perf_counter() + seconds
    totals = {"calls": 0, "errors": 0}
    first_error: List[str] = []

    async def caller(index: int) -> None:
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            try:
                await program.acall(question="q%d-%d" % (index, n))
                totals["calls"] += 1
            except Exception as exc:  # noqa: BLE001 - counted and reported
                totals["errors"] += 1
                if not first_error:
                    first_error.append(repr(exc))

    started = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"calls": totals["calls"], "errors": totals["errors"], "seconds": elapsed, "first_error": first_error[:1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--mode", choices=("threads", "asyncio"), required=True)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    program = make_program(args.api_base)
    program(question="warm-up")  # imports, client set-up, first connection
    if args.mode == "threads":
        result = run_threads(program, args.concurrency, args.seconds)
    else:
        result = asyncio.run(run_asyncio(program, args.concurrency, args.seconds))
    result.update(
        mode=args.mode,
        concurrency=args.concurrency,
        calls_per_second=result["calls"] / result["seconds"] if result["seconds"] > 0 else 0.0,
    )
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

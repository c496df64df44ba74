"""The start-up baselines: Python processes started one after another, and
``multiprocessing``'s forkserver with the same preload.

``cargo xtask bench`` runs it next to pypool starting the same number of
workers with the same preload::

    python python/bench/startup_baseline.py --mode sequential --workers 8 --preload dspy
    python python/bench/startup_baseline.py --mode forkserver --workers 8 --preload dspy --pss

``--mode sequential``: starts ``--workers`` interpreters one after another,
each importing the ``--import`` modules (``cargo xtask bench`` names
``pypool_worker.server``, what every pypool worker imports) and ``--preload``
(if any) and saying ``ready`` on its stdout before the next one starts: what a
pool pays when it starts its workers in sequence. ``--mode forkserver``: ``multiprocessing.get_context("forkserver")``
with ``set_forkserver_preload`` of the same modules; ``--workers`` processes
started at once, each telling the parent it is ready over a pipe. Timed
twice: from nothing (the forkserver starts and imports the preload), then
again with the forkserver already running (``warm_seconds``).

Every process stays alive until all are ready (their memory is real). With
``--pss``, the proportional set size of the children (and of the forkserver,
which they share pages with) is summed from ``/proc/<pid>/smaps_rollup``
before they are stopped.

Prints one JSON line: ``{"mode", "workers", "preload", "seconds",
"warm_seconds" (forkserver only), "pss_bytes" (with --pss)}``. Standard
library only (the preloaded module aside).
"""

import argparse
import json
import multiprocessing
import os

# As in pypool's workers: LiteLLM reads its bundled cost map instead of
# fetching one over the network when it is imported (``--import litellm``).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

CHILD = (
    "import sys\n"
    "{imports}"
    "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
    "sys.stdin.read()\n"
)


def pss_bytes(pids: List[int]) -> Optional[int]:
    """The summed ``Pss`` of ``pids`` and all their descendants (each counted once)."""
    seen = set()
    total = 0
    stack = list(pids)
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open("/proc/%d/smaps_rollup" % pid) as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            return None
        try:
            for task in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/children" % (pid, task)) as children:
                    stack.extend(int(child) for child in children.read().split())
        except OSError:
            pass
    return total


def sequential(workers: int, modules: List[str], pss: bool) -> Dict[str, Any]:
    imports = "".join("import %s\n" % module for module in modules)
    code = CHILD.format(imports=imports)
    children = []
    started = time.perf_counter()
    try:
        for _ in range(workers):
            child = subprocess.Popen(
                [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            children.append(child)
            assert child.stdout is not None
            line = child.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError("a child did not start (it said %r)" % line)
        elapsed = time.perf_counter() - started
        result: Dict[str, Any] = {"seconds": elapsed}
        if pss:
            result["pss_bytes"] = pss_bytes([child.pid for child in children])
        return result
    finally:
        for child in children:
            assert child.stdin is not None
            child.stdin.close()
        for child in children:
            child.wait()


def forkserver_child(modules: List[str], ready: Any, stop: Any) -> None:
    """A forkserver worker: imports the modules (already in the template), says ready, waits."""
    for module in modules:
        __import__(module)
    ready.send(os.getpid())
    stop.recv()


def start_forked(context: Any, workers: int, modules: List[str]) -> "tuple[float, list, list]":
    processes = []
    stops = []
    readies = []
    started = time.perf_counter()
    for _ in range(workers):
        ready_read, ready_write = context.Pipe(duplex=False)
        stop_read, stop_write = context.Pipe(duplex=False)
        process = context.Process(target=forkserver_child, args=(modules, ready_write, stop_read), daemon=True)
        process.start()
        processes.append(process)
        stops.append(stop_write)
        readies.append(ready_read)
    for ready in readies:
        ready.recv()
    return time.perf_counter() - started, processes, stops


def stop_forked(processes: list, stops: list) -> None:
    for stop in stops:
        stop.send(None)
    for process in processes:
        process.join()


def forkserver(workers: int, modules: List[str], pss: bool) -> Dict[str, Any]:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__"] + modules)
    seconds, processes, stops = start_forked(context, workers, modules)
    result: Dict[str, Any] = {"seconds": seconds}
    if pss:
        from multiprocessing import forkserver as server_module

        server_pid = getattr(server_module._forkserver, "_forkserver_pid", None)
        pids = [process.pid for process in processes] + ([server_pid] if server_pid else [])
        result["pss_bytes"] = pss_bytes(pids)
    stop_forked(processes, stops)
    warm, processes, stops = start_forked(context, workers, modules)
    stop_forked(processes, stops)
    result["warm_seconds"] = warm
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("sequential", "forkserver"), required=True)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--preload", default=None, help="the module preloaded, e.g. dspy")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE")
    parser.add_argument("--path", action="append", default=[], metavar="DIR", help="prepended to sys.path")
    parser.add_argument("--pss", action="store_true")
    args = parser.parse_args()
    if args.path:
        sys.path[:0] = args.path
        os.environ["PYTHONPATH"] = os.pathsep.join(args.path + [os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    modules = args.imports + ([args.preload] if args.preload else [])
    if args.mode == "sequential":
        result = sequential(args.workers, modules, args.pss)
    else:
        result = forkserver(args.workers, modules, args.pss)
    result.update(mode=args.mode, workers=args.workers, preload=args.preload, imports=args.imports)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The commands every worker serves.

* ``ping(payload=None)`` and ``info()``: health and identity.
* ``pypool.run_program(program_id, version, inputs=None, definition=None, namespace="global")``:
  runs a cached (or freshly defined) program, see :mod:`.programs`.
* ``pypool.apply_settings(version, settings)``: replaces the worker's
  settings, see :mod:`.settings_command`.
"""

from typing import Any, Dict, Optional

from . import programs, settings_store
from .log import logger
from .programs import ProgramCache, ProgramRunner
from .registry import SERIAL, THREADS, Registry
from .settings_command import make_apply_settings
from .state import WorkerState, rss_bytes

#: The ``pypool.run_program`` command's name.
RUN_PROGRAM = "pypool.run_program"
#: The ``pypool.apply_settings`` command's name.
APPLY_SETTINGS = "pypool.apply_settings"

#: Names of the built-in commands; handler modules cannot reuse them.
BUILTIN_NAMES = ("ping", "info", RUN_PROGRAM, APPLY_SETTINGS)

#: The capacity of a worker that runs requests concurrently (``--capacity``'s
#: default unless every handler is serial): enough for an LM-bound worker to
#: keep dozens of calls waiting on the network at once, bounded so one worker
#: never holds (and, if it crashes, loses) an unbounded share of the load.
CONCURRENT_CAPACITY = 64


def default_capacity(registry: Registry) -> int:
    """How many requests a worker holds at once unless ``--capacity`` says otherwise.

    1 when the handler modules registered commands and every one of them is
    ``serial``: such a worker runs one request at a time anyway, and a request
    queued inside it would be lost with it if a handler crashed the process,
    where a request queued in the host goes to the replacement worker.
    Otherwise (a ``threads`` or ``async`` handler, or no handler modules: a
    worker for ``ping`` and programs, DSPy's run concurrently)
    :data:`CONCURRENT_CAPACITY`.
    """
    handlers = [command for command in registry if command.name not in BUILTIN_NAMES]
    if handlers and all(command.concurrency == SERIAL for command in handlers):
        return 1
    return CONCURRENT_CAPACITY


#: How ``ping`` is announced: it may run concurrently with any other request,
#: because the worker's request reader answers it as it arrives (it runs no
#: user code and never blocks; see docs/PROTOCOL.md for the measurement).
PING_CONCURRENCY = THREADS


def install(
    registry: Registry,
    state: WorkerState,
    runner: Optional[ProgramRunner] = None,
    settings: Optional[settings_store.SettingsStore] = None,
) -> ProgramRunner:
    """Registers the built-ins in ``registry`` (before any handler module is imported).

    ``settings`` defaults to the process-wide store that
    :func:`pypool_worker.settings` reads; ``runner`` to one with a cache of
    the default size over those settings. Returns the runner.
    """
    store = settings if settings is not None else settings_store.store
    program_runner = runner if runner is not None else ProgramRunner(ProgramCache(), store)

    def ping(payload: Any = None) -> Dict[str, Any]:
        """Health check: answers at once, echoing ``payload``."""
        return {"pong": True, "worker_id": state.worker_id, "payload": payload}

    def info() -> Dict[str, Any]:
        """Describes the worker: identity, commands, load, memory, programs and settings."""
        return {
            "worker_id": state.worker_id,
            "pid": state.pid,
            "python_version": state.python_version,
            "commands": registry.describe(),
            "requests_served": state.requests_served,
            "uptime_s": state.uptime_s(),
            "rss_bytes": rss_bytes(),
            "programs_cached": len(program_runner.cache),
            "program_cache_capacity": program_runner.cache.capacity,
            "settings_version": store.version,
            "dspy_loaded": programs.dspy_loaded(),
        }

    registry.add("ping", ping, idempotent=True, quiet=True, concurrency=PING_CONCURRENCY)
    ping_command = registry.get("ping")
    assert ping_command is not None
    ping_command.inline = True
    registry.add("info", info, idempotent=True, quiet=True, concurrency=SERIAL)
    # Announced as `threads`; each request runs as its program says (a
    # `python` program is serial unless its spec says otherwise).
    registry.add(
        RUN_PROGRAM,
        program_runner.run_program,
        idempotent=False,
        concurrency=THREADS,
        router=program_runner.concurrency_for,
    )
    registry.add(APPLY_SETTINGS, make_apply_settings(store, logger), idempotent=True, concurrency=THREADS)
    return program_runner

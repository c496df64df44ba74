"""The commands every worker serves: ``ping`` and ``info``."""

from typing import Any, Dict

from .registry import Registry
from .state import WorkerState, rss_bytes

#: Names of the built-in commands; handler modules cannot reuse them.
BUILTIN_NAMES = ("ping", "info")


def install(registry: Registry, state: WorkerState) -> None:
    """Registers the built-ins in ``registry`` (before any handler module is imported)."""

    def ping(payload: Any = None) -> Dict[str, Any]:
        """Health check: answers at once, echoing ``payload``."""
        return {"pong": True, "worker_id": state.worker_id, "payload": payload}

    def info() -> Dict[str, Any]:
        """Describes the worker: identity, commands, load and memory."""
        return {
            "worker_id": state.worker_id,
            "pid": state.pid,
            "python_version": state.python_version,
            "commands": registry.describe(),
            "requests_served": state.requests_served,
            "uptime_s": state.uptime_s(),
            "rss_bytes": rss_bytes(),
        }

    registry.add("ping", ping, idempotent=True, quiet=True)
    registry.add("info", info, idempotent=True, quiet=True)

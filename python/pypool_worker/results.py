"""What a handler may return besides a plain value.

:class:`WithUsage` carries what a request consumed beside its result: the
worker replies with ``result`` as usual and adds ``usage`` next to it in the
reply (docs/PROTOCOL.md), so hosts that do not know the field see the same
reply as before. Standard library only.
"""

from typing import Any, Dict


class WithUsage:
    """A handler's result together with its usage (e.g. a DSPy run's LM usage)."""

    __slots__ = ("result", "usage")

    def __init__(self, result: Any, usage: Dict[str, Any]) -> None:
        #: What the reply's ``result`` holds.
        self.result = result
        #: What the reply's ``usage`` holds (a JSON object).
        self.usage = usage

    def __repr__(self) -> str:
        return "WithUsage(%r, usage=%r)" % (self.result, self.usage)


def ok_reply(request_id: int, result: Any) -> Dict[str, Any]:
    """The ``ok`` reply for ``result``, with ``usage`` beside it when ``result`` is a :class:`WithUsage`."""
    if isinstance(result, WithUsage):
        return {"type": "reply", "id": request_id, "status": "ok", "result": result.result, "usage": result.usage}
    return {"type": "reply", "id": request_id, "status": "ok", "result": result}

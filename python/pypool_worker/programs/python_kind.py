"""Programs of kind ``python``: a plain function named ``"package.module:function"``.

Definition: ``{"kind": "python", "spec": {"callable": "package.module:function",
"concurrency": "serial"}}``. ``concurrency`` (optional) says how the worker
runs the program's requests, as for a handler: ``serial`` (the default: one at
a time, in arrival order, on the main thread), ``threads`` (a thread-safe
function, on the bounded thread pool) or ``async`` (an ``async def``, on the
worker's event loop).
The module is imported normally (handler folders are already on ``sys.path``)
and the attribute after the colon is looked up (dots allowed:
``module:Class.method``). The program's inputs are its keyword arguments,
checked against the function's signature before the call. Standard library
only.

A definition is code: ``os:system`` is a callable too. When the host sets
``PYPOOL_ALLOWED_PROGRAM_MODULES`` (comma-separated module prefixes, from
``PoolBuilder::allowed_program_modules``), a callable outside those modules is
refused before its module is imported.
"""

import importlib
import os
import inspect
import traceback
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from ..errors import invalid_arguments
from ..registry import CONCURRENCY_MODES, SERIAL, check_concurrency
from . import validate

_SPEC_REQUIRED = ("callable",)
_SPEC_OPTIONAL = ("concurrency",)

#: The environment variable naming the modules programs may use.
ALLOWED_MODULES_VAR = "PYPOOL_ALLOWED_PROGRAM_MODULES"


def allowed_prefixes() -> Optional[Tuple[str, ...]]:
    """The module prefixes programs may name, or ``None`` for any module."""
    raw = os.environ.get(ALLOWED_MODULES_VAR)
    if raw is None:
        return None
    return tuple(part.strip().rstrip(".") for part in raw.split(",") if part.strip())


def module_allowed(module_name: str, prefixes: Optional[Tuple[str, ...]]) -> bool:
    """Whether ``module_name`` equals or lies inside one of ``prefixes`` (``None``: any)."""
    if prefixes is None:
        return True
    return any(module_name == prefix or module_name.startswith(prefix + ".") for prefix in prefixes)


class PythonProgram:
    """A built ``python`` program: the function and its signature."""

    kind = "python"

    def __init__(
        self,
        where: str,
        path: str,
        function: Callable[..., Any],
        signature: Optional[inspect.Signature],
        concurrency: str = SERIAL,
    ) -> None:
        #: How messages name the program.
        self.where = where
        #: The ``module:attribute`` path it was built from.
        self.path = path
        self._function = function
        self._signature = signature
        #: How the worker runs its requests (``spec.concurrency``).
        self.concurrency = concurrency

    def run(self, inputs: Dict[str, Any], settings: Mapping[str, Any]) -> Any:
        """Calls the function with ``inputs`` as keyword arguments (``settings`` are not used).

        An ``async def`` function's coroutine is returned as is: the worker
        runtime awaits it on its event loop."""
        if self._signature is not None:
            validate.check_python_inputs(self._signature, inputs, self.where)
        return self._function(**inputs)

    def describe(self) -> str:
        """A one-line description for logs."""
        return "python %s (%s)" % (self.path, self.concurrency)


def check_allowed(module_name: str, where: str) -> None:
    """Raises ``invalid_arguments`` unless the pool's allow-list admits ``module_name``."""
    prefixes = allowed_prefixes()
    if not module_allowed(module_name, prefixes):
        raise invalid_arguments(
            "%s: module %r is not allowed for programs on this pool (allowed module prefixes: %s)"
            % (where, module_name, ", ".join(prefixes or ()) or "none")
        )


def import_named(module_name: str, attribute: str, path: str, field: str, where: str) -> Any:
    """Imports ``module_name`` and walks the dotted ``attribute`` in it (``path`` as
    written in the spec's ``field``); raises ``invalid_arguments`` with the
    traceback when the import fails, or naming the missing attribute."""
    try:
        target: Any = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:
        raise invalid_arguments(
            "%s: cannot import module %r named by %s: %s: %s" % (where, module_name, field, type(exc).__name__, exc),
            traceback.format_exc(),
        ) from exc
    for name in attribute.split("."):
        if not hasattr(target, name):
            raise invalid_arguments("%s: %r has no attribute %r (%s %r)" % (where, target, name, field, path))
        target = getattr(target, name)
    return target


def build(spec: Dict[str, Any], where: str) -> PythonProgram:
    """Imports the function a spec names; raises ``invalid_arguments`` when it cannot."""
    validate.check_spec_keys(spec, _SPEC_REQUIRED, _SPEC_OPTIONAL, where)
    concurrency = spec.get("concurrency", SERIAL)
    if concurrency not in CONCURRENCY_MODES:
        raise invalid_arguments(
            "%s: spec.concurrency must be one of %s, got %r" % (where, ", ".join(CONCURRENCY_MODES), concurrency)
        )
    path = spec["callable"]
    if not isinstance(path, str) or path.count(":") != 1:
        raise invalid_arguments(
            "%s: spec.callable must be a string 'package.module:function', got %r" % (where, path)
        )
    module_name, attribute = (part.strip() for part in path.split(":"))
    if not module_name or not attribute:
        raise invalid_arguments("%s: spec.callable must be 'package.module:function', got %r" % (where, path))
    check_allowed(module_name, where)
    target = import_named(module_name, attribute, path, "spec.callable", where)
    if not callable(target):
        raise invalid_arguments("%s: spec.callable %r names a %s, not a function" % (where, path, type(target).__name__))
    try:
        signature: Optional[inspect.Signature] = inspect.signature(target)
    except (TypeError, ValueError):
        signature = None  # some C callables have no introspectable signature; they check their own arguments
    if signature is not None:
        positional = [
            p.name for p in signature.parameters.values() if p.kind == p.POSITIONAL_ONLY and p.default is p.empty
        ]
        if positional:
            raise invalid_arguments(
                "%s: %s takes positional-only parameter(s) %s, which keyword inputs cannot fill"
                % (where, path, ", ".join(positional))
            )
    try:
        check_concurrency(path, target, concurrency)
    except ValueError as exc:
        raise invalid_arguments("%s: spec.concurrency: %s" % (where, exc)) from exc
    return PythonProgram(where, path, target, signature, concurrency)


def concurrency_of(definition: Any) -> Optional[str]:
    """The concurrency a ``python`` definition declares (``serial`` when absent), or ``None``
    when it is malformed (building it reports why)."""
    spec = definition.get("spec") if isinstance(definition, dict) else None
    if not isinstance(spec, dict):
        return None
    concurrency = spec.get("concurrency", SERIAL)
    return concurrency if concurrency in CONCURRENCY_MODES else None

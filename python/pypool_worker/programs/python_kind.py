"""Programs of kind ``python``: a plain function named ``"package.module:function"``.

Definition: ``{"kind": "python", "spec": {"callable": "package.module:function"}}``.
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

import asyncio
import importlib
import os
import inspect
import traceback
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from ..errors import invalid_arguments
from . import validate

_SPEC_REQUIRED = ("callable",)

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

    def __init__(self, where: str, path: str, function: Callable[..., Any], signature: Optional[inspect.Signature]) -> None:
        #: How messages name the program.
        self.where = where
        #: The ``module:attribute`` path it was built from.
        self.path = path
        self._function = function
        self._signature = signature

    def run(self, inputs: Dict[str, Any], settings: Mapping[str, Any]) -> Any:
        """Calls the function with ``inputs`` as keyword arguments (``settings`` are not used)."""
        if self._signature is not None:
            validate.check_python_inputs(self._signature, inputs, self.where)
        result = self._function(**inputs)
        if inspect.isawaitable(result):
            result = _wait(result)
        return result

    def describe(self) -> str:
        """A one-line description for logs."""
        return "python %s" % self.path


def build(spec: Dict[str, Any], where: str) -> PythonProgram:
    """Imports the function a spec names; raises ``invalid_arguments`` when it cannot."""
    validate.check_spec_keys(spec, _SPEC_REQUIRED, (), where)
    path = spec["callable"]
    if not isinstance(path, str) or path.count(":") != 1:
        raise invalid_arguments(
            "%s: spec.callable must be a string 'package.module:function', got %r" % (where, path)
        )
    module_name, attribute = (part.strip() for part in path.split(":"))
    if not module_name or not attribute:
        raise invalid_arguments("%s: spec.callable must be 'package.module:function', got %r" % (where, path))
    prefixes = allowed_prefixes()
    if not module_allowed(module_name, prefixes):
        raise invalid_arguments(
            "%s: module %r is not allowed for programs on this pool (allowed module prefixes: %s)"
            % (where, module_name, ", ".join(prefixes or ()) or "none")
        )
    try:
        target: Any = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:
        raise invalid_arguments(
            "%s: cannot import module %r named by spec.callable: %s: %s" % (where, module_name, type(exc).__name__, exc),
            traceback.format_exc(),
        ) from exc
    for name in attribute.split("."):
        if not hasattr(target, name):
            raise invalid_arguments("%s: %r has no attribute %r (spec.callable %r)" % (where, target, name, path))
        target = getattr(target, name)
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
    return PythonProgram(where, path, target, signature)


def _wait(awaitable: Any) -> Any:
    async def wait() -> Any:
        return await awaitable

    return asyncio.run(wait())

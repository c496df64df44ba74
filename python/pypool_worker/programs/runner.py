"""``pypool.run_program``: find (or build) a program in the cache and run it.

With a definition, the program is built (or rebuilt) and cached under
(namespace, program_id, version), replacing any other version of it; without
one, it must be in the cache, otherwise the reply is ``program_not_cached``
and the host resends the request with the definition. That error says
nothing about what the cache holds (no other version, no other namespace's
program): a caller learns only that it must send the definition.
"""

import logging
from typing import Any, Callable, Dict, Optional, Union

from ..errors import PROGRAM_NOT_CACHED, CommandError
from ..registry import THREADS
from ..settings_store import SettingsStore
from . import dspy_kind, python_kind, validate
from .cache import ProgramCache

#: The namespace of a request that names none (the host always sends one).
DEFAULT_NAMESPACE = "global"

Program = Union[python_kind.PythonProgram, dspy_kind.DspyProgram]

_BUILDERS: Dict[str, Callable[[Dict[str, Any], str], Any]] = {
    "python": python_kind.build,
    "dspy": dspy_kind.build,
}


class ProgramRunner:
    """Runs programs for ``pypool.run_program`` from a cache it fills from definitions."""

    def __init__(self, cache: "ProgramCache[Program]", settings: SettingsStore, logger: Optional[logging.Logger] = None) -> None:
        #: The built programs this worker holds.
        self.cache = cache
        #: Where the LM configuration of dspy programs may come from (``lm``).
        self.settings = settings
        self.log = logger if logger is not None else logging.getLogger("pypool_worker.programs")

    def run_program(
        self,
        program_id: str,
        version: str,
        inputs: Optional[Dict[str, Any]] = None,
        definition: Optional[Dict[str, Any]] = None,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> Any:
        """The ``pypool.run_program`` command: returns what the program returns."""
        inputs = {} if inputs is None else inputs
        validate.check_request(program_id, version, inputs, definition)
        validate.check_namespace(namespace)
        where = validate.label(program_id, version)
        if definition is not None:
            program = self.build(definition, where)
            self.cache.put(namespace, program_id, version, program)
        else:
            cached = self.cache.get(namespace, program_id, version)
            if cached is None:
                raise CommandError(PROGRAM_NOT_CACHED, self._not_cached_message(where))
            program = cached
        return program.run(inputs, self.settings.snapshot())

    def concurrency_for(self, args: Dict[str, Any]) -> str:
        """How a ``pypool.run_program`` request runs (the server asks before running it).

        A ``python`` program runs as its spec says (``serial`` by default), a
        ``dspy`` program as :data:`dspy_kind.CONCURRENCY` says; a program known
        only by id runs as its cached build says; anything else (not cached,
        malformed) on the thread pool: it only produces an error reply.
        """
        definition = args.get("definition")
        if isinstance(definition, dict):
            kind = definition.get("kind")
            if kind == "python":
                return python_kind.concurrency_of(definition) or THREADS
            if kind == "dspy":
                return dspy_kind.CONCURRENCY
            return THREADS
        namespace = args.get("namespace", DEFAULT_NAMESPACE)
        program_id, version = args.get("program_id"), args.get("version")
        if isinstance(namespace, str) and isinstance(program_id, str) and isinstance(version, str):
            cached = self.cache.peek(namespace, program_id, version)
            if cached is not None:
                return cached.concurrency
        return THREADS

    def build(self, definition: Dict[str, Any], where: str) -> Program:
        """Builds a program from its definition; raises ``invalid_arguments``/``invalid_input`` when it cannot."""
        kind, spec = validate.check_definition(definition, where)
        program: Program = _BUILDERS[kind](spec, where)
        self.log.info("built %s: %s", where, program.describe())
        return program

    def _not_cached_message(self, where: str) -> str:
        # Deliberately says nothing about what the cache does hold.
        return "%s is not cached on this worker; resend the request with the program's definition" % where

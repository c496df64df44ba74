"""The command registry and the ``@command`` decorator.

A command is a named Python callable that a worker serves. This module knows
how commands are registered and how request arguments bind to a handler's
parameters; it must NOT know about frames, file descriptors or processes.
"""

import inspect
from typing import Any, Callable, Dict, FrozenSet, Iterator, List, Optional, Tuple, TypeVar, Union, overload

Handler = Callable[..., Any]

#: One at a time, in arrival order, on the worker's main thread (default for plain functions).
SERIAL = "serial"
#: Concurrently on the worker's bounded thread pool (the handler must be thread-safe).
THREADS = "threads"
#: Concurrently as coroutines on the worker's one event loop (default for ``async def``).
ASYNC = "async"
#: The ways a command's requests may run, as announced in the handshake.
CONCURRENCY_MODES = (SERIAL, THREADS, ASYNC)

#: Picks, per request, how a command's request runs (from its arguments);
#: used by built-ins whose requests differ (``pypool.run_program``).
Router = Callable[[Dict[str, Any]], str]


def is_async_handler(handler: Handler) -> bool:
    """Whether ``handler`` is an ``async def`` (a coroutine function, or an async
    generator function, whose yields stream)."""
    return inspect.iscoroutinefunction(handler) or inspect.isasyncgenfunction(handler)


def default_concurrency(handler: Handler) -> str:
    """``async`` for an ``async def`` handler (streaming or not), ``serial`` for
    anything else (a generator function included)."""
    return ASYNC if is_async_handler(handler) else SERIAL


def check_concurrency(name: str, handler: Handler, concurrency: Optional[str]) -> str:
    """The concurrency ``handler`` runs with: ``concurrency`` validated, or the default.

    Raises ``ValueError`` for an unknown mode, or ``async`` for a handler that
    is not an ``async def`` (it would block the event loop every request shares).
    """
    if concurrency is None:
        return default_concurrency(handler)
    if concurrency not in CONCURRENCY_MODES:
        raise ValueError(
            "command %r: concurrency must be one of %s, got %r" % (name, ", ".join(CONCURRENCY_MODES), concurrency)
        )
    if concurrency == ASYNC and not is_async_handler(handler):
        raise ValueError(
            "command %r: concurrency 'async' needs an 'async def' handler (a plain function would block the "
            "event loop every async request shares); use 'threads' for a thread-safe plain function" % (name,)
        )
    return concurrency

#: A handler's own type, kept by the decorators.
F = TypeVar("F", bound=Handler)


class DuplicateCommand(ValueError):
    """A command name was registered twice."""


class Command:
    """One registered command: a name, its handler, how it may be retried and how it runs."""

    __slots__ = ("name", "handler", "idempotent", "quiet", "concurrency", "router", "inline", "_signature", "_plain")

    def __init__(
        self,
        name: str,
        handler: Handler,
        idempotent: bool = False,
        quiet: bool = False,
        concurrency: Optional[str] = None,
        router: Optional[Router] = None,
    ) -> None:
        #: The name requests use.
        self.name = name
        #: The callable invoked as ``handler(**args)``.
        self.handler = handler
        #: Whether running the command twice is harmless (the host may retry it).
        self.idempotent = idempotent
        #: Routine traffic (health checks): logged at debug level only.
        self.quiet = quiet
        #: How its requests run: ``serial``, ``threads`` or ``async`` (see :data:`CONCURRENCY_MODES`).
        self.concurrency = check_concurrency(name, handler, concurrency)
        #: When set, picks the concurrency of each request from its arguments
        #: (then :attr:`concurrency` is what the handshake announces).
        self.router = router
        #: Answered by the worker's request reader as the request arrives, not
        #: handed to a runner: only for built-ins that run no user code and
        #: never block (``ping``); never set by :meth:`Registry.add`.
        self.inline = False
        try:
            self._signature: Optional[inspect.Signature] = inspect.signature(handler)
        except (TypeError, ValueError):
            # Some C callables have no introspectable signature; they check their own arguments.
            self._signature = None
        #: For a handler taking only named parameters (no ``*args``/``**kwargs``,
        #: none positional-only): every name, and those without a default.
        self._plain: Optional[Tuple[FrozenSet[str], FrozenSet[str]]] = None
        if self._signature is not None:
            parameters = self._signature.parameters.values()
            named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            if all(parameter.kind in named for parameter in parameters):
                self._plain = (
                    frozenset(parameter.name for parameter in parameters),
                    frozenset(parameter.name for parameter in parameters if parameter.default is parameter.empty),
                )

    def check_arguments(self, args: Dict[str, Any]) -> None:
        """Raises ``TypeError`` naming the parameter when ``args`` does not bind to the handler."""
        if self._plain is not None:
            names, required = self._plain
            keys = args.keys()
            if keys <= names and required <= keys:
                return  # binds (Signature.bind would say so, several times slower)
        if self._signature is not None:
            self._signature.bind(**args)

    def concurrency_for(self, args: Dict[str, Any]) -> str:
        """How the request with ``args`` runs: the router's choice, else :attr:`concurrency`."""
        if self.router is None:
            return self.concurrency
        try:
            mode = self.router(args)
        except Exception:  # a router never fails a request; the handler reports bad arguments
            return self.concurrency
        return mode if mode in CONCURRENCY_MODES else self.concurrency

    def describe(self) -> Dict[str, Any]:
        """The command as announced in the handshake."""
        return {"name": self.name, "idempotent": self.idempotent, "concurrency": self.concurrency}

    def __repr__(self) -> str:
        return "Command(%r, idempotent=%r, concurrency=%r)" % (self.name, self.idempotent, self.concurrency)


class Registry:
    """An ordered set of commands, looked up by name."""

    def __init__(self) -> None:
        self._commands: Dict[str, Command] = {}

    def add(
        self,
        name: str,
        handler: Handler,
        idempotent: bool = False,
        quiet: bool = False,
        concurrency: Optional[str] = None,
        router: Optional[Router] = None,
    ) -> Command:
        """Registers ``handler`` under ``name``; raises :class:`DuplicateCommand` if the name is taken
        and ``ValueError`` for a concurrency the handler cannot run with."""
        if not isinstance(name, str) or not name:
            raise ValueError("a command name must be a non-empty string, got %r" % (name,))
        if not callable(handler):
            raise TypeError("the handler for command %r is not callable: %r" % (name, handler))
        existing = self._commands.get(name)
        if existing is not None:
            raise DuplicateCommand(
                "command %r is already registered (by %s); choose another name"
                % (name, _describe_callable(existing.handler))
            )
        command = Command(
            name, handler, idempotent=bool(idempotent), quiet=bool(quiet), concurrency=concurrency, router=router
        )
        self._commands[name] = command
        return command

    @overload
    def command(self, name: F, *, idempotent: bool = False, concurrency: Optional[str] = None) -> F: ...

    @overload
    def command(
        self, name: Optional[str] = None, *, idempotent: bool = False, concurrency: Optional[str] = None
    ) -> Callable[[F], F]: ...

    def command(
        self, name: Union[str, Handler, None] = None, *, idempotent: bool = False, concurrency: Optional[str] = None
    ) -> Union[Handler, Callable[[F], F]]:
        """Decorator registering a function as a command.

        Usable bare (``@command``, named after the function) or with arguments
        (``@command("name", idempotent=True)``, ``@command(concurrency="threads")``).
        ``concurrency`` is how the worker runs the command's requests:
        ``"serial"`` (default for plain functions: one at a time, in arrival
        order, on the main thread), ``"threads"`` (concurrently on a bounded
        thread pool: the function must be thread-safe) or ``"async"`` (default
        for ``async def``: concurrently on the worker's one event loop).
        A generator function (``def`` with ``yield``) or an async generator
        function (``async def`` with ``yield``) streams its values to a
        ``stream_request`` as chunks, under the host's credit (a plain request
        gets the list of its values); a sync generator runs in the command's
        concurrency mode, an async one on the event loop.
        The decorated function is returned unchanged.
        """
        if callable(name):
            self.add(name.__name__, name, idempotent=idempotent, concurrency=concurrency)
            return name

        def decorate(func: F) -> F:
            self.add(name if name is not None else func.__name__, func, idempotent=idempotent, concurrency=concurrency)
            return func

        return decorate

    def get(self, name: str) -> Optional[Command]:
        """The command registered under ``name``, or ``None``."""
        return self._commands.get(name)

    def names(self) -> List[str]:
        """Registered names, in registration order."""
        return list(self._commands)

    def describe(self) -> List[Dict[str, Any]]:
        """Every command as announced in the handshake, in registration order."""
        return [command.describe() for command in self._commands.values()]

    def __contains__(self, name: object) -> bool:
        return name in self._commands

    def __iter__(self) -> Iterator[Command]:
        return iter(list(self._commands.values()))

    def __len__(self) -> int:
        return len(self._commands)


def _describe_callable(func: Handler) -> str:
    module = getattr(func, "__module__", None) or "?"
    qualname = getattr(func, "__qualname__", None) or repr(func)
    return "%s.%s" % (module, qualname)


#: The process-wide registry that the module-level :func:`command` decorator fills.
registry = Registry()


@overload
def command(name: F, *, idempotent: bool = False, concurrency: Optional[str] = None) -> F: ...


@overload
def command(
    name: Optional[str] = None, *, idempotent: bool = False, concurrency: Optional[str] = None
) -> Callable[[F], F]: ...


def command(
    name: Union[str, Handler, None] = None, *, idempotent: bool = False, concurrency: Optional[str] = None
) -> Union[Handler, Callable[[F], F]]:
    """Registers a function in the default :data:`registry`; see :meth:`Registry.command`."""
    return registry.command(name, idempotent=idempotent, concurrency=concurrency)

"""The command registry and the ``@command`` decorator.

A command is a named Python callable that a worker serves. This module knows
how commands are registered and how request arguments bind to a handler's
parameters; it must NOT know about frames, file descriptors or processes.
"""

import inspect
from typing import Any, Callable, Dict, Iterator, List, Optional, TypeVar, Union, overload

Handler = Callable[..., Any]

#: A handler's own type, kept by the decorators.
F = TypeVar("F", bound=Handler)


class DuplicateCommand(ValueError):
    """A command name was registered twice."""


class Command:
    """One registered command: a name, its handler and how it may be retried."""

    __slots__ = ("name", "handler", "idempotent", "quiet", "_signature")

    def __init__(self, name: str, handler: Handler, idempotent: bool = False, quiet: bool = False) -> None:
        #: The name requests use.
        self.name = name
        #: The callable invoked as ``handler(**args)``.
        self.handler = handler
        #: Whether running the command twice is harmless (the host may retry it).
        self.idempotent = idempotent
        #: Routine traffic (health checks): logged at debug level only.
        self.quiet = quiet
        try:
            self._signature: Optional[inspect.Signature] = inspect.signature(handler)
        except (TypeError, ValueError):
            # Some C callables have no introspectable signature; they check their own arguments.
            self._signature = None

    def check_arguments(self, args: Dict[str, Any]) -> None:
        """Raises ``TypeError`` naming the parameter when ``args`` does not bind to the handler."""
        if self._signature is not None:
            self._signature.bind(**args)

    def describe(self) -> Dict[str, Any]:
        """The command as announced in the handshake."""
        return {"name": self.name, "idempotent": self.idempotent, "concurrency": "serial"}

    def __repr__(self) -> str:
        return "Command(%r, idempotent=%r)" % (self.name, self.idempotent)


class Registry:
    """An ordered set of commands, looked up by name."""

    def __init__(self) -> None:
        self._commands: Dict[str, Command] = {}

    def add(self, name: str, handler: Handler, idempotent: bool = False, quiet: bool = False) -> Command:
        """Registers ``handler`` under ``name``; raises :class:`DuplicateCommand` if the name is taken."""
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
        command = Command(name, handler, idempotent=bool(idempotent), quiet=bool(quiet))
        self._commands[name] = command
        return command

    @overload
    def command(self, name: F, *, idempotent: bool = False) -> F: ...

    @overload
    def command(self, name: Optional[str] = None, *, idempotent: bool = False) -> Callable[[F], F]: ...

    def command(
        self, name: Union[str, Handler, None] = None, *, idempotent: bool = False
    ) -> Union[Handler, Callable[[F], F]]:
        """Decorator registering a function as a command.

        Usable bare (``@command``, named after the function) or with arguments
        (``@command("name", idempotent=True)``, ``@command(idempotent=True)``).
        The decorated function is returned unchanged.
        """
        if callable(name):
            self.add(name.__name__, name, idempotent=idempotent)
            return name

        def decorate(func: F) -> F:
            self.add(name if name is not None else func.__name__, func, idempotent=idempotent)
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
def command(name: F, *, idempotent: bool = False) -> F: ...


@overload
def command(name: Optional[str] = None, *, idempotent: bool = False) -> Callable[[F], F]: ...


def command(
    name: Union[str, Handler, None] = None, *, idempotent: bool = False
) -> Union[Handler, Callable[[F], F]]:
    """Registers a function in the default :data:`registry`; see :meth:`Registry.command`."""
    return registry.command(name, idempotent=idempotent)

"""Writing DSPy field types as the text of a typed signature string.

``dspy.Signature("question: str -> answer: str")`` parses types from text,
but a signature's own ``.signature`` property drops them. :func:`annotation_text`
writes a field's annotation back in a form DSPy's parser reads
(``str``, ``list[str]``, ``Optional[int]``, ``Literal['a', 'b']``,
``dspy.Image``…); :func:`signature_text` writes a whole signature. This module
imports nothing from DSPy and only the standard library.
"""

import importlib
import re
import types
import typing
from typing import Any, Iterable, Mapping

_UNION_TYPE = getattr(types, "UnionType", None)  # ``int | None`` (Python 3.10+)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def annotation_text(annotation: Any) -> str:
    """The annotation as signature-string text; raises ``ValueError`` when it has no such form."""
    if annotation is type(None):
        return "NoneType"
    if annotation is typing.Any:
        return "Any"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is None:
        if isinstance(annotation, type):
            return _class_text(annotation)
        raise ValueError("the annotation %r cannot be written in a signature string" % (annotation,))
    if origin is typing.Union or (_UNION_TYPE is not None and origin is _UNION_TYPE):
        others = [arg for arg in args if arg is not type(None)]
        if len(others) == 1 and len(args) == 2:
            return "Optional[%s]" % annotation_text(others[0])
        return "Union[%s]" % ", ".join(annotation_text(arg) for arg in args)
    if origin is typing.Literal:
        return "Literal[%s]" % ", ".join(repr(arg) for arg in args)
    if not isinstance(origin, type):
        raise ValueError("the annotation %r cannot be written in a signature string" % (annotation,))
    if not args:
        return _class_text(origin)
    return "%s[%s]" % (_class_text(origin), ", ".join(annotation_text(arg) for arg in args))


def fields_text(fields: Mapping[str, Any]) -> str:
    """``name: type, ...`` for a mapping of field names to pydantic ``FieldInfo``s."""
    return ", ".join("%s: %s" % (name, annotation_text(field.annotation)) for name, field in fields.items())


def signature_text(signature: Any) -> str:
    """The typed string of a DSPy signature class: ``"a: str, b: int -> c: list[str]"``."""
    return "%s -> %s" % (fields_text(signature.input_fields), fields_text(signature.output_fields))


def import_type_modules(text: str) -> None:
    """Imports the modules of dotted type names in a signature string (``pkg.models.Answer``).

    DSPy resolves ``a.b.C`` by importing ``a`` and reading attributes, which
    fails for a submodule nobody imported yet; importing the longest module
    prefix first makes such names resolve. Names that are not modules are
    left for DSPy to report.
    """
    unquoted = _QUOTED.sub("", text)  # Literal['a.b'] names no module
    for dotted in _unique(_DOTTED_NAME.findall(unquoted)):
        parts = dotted.split(".")
        for end in range(len(parts) - 1, 0, -1):
            try:
                importlib.import_module(".".join(parts[:end]))
            except ImportError:
                continue
            break


def admits_none(annotation: Any) -> bool:
    """Whether ``None`` is a valid value of ``annotation`` (``Optional[...]``, ``Any``, ``NoneType``)."""
    if annotation is typing.Any or annotation is type(None) or annotation is None:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or (_UNION_TYPE is not None and origin is _UNION_TYPE):
        return any(admits_none(arg) for arg in typing.get_args(annotation))
    return False


def _class_text(cls: type) -> str:
    module = getattr(cls, "__module__", "")
    if module in ("builtins", "typing"):
        return cls.__qualname__
    return "%s.%s" % (_public_module(cls), cls.__qualname__)


def _public_module(cls: type) -> str:
    """The shortest parent package that exports ``cls`` under its name (``dspy`` for ``dspy.Image``)."""
    module = cls.__module__
    parts = module.split(".")
    for end in range(1, len(parts)):
        candidate = ".".join(parts[:end])
        try:
            package = importlib.import_module(candidate)
        except ImportError:
            continue
        if getattr(package, cls.__qualname__, None) is cls:
            return candidate
    return module


def _unique(items: Iterable[str]) -> Iterable[str]:
    seen = set()
    for item in items:
        if item not in seen:
            seen.add(item)
            yield item

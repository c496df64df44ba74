"""Checking ``pypool.run_program`` requests before anything runs.

Malformed arguments or a definition that cannot be built are
``invalid_arguments`` errors; inputs that do not fit the program (missing,
``None``, empty or unknown) and secrets in a definition are ``invalid_input``
errors naming the field. Every check here happens before a program runs, so
bad inputs never reach a language model. Standard library only.
"""

import inspect
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .. import secret_fields
from ..errors import invalid_arguments, invalid_input

#: The program kinds a worker can build.
KINDS = ("python", "dspy")


def label(program_id: str, version: str) -> str:
    """How messages name a program."""
    return "program %r version %r" % (program_id, version)


def check_request(program_id: Any, version: Any, inputs: Any, definition: Any) -> None:
    """Raises ``invalid_arguments`` unless the arguments have the documented types."""
    if not isinstance(program_id, str) or not program_id:
        raise invalid_arguments("pypool.run_program: 'program_id' must be a non-empty string, got %r" % (program_id,))
    if not isinstance(version, str) or not version:
        raise invalid_arguments("pypool.run_program: 'version' must be a non-empty string, got %r" % (version,))
    if not isinstance(inputs, dict):
        raise invalid_arguments(
            "pypool.run_program: 'inputs' of %s must be an object, got %s" % (label(program_id, version), _type_name(inputs))
        )
    if definition is not None and not isinstance(definition, dict):
        raise invalid_arguments(
            "pypool.run_program: 'definition' of %s must be an object or null, got %s"
            % (label(program_id, version), _type_name(definition))
        )


def check_namespace(namespace: Any) -> None:
    """Raises ``invalid_arguments`` unless ``namespace`` is a non-empty string."""
    if not isinstance(namespace, str) or not namespace:
        raise invalid_arguments("pypool.run_program: 'namespace' must be a non-empty string, got %r" % (namespace,))


def check_definition(definition: Dict[str, Any], where: str) -> Tuple[str, Dict[str, Any]]:
    """Returns ``(kind, spec)`` of a definition; refuses secrets and unknown kinds."""
    secret = secret_fields.find(definition, "definition")
    if secret is not None:
        raise invalid_input("%s: %s" % (where, secret_fields.refusal_message(secret)))
    kind = definition.get("kind")
    if kind not in KINDS:
        raise invalid_arguments(
            "%s: definition.kind must be one of %s, got %r" % (where, ", ".join(repr(k) for k in KINDS), kind)
        )
    spec = definition.get("spec")
    if not isinstance(spec, dict):
        raise invalid_arguments("%s: definition.spec must be an object, got %s" % (where, _type_name(spec)))
    return kind, spec


def check_spec_keys(spec: Mapping[str, Any], required: Sequence[str], optional: Sequence[str], where: str) -> None:
    """Raises ``invalid_arguments`` when a required key is missing or an unknown key is present."""
    for key in required:
        if key not in spec:
            raise invalid_arguments("%s: definition.spec lacks %r" % (where, key))
    allowed = set(required) | set(optional)
    unknown = sorted(key for key in spec if key not in allowed)
    if unknown:
        raise invalid_arguments(
            "%s: unknown key(s) in definition.spec: %s (allowed: %s)"
            % (where, ", ".join(repr(k) for k in unknown), ", ".join(list(required) + list(optional)))
        )


def check_python_inputs(signature: inspect.Signature, inputs: Mapping[str, Any], where: str) -> None:
    """Raises ``invalid_input`` naming each missing or unexpected keyword input of a Python callable."""
    parameters = list(signature.parameters.values())
    named = [p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    takes_any = any(p.kind == p.VAR_KEYWORD for p in parameters)
    names = [p.name for p in named]
    problems = ["missing input %r" % p.name for p in named if p.default is p.empty and p.name not in inputs]
    if not takes_any:
        problems += ["unexpected input %r" % key for key in inputs if key not in names]
    if problems:
        raise invalid_input(_problems_message(where, problems, names))


def check_forward_inputs(signature: inspect.Signature, inputs: Mapping[str, Any], where: str) -> None:
    """Raises ``invalid_input`` for inputs that do not bind to a module's ``forward``
    (missing, unexpected), or that are ``None`` or empty for a parameter without a default."""
    parameters = [p for p in signature.parameters.values() if p.name != "self"]
    named = [p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    takes_any = any(p.kind == p.VAR_KEYWORD for p in parameters)
    names = [p.name for p in named]
    problems: List[str] = []
    for parameter in named:
        if parameter.name not in inputs:
            if parameter.default is parameter.empty:
                problems.append("missing input %r" % parameter.name)
            continue
        value = inputs[parameter.name]
        if parameter.default is parameter.empty and value is None:
            problems.append("input %r is null" % parameter.name)
        elif isinstance(value, str) and not value.strip():
            problems.append("input %r is empty" % parameter.name)
    if not takes_any:
        problems += ["unexpected input %r" % key for key in inputs if key not in names]
    if problems:
        raise invalid_input(_problems_message(where, problems, names))


def check_dspy_inputs(fields: Mapping[str, bool], inputs: Mapping[str, Any], where: str) -> None:
    """Raises ``invalid_input`` naming each input field that is missing, ``None``, empty or unknown.

    ``fields`` maps each input field of the signature to whether its type
    admits ``None`` (``Optional[...]``): only such a field may be ``None``.
    """
    problems: List[str] = []
    for name, allows_none in fields.items():
        if name not in inputs:
            problems.append("missing input %r" % name)
            continue
        value = inputs[name]
        if value is None and not allows_none:
            problems.append("input %r is null" % name)
        elif isinstance(value, str) and not value.strip():
            problems.append("input %r is empty" % name)
    problems += ["unexpected input %r" % key for key in inputs if key not in fields]
    if problems:
        raise invalid_input(_problems_message(where, problems, list(fields)))


def _problems_message(where: str, problems: Iterable[str], expected: Sequence[str]) -> str:
    takes = ", ".join(expected) if expected else "no inputs"
    return "invalid inputs for %s: %s (it takes: %s)" % (where, "; ".join(problems), takes)


def _type_name(value: Optional[Any]) -> str:
    return "null" if value is None else type(value).__name__

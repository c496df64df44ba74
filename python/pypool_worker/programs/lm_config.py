"""Which language model a DSPy program runs with, and checking LM configuration.

An LM configuration is a JSON object::

    {"model": "openai/gpt-4o-mini",        # a dspy.LM model string (required)
     "api_base": "https://...",            # optional
     "api_key_env": "OPENAI_API_KEY",      # optional: the NAME of the env var holding the key
     "temperature": 0.0, "max_tokens": 512,  # optional
     "cache": false,                       # default false (determinism)
     "num_retries": 0}                     # default 0 (an LM failure surfaces at once)

It comes from the program's definition (``spec.lm``), else from the worker's
settings (``lm``), else from the environment (``PYPOOL_LM_MODEL``,
``PYPOOL_LM_API_BASE``, ``PYPOOL_LM_API_KEY_ENV``); the first found is used
whole. The key itself is read from the environment when the LM is built and
is never stored in a configuration or logged; an ``api_key`` field is
refused. Standard library only: this module must NOT import DSPy.
"""

import os
import re
from typing import Any, Dict, Mapping, Optional, Tuple

from .. import secret_fields
from ..errors import invalid_arguments, invalid_input

#: Environment variable naming the default model.
ENV_MODEL = "PYPOOL_LM_MODEL"
#: Environment variable holding the default ``api_base``.
ENV_API_BASE = "PYPOOL_LM_API_BASE"
#: Environment variable holding the default ``api_key_env``.
ENV_API_KEY_ENV = "PYPOOL_LM_API_KEY_ENV"

#: Values used for keys a configuration leaves out.
DEFAULTS: Dict[str, Any] = {"cache": False, "num_retries": 0}

_KEYS = ("model", "api_base", "api_key_env", "temperature", "max_tokens", "cache", "num_retries")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class LMConfigError(Exception):
    """No LM is configured, or the environment variable holding its key is not set."""


def check(config: Any, where: str) -> Dict[str, Any]:
    """Validates an LM configuration; returns it with defaults filled.

    Raises ``invalid_input`` for an ``api_key`` field and ``invalid_arguments``
    for anything else that is wrong, naming ``where`` (e.g. ``settings.lm``).
    """
    if not isinstance(config, dict):
        raise invalid_arguments("%s must be an object, got %s" % (where, type(config).__name__))
    secret = secret_fields.find(config, where)
    if secret is not None:
        raise invalid_input(secret_fields.refusal_message(secret))
    unknown = sorted(key for key in config if key not in _KEYS)
    if unknown:
        raise invalid_arguments(
            "%s: unknown key(s) %s (allowed: %s)" % (where, ", ".join(repr(k) for k in unknown), ", ".join(_KEYS))
        )
    model = config.get("model")
    if not isinstance(model, str) or not model.strip():
        raise invalid_arguments("%s.model must be a non-empty dspy.LM model string such as 'openai/gpt-4o-mini', got %r" % (where, model))
    _optional(config, "api_base", str, where, "a string")
    env_name = _optional(config, "api_key_env", str, where, "a string")
    if env_name is not None and not _ENV_NAME.match(env_name):
        raise invalid_arguments("%s.api_key_env must name an environment variable, got %r" % (where, env_name))
    temperature = _optional(config, "temperature", (int, float), where, "a number")
    if temperature is not None and temperature < 0:
        raise invalid_arguments("%s.temperature must not be negative, got %r" % (where, temperature))
    max_tokens = _optional(config, "max_tokens", int, where, "an integer")
    if max_tokens is not None and max_tokens < 1:
        raise invalid_arguments("%s.max_tokens must be at least 1, got %r" % (where, max_tokens))
    _optional(config, "cache", bool, where, "a boolean")
    retries = _optional(config, "num_retries", int, where, "an integer")
    if retries is not None and retries < 0:
        raise invalid_arguments("%s.num_retries must not be negative, got %r" % (where, retries))
    checked = dict(DEFAULTS)
    checked.update((key, value) for key, value in config.items() if value is not None)
    return checked


def from_environment(environ: Mapping[str, str]) -> Optional[Dict[str, Any]]:
    """The configuration given by ``PYPOOL_LM_*`` variables, or ``None`` when ``PYPOOL_LM_MODEL`` is unset."""
    model = environ.get(ENV_MODEL, "").strip()
    if not model:
        return None
    config: Dict[str, Any] = {"model": model}
    if environ.get(ENV_API_BASE, "").strip():
        config["api_base"] = environ[ENV_API_BASE].strip()
    if environ.get(ENV_API_KEY_ENV, "").strip():
        config["api_key_env"] = environ[ENV_API_KEY_ENV].strip()
    return config


def resolve(
    program_lm: Any, settings_lm: Any, environ: Optional[Mapping[str, str]] = None
) -> Tuple[Dict[str, Any], str]:
    """The configuration to use and where it came from (``spec.lm``, ``settings.lm`` or the environment)."""
    environ = os.environ if environ is None else environ
    if program_lm is not None:
        return check(program_lm, "definition.spec.lm"), "definition.spec.lm"
    if settings_lm is not None:
        return check(settings_lm, "settings.lm"), "settings.lm"
    from_env = from_environment(environ)
    if from_env is not None:
        return check(from_env, "the %s environment variables" % ENV_MODEL), "environment"
    raise LMConfigError(
        "no language model is configured: give the program's definition an 'lm' in its spec, "
        "apply worker settings with an 'lm', or set %s in the worker's environment" % ENV_MODEL
    )


def api_key(config: Mapping[str, Any], environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The key named by ``api_key_env`` (read now), or ``None`` when the configuration names none."""
    environ = os.environ if environ is None else environ
    name = config.get("api_key_env")
    if name is None:
        return None
    key = environ.get(name)
    if not key:
        raise LMConfigError(
            "the LM's api_key_env names the environment variable %s, which is not set (or empty) "
            "in the worker's environment" % name
        )
    return key


def _optional(config: Mapping[str, Any], key: str, kinds: Any, where: str, described: str) -> Any:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) and kinds is not bool:
        raise invalid_arguments("%s.%s must be %s, got %r" % (where, key, described, value))
    if not isinstance(value, kinds):
        raise invalid_arguments("%s.%s must be %s, got %r" % (where, key, described, value))
    return value

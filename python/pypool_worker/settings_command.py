"""``pypool.apply_settings``: the host replaces the worker's settings map.

Args ``{"version": int >= 0, "settings": {...}}``; the reply is
``{"version": n, "applied": bool}`` where ``n`` is the version now in force
(a version older than the current one is ignored: ``applied`` is false).
An ``api_key`` anywhere in the settings is refused (``invalid_input``), and a
``settings.lm`` is checked like a program's LM configuration.
"""

import logging
from typing import Any, Callable, Dict

from . import secret_fields
from .errors import invalid_arguments, invalid_input
from .programs import lm_config
from .settings_store import SettingsStore


def make_apply_settings(store: SettingsStore, logger: logging.Logger) -> Callable[..., Dict[str, Any]]:
    """The ``pypool.apply_settings`` handler for ``store``."""

    def apply_settings(version: int, settings: Dict[str, Any]) -> Dict[str, Any]:
        """Replaces the worker's settings with ``settings`` (unless ``version`` is older than the current one)."""
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise invalid_arguments("pypool.apply_settings: 'version' must be a non-negative integer, got %r" % (version,))
        if not isinstance(settings, dict):
            raise invalid_arguments(
                "pypool.apply_settings: 'settings' must be an object, got %s" % type(settings).__name__
            )
        secret = secret_fields.find(settings, "settings")
        if secret is not None:
            raise invalid_input("pypool.apply_settings: %s" % secret_fields.refusal_message(secret))
        if settings.get("lm") is not None:
            lm_config.check(settings["lm"], "settings.lm")
        applied = store.apply(version, settings)
        if applied:
            logger.info("settings version %d applied (keys: %s)", version, ", ".join(sorted(settings)) or "none")
        else:
            logger.info("settings version %d ignored: version %d is already in force", version, store.version)
        return {"version": store.version, "applied": applied}

    return apply_settings

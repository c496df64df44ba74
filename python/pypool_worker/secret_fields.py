"""Finding secrets in configuration that must not carry them.

API keys never travel in program definitions or worker settings (the host
stores and logs those); configuration names the environment variable that
holds a key instead (``api_key_env``). This module only finds offending
fields; it must NOT know about commands or frames.
"""

from typing import Any, Optional

#: Field names refused anywhere in a definition or in settings.
REFUSED_KEYS = ("api_key",)


def find(value: Any, path: str) -> Optional[str]:
    """The dotted path of the first refused field inside ``value`` (``path`` names ``value``), or ``None``."""
    if isinstance(value, dict):
        for key, item in value.items():
            here = "%s.%s" % (path, key)
            if key in REFUSED_KEYS:
                return here
            found = find(item, here)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = find(item, "%s[%d]" % (path, index))
            if found is not None:
                return found
    return None


def refusal_message(field_path: str) -> str:
    """Why a field holding a secret is refused, and what to do instead."""
    return (
        "refusing %s: API keys must not be sent in definitions or settings; put the key in an "
        "environment variable of the worker and name that variable with 'api_key_env'" % field_path
    )

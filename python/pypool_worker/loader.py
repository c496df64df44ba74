"""Importing handler modules named on the command line.

A handler is either a module name (``my_pkg.handlers``, imported normally) or
a path to a ``.py`` file (loaded under a unique module name, with the file's
folder added to ``sys.path`` so it can import its siblings).
"""

import importlib
import importlib.util
import os
import re
import sys
import traceback
from types import ModuleType
from typing import List, Sequence

_counter = [0]
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_IMPORTLIB_DIR = os.path.dirname(os.path.abspath(importlib.__file__ or ""))


def is_path(spec: str) -> bool:
    """Whether ``spec`` names a file rather than a module."""
    return spec.endswith(".py") or os.sep in spec or (os.altsep is not None and os.altsep in spec)


def load_all(specs: Sequence[str]) -> List[ModuleType]:
    """Imports every handler in order; the first failure propagates unchanged."""
    return [load(spec) for spec in specs]


def load(spec: str) -> ModuleType:
    """Imports one handler module given as a module name or a ``.py`` path."""
    if is_path(spec):
        return load_file(spec)
    return importlib.import_module(spec)


def load_file(path: str) -> ModuleType:
    """Loads a ``.py`` file under a fresh module name."""
    full_path = os.path.abspath(path)
    if not os.path.isfile(full_path):
        raise FileNotFoundError("handler file %s does not exist (resolved to %s)" % (path, full_path))
    folder = os.path.dirname(full_path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    _counter[0] += 1
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(full_path))[0])
    module_name = "pypool_handlers_%d_%s" % (_counter[0], stem)
    spec = importlib.util.spec_from_file_location(module_name, full_path)
    if spec is None or spec.loader is None:
        raise ImportError("cannot load handler file %s: not a Python source file" % full_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def format_import_error(exc: BaseException) -> str:
    """The traceback of a failed handler import, starting at the user's code.

    Leading frames of this package and of importlib's machinery are dropped
    when user frames follow them; otherwise the traceback is kept whole.
    """
    tb = exc.__traceback__
    while tb is not None and _is_machinery(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    if tb is None:
        tb = exc.__traceback__
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _is_machinery(filename: str) -> bool:
    if filename.startswith("<frozen importlib"):
        return True
    return os.path.dirname(os.path.abspath(filename)) in (_PACKAGE_DIR, _IMPORTLIB_DIR)

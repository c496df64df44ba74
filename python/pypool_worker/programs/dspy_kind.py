"""Programs of kind ``dspy``: a DSPy 3 module built from a typed signature string.

Definition::

    {"kind": "dspy",
     "spec": {"module": "ChainOfThought",                 # any dspy.<Name> Module subclass
              "signature": "question: str -> answer: str", # typed signature string
              "instructions": "Answer briefly.",           # optional
              "state": {...},                              # optional, from module.dump_state()
              "lm": {"model": "openai/gpt-4o-mini", ...}}} # optional, see lm_config

DSPy is imported here lazily, the first time a dspy program is built (or at
start with ``--preload dspy``): importing this module does not import DSPy.
Inputs are checked against the signature's input fields before anything
reaches the LM (DSPy itself would only log a warning and prompt the LM with
an empty field). The LM comes from :mod:`.lm_config` on every run, so new
worker settings apply to cached programs at once.

DSPy programs run concurrently: by default (:data:`CONCURRENCY`, ``threads``)
each request calls the module on the worker's thread pool; with
``PYPOOL_DSPY_CONCURRENCY=async`` each awaits ``module.acall`` on the worker's
event loop instead (docs/PROTOCOL.md gives the measurement behind the default).
"""

import hashlib
import json
import logging
import os
import threading
import traceback
from collections import OrderedDict
from typing import Any, Dict, Mapping, Tuple

from ..errors import invalid_arguments
from ..registry import ASYNC, THREADS
from . import dspy_types, lm_config, validate

#: The environment variable choosing how dspy programs run (``threads`` or ``async``).
CONCURRENCY_ENV = "PYPOOL_DSPY_CONCURRENCY"


def _concurrency_from_env() -> str:
    chosen = os.environ.get(CONCURRENCY_ENV, THREADS).strip().lower()
    return chosen if chosen in (THREADS, ASYNC) else THREADS


#: How dspy programs' requests run: ``threads`` (the default) or ``async``.
CONCURRENCY = _concurrency_from_env()

_SPEC_REQUIRED = ("module", "signature")
# dspy.Predict takes these keyword arguments for itself: an input field so named never reaches the prompt.
_RESERVED_INPUTS = ("signature", "demos", "config", "lm", "prediction", "_trace")
_SPEC_OPTIONAL = ("instructions", "state", "lm")
_LM_CACHE_SIZE = 16

_log = logging.getLogger("pypool_worker.programs")
_lms: "OrderedDict[Tuple[str, Any], Any]" = OrderedDict()
_lms_lock = threading.Lock()


def load_dspy() -> Any:
    """Imports and returns ``dspy``, with LiteLLM told not to fetch its cost map over the network."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import dspy
    except ImportError as exc:
        raise ImportError(
            "DSPy is not installed in this worker's environment (%s); install it with "
            "pip install 'pypool-worker[dspy]'" % exc
        ) from exc
    return dspy


class DspyProgram:
    """A built ``dspy`` program: the module and its signature's input fields."""

    kind = "dspy"

    def __init__(self, where: str, module: Any, module_name: str, signature_text: str, inputs: Dict[str, bool], lm: Any) -> None:
        #: How messages name the program.
        self.where = where
        #: The DSPy module instance.
        self.module = module
        self._module_name = module_name
        self._signature_text = signature_text
        self._inputs = inputs
        self._program_lm = lm
        #: How the worker runs its requests (:data:`CONCURRENCY`).
        self.concurrency = CONCURRENCY

    @property
    def input_fields(self) -> Tuple[str, ...]:
        """The signature's input field names, in order."""
        return tuple(self._inputs)

    def run(self, inputs: Dict[str, Any], settings: Mapping[str, Any]) -> Any:
        """Validates ``inputs``, picks the LM, runs the module; returns the prediction's fields.

        With ``async`` concurrency it returns a coroutine (awaiting
        ``module.acall``) that the worker runtime runs on its event loop."""
        validate.check_dspy_inputs(self._inputs, inputs, self.where)
        config, source = lm_config.resolve(self._program_lm, settings.get("lm"))
        dspy = load_dspy()
        lm = _language_model(dspy, config)
        _log.debug("%s runs on %s (from %s)", self.where, config["model"], source)
        if self.concurrency == ASYNC:
            return self._acall(dspy, lm, inputs)
        with dspy.context(lm=lm, disable_history=True):
            prediction = self.module(**inputs)
        return _prediction_fields(prediction)

    async def _acall(self, dspy: Any, lm: Any, inputs: Dict[str, Any]) -> Dict[str, Any]:
        with dspy.context(lm=lm, disable_history=True):
            prediction = await self.module.acall(**inputs)
        return _prediction_fields(prediction)

    def describe(self) -> str:
        """A one-line description for logs."""
        return "dspy %s(%r)" % (self._module_name, self._signature_text)


def build(spec: Dict[str, Any], where: str) -> DspyProgram:
    """Builds the module a spec describes; raises ``invalid_arguments`` when it cannot."""
    validate.check_spec_keys(spec, _SPEC_REQUIRED, _SPEC_OPTIONAL, where)
    module_name = _typed(spec, "module", str, "a string naming a dspy Module class", where)
    text = _typed(spec, "signature", str, "a typed signature string such as 'question: str -> answer: str'", where)
    instructions = _typed(spec, "instructions", str, "a string", where, optional=True)
    state = _typed(spec, "state", dict, "an object (from module.dump_state())", where, optional=True)
    lm = spec.get("lm")
    if lm is not None:
        lm_config.check(lm, "definition.spec.lm")
    try:
        dspy = load_dspy()
    except ImportError as exc:
        raise invalid_arguments("%s: cannot build a dspy program: %s" % (where, exc)) from exc
    module_class = _module_class(dspy, module_name, where)
    try:
        signature = make_signature(dspy, text, instructions)
    except Exception as exc:
        raise invalid_arguments(
            "%s: invalid spec.signature %r: %s: %s" % (where, text, type(exc).__name__, exc)
        ) from exc
    reserved = [name for name in signature.input_fields if name in _RESERVED_INPUTS]
    if reserved:
        raise invalid_arguments(
            "%s: input field name(s) %s are reserved by dspy.Predict (it would take them as its own "
            "options, not as inputs); rename them" % (where, ", ".join(repr(n) for n in reserved))
        )
    try:
        module = module_class(signature)
    except Exception as exc:
        raise invalid_arguments(
            "%s: dspy.%s(signature) failed: %s: %s" % (where, module_name, type(exc).__name__, exc),
            traceback.format_exc(),
        ) from exc
    if state is not None:
        try:
            module.load_state(state)
        except Exception as exc:
            raise invalid_arguments(
                "%s: spec.state does not fit dspy.%s(%r): %s: %s" % (where, module_name, text, type(exc).__name__, exc),
                traceback.format_exc(),
            ) from exc
    _forget_saved_lms(module, where)
    inputs = {name: dspy_types.admits_none(field.annotation) for name, field in signature.input_fields.items()}
    return DspyProgram(where, module, module_name, text, inputs, lm)


def make_signature(dspy: Any, text: str, instructions: Any = None) -> Any:
    """``dspy.Signature(text, instructions)`` with dotted type names importable.

    ``custom_types={}`` stops DSPy from searching the caller's stack frames
    for type names (that search could pick up unrelated local variables).
    """
    dspy_types.import_type_modules(text)
    return dspy.Signature(text, instructions, custom_types={})


def dspy_definition(module: Any) -> Dict[str, Any]:
    """A ``pypool.run_program`` definition that rebuilds ``module`` on any worker.

    Returns ``{"kind": "dspy", "spec": {"module", "signature", "instructions", "state"}}``
    where ``signature`` is a TYPED signature string (``module.signature.signature``
    drops the types) and ``state`` is ``module.dump_state()`` without any saved
    LM (a worker picks the LM from ``spec.lm``, its settings or its environment;
    add ``spec["lm"]`` yourself if the program needs its own). Raises
    ``ValueError`` for a module that is not a ``dspy.<Name>`` class with one
    signature (``Predict``, ``ChainOfThought``…) or whose field types have no
    signature-string form.
    """
    dspy = load_dspy()
    module_class = type(module)
    name = module_class.__name__
    if getattr(dspy, name, None) is not module_class:
        raise ValueError(
            "dspy_definition needs an instance of a dspy.<Name> module class such as dspy.Predict or "
            "dspy.ChainOfThought, got %s.%s" % (module_class.__module__, module_class.__qualname__)
        )
    signature = _base_signature(dspy, module)
    text = dspy_types.signature_text(signature)
    rebuilt = make_signature(dspy, text, signature.instructions)
    _check_same_fields(signature, rebuilt, text)
    state = _without_saved_lms(module.dump_state())
    json.dumps(state)  # fail here, not on the host, when the state cannot travel as JSON
    return {
        "kind": "dspy",
        "spec": {"module": name, "signature": text, "instructions": signature.instructions, "state": state},
    }


def _module_class(dspy: Any, name: str, where: str) -> Any:
    candidate = getattr(dspy, name, None) if not name.startswith("_") else None
    if not (isinstance(candidate, type) and issubclass(candidate, dspy.Module) and candidate is not dspy.Module):
        modules = sorted(
            attr for attr in dir(dspy)
            if isinstance(getattr(dspy, attr), type)
            and issubclass(getattr(dspy, attr), dspy.Module)
            and getattr(dspy, attr) is not dspy.Module
        )
        raise invalid_arguments(
            "%s: spec.module %r is not a dspy Module class (available: %s)" % (where, name, ", ".join(modules))
        )
    return candidate


def _base_signature(dspy: Any, module: Any) -> Any:
    """The signature the module was built from (ChainOfThought adds a ``reasoning`` output)."""
    if isinstance(module, dspy.ChainOfThought):
        return module.predict.signature.delete("reasoning")
    signature = getattr(module, "signature", None)
    if isinstance(signature, type) and issubclass(signature, dspy.Signature):
        return signature
    raise ValueError(
        "dspy_definition cannot find the signature of a %s module: only modules with one signature "
        "(dspy.Predict, dspy.ChainOfThought) are supported" % type(module).__name__
    )


def _check_same_fields(original: Any, rebuilt: Any, text: str) -> None:
    for group in ("input_fields", "output_fields"):
        before = [(n, dspy_types.annotation_text(f.annotation)) for n, f in getattr(original, group).items()]
        after = [(n, dspy_types.annotation_text(f.annotation)) for n, f in getattr(rebuilt, group).items()]
        if before != after:
            raise ValueError(
                "the signature string %r does not rebuild the module's %s: %r became %r"
                % (text, group.replace("_", " "), before, after)
            )


def _without_saved_lms(state: Any) -> Any:
    """A copy of a ``dump_state()`` tree with every predictor's saved LM set to ``None``."""
    if isinstance(state, dict):
        cleaned = {key: _without_saved_lms(value) for key, value in state.items()}
        if "signature" in cleaned and "lm" in cleaned:
            cleaned["lm"] = None
        return cleaned
    if isinstance(state, list):
        return [_without_saved_lms(item) for item in state]
    return state


def _forget_saved_lms(module: Any, where: str) -> None:
    """Clears LMs restored from state: the LM always comes from the configuration chain."""
    for name, predictor in module.named_predictors():
        if getattr(predictor, "lm", None) is not None:
            _log.warning("%s: ignoring the LM saved in spec.state for predictor %r; configure it with spec.lm", where, name)
            predictor.lm = None


def _language_model(dspy: Any, config: Dict[str, Any]) -> Any:
    """A ``dspy.LM`` for ``config``, reused while the configuration and the key stay the same."""
    key = lm_config.api_key(config)
    cache_key = (
        json.dumps(config, sort_keys=True),
        hashlib.sha256(key.encode("utf-8")).hexdigest() if key is not None else None,
    )
    with _lms_lock:
        lm = _lms.get(cache_key)
        if lm is not None:
            _lms.move_to_end(cache_key)
            return lm
    kwargs: Dict[str, Any] = {"cache": config["cache"], "num_retries": config["num_retries"]}
    for option in ("api_base", "temperature", "max_tokens"):
        if option in config:
            kwargs[option] = config[option]
    if key is not None:
        kwargs["api_key"] = key
    lm = dspy.LM(config["model"], **kwargs)
    with _lms_lock:
        lm = _lms.setdefault(cache_key, lm)
        _lms.move_to_end(cache_key)
        while len(_lms) > _LM_CACHE_SIZE:
            _lms.popitem(last=False)
    return lm


def _prediction_fields(prediction: Any) -> Dict[str, Any]:
    items = prediction.items() if callable(getattr(prediction, "items", None)) else None
    if items is None:
        raise TypeError("the dspy module returned %s, not a Prediction" % type(prediction).__name__)
    return {str(name): _jsonable(value) for name, value in items}


def _jsonable(value: Any) -> Any:
    """Pydantic models (typed outputs, dspy types) as JSON data; containers recursively."""
    if callable(getattr(value, "model_dump", None)):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(item) for item in value]
    return value


def _typed(spec: Mapping[str, Any], key: str, kind: type, described: str, where: str, optional: bool = False) -> Any:
    value = spec.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip() and not optional):
        raise invalid_arguments("%s: spec.%s must be %s, got %r" % (where, key, described, value))
    return value

"""Programs of kind ``dspy``: a DSPy 3 module, built-in or the user's own.

Definition of a built-in module::

    {"kind": "dspy",
     "spec": {"module": "ChainOfThought",                 # any dspy.<Name> Module subclass
              "signature": "question: str -> answer: str", # typed signature string
              "instructions": "Answer briefly.",           # optional
              "state": {...},                              # optional, from module.dump_state()
              "stream": ["answer"],                        # optional: output fields a stream carries
              "lm": {"model": "openai/gpt-4o-mini", ...}}} # optional, see lm_config

Definition of a custom module (a ``dspy.Module`` subclass from user code)::

    {"kind": "dspy",
     "spec": {"module": "my_pkg.rag:RAG",                 # package.module:Class
              "args": {"k": 3},                           # optional: constructor keyword arguments (JSON)
              "state": {...},                             # optional: module.dump_state() after optimization
              "signature": "question: str -> answer: str",# optional: declared inputs/outputs
              "stream": ["answer"],                       # optional: output fields a stream carries
              "lm": {...}}}

A custom module's inputs are checked before any LM call: against the declared
``signature``'s input fields when there is one, else against the parameters
of its ``forward`` (missing, unexpected, null or empty). Its module must be
allowed by ``PYPOOL_ALLOWED_PROGRAM_MODULES`` like a ``python`` program's.

Every run reports its LM usage beside its result (:class:`..results.WithUsage`:
the reply's ``usage``): LM calls that reached the provider, prompt and
completion tokens, and the cost when LiteLLM knows the model's price.

A ``stream_request`` for a dspy program (with the default ``threads``
concurrency) streams its output fields token by token through
``dspy.streamify`` with one stream listener per field of ``spec.stream``
(default: every output field of the signature); each chunk is
``{"field", "chunk", "predictor"}`` and the final reply carries the
prediction and its usage. The LM must be able to stream (``stream: true``).

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

import asyncio
import contextvars
import hashlib
import inspect
import json
import logging
import os
import queue
import threading
import traceback
from collections import OrderedDict
from typing import Any, Dict, Generator, List, Mapping, Optional, Set, Tuple

from ..errors import invalid_arguments
from ..registry import ASYNC, THREADS
from ..results import WithUsage
from ..streaming import streaming_requested
from . import dspy_types, lm_config, python_kind, validate

#: The environment variable choosing how dspy programs run (``threads`` or ``async``).
CONCURRENCY_ENV = "PYPOOL_DSPY_CONCURRENCY"


def _concurrency_from_env() -> str:
    chosen = os.environ.get(CONCURRENCY_ENV, THREADS).strip().lower()
    return chosen if chosen in (THREADS, ASYNC) else THREADS


#: How dspy programs' requests run: ``threads`` (the default) or ``async``.
CONCURRENCY = _concurrency_from_env()

_SPEC_REQUIRED = ("module",)
# dspy.Predict takes these keyword arguments for itself: an input field so named never reaches the prompt.
_RESERVED_INPUTS = ("signature", "demos", "config", "lm", "prediction", "_trace")
_SPEC_OPTIONAL = ("signature", "instructions", "state", "lm", "args", "stream")
_LM_CACHE_SIZE = 16

_log = logging.getLogger("pypool_worker.programs")
_lms: "OrderedDict[Tuple[str, Any], Any]" = OrderedDict()
_lms_lock = threading.Lock()


def load_dspy() -> Any:
    """Imports and returns ``dspy``, with LiteLLM told not to fetch its cost map over the network."""
    _local_cost_map()
    try:
        import dspy
    except ImportError as exc:
        raise ImportError(
            "DSPy is not installed in this worker's environment (%s); install it with "
            "pip install 'pypool-worker[dspy]'" % exc
        ) from exc
    return dspy


class DspyProgram:
    """A built ``dspy`` program: the module, and what its inputs must be."""

    kind = "dspy"

    def __init__(
        self,
        where: str,
        module: Any,
        module_name: str,
        signature_text: Optional[str],
        inputs: Optional[Dict[str, bool]],
        lm: Any,
        forward: Optional[inspect.Signature] = None,
        stream_fields: Optional[List[str]] = None,
    ) -> None:
        #: How messages name the program.
        self.where = where
        #: The DSPy module instance.
        self.module = module
        self._module_name = module_name
        self._signature_text = signature_text
        #: Declared input fields (name -> admits None), or None to check ``forward``.
        self._inputs = inputs
        self._forward = forward
        self._program_lm = lm
        self._stream_fields = list(stream_fields or [])
        #: How the worker runs its requests (:data:`CONCURRENCY`).
        self.concurrency = CONCURRENCY

    @property
    def input_fields(self) -> Tuple[str, ...]:
        """The input names, in order (the signature's fields, or ``forward``'s parameters)."""
        if self._inputs is not None:
            return tuple(self._inputs)
        if self._forward is not None:
            return tuple(name for name in self._forward.parameters if name != "self")
        return ()

    def check_inputs(self, inputs: Mapping[str, Any]) -> None:
        """Raises ``invalid_input`` for inputs that do not fit, before anything reaches the LM."""
        if self._inputs is not None:
            validate.check_dspy_inputs(self._inputs, inputs, self.where)
        elif self._forward is not None:
            validate.check_forward_inputs(self._forward, inputs, self.where)

    def run(self, inputs: Dict[str, Any], settings: Mapping[str, Any]) -> Any:
        """Validates ``inputs``, picks the LM, runs the module; returns the prediction's
        fields with the run's LM usage (:class:`WithUsage`).

        For a streaming request it returns a generator of token chunks whose
        return value is that result. With ``async`` concurrency it returns a
        coroutine (awaiting ``module.acall``) that the worker runtime runs on
        its event loop."""
        self.check_inputs(inputs)
        config, source = lm_config.resolve(self._program_lm, settings.get("lm"))
        dspy = load_dspy()
        lm = _language_model(dspy, config)
        _log.debug("%s runs on %s (from %s)", self.where, config["model"], source)
        if self.concurrency == ASYNC:
            return self._acall(dspy, lm, inputs)
        if streaming_requested():
            return self._stream(dspy, lm, inputs)
        with dspy.context(lm=lm, disable_history=True), _track_usage() as tracker:
            prediction = self.module(**inputs)
        return WithUsage(_prediction_fields(prediction), usage_summary(tracker.usage_data))

    async def _acall(self, dspy: Any, lm: Any, inputs: Dict[str, Any]) -> WithUsage:
        with dspy.context(lm=lm, disable_history=True), _track_usage() as tracker:
            prediction = await self.module.acall(**inputs)
        return WithUsage(_prediction_fields(prediction), usage_summary(tracker.usage_data))

    def _streaming_program(self, dspy: Any) -> Any:
        """A ``dspy.streamify`` wrapper of the module with fresh stream listeners
        (a listener serves one stream: DSPy's listeners are single-use)."""
        fields = self._stream_fields or self._output_fields()
        if not fields:
            raise invalid_arguments(
                "%s: cannot stream: name the output fields to stream in spec.stream "
                "(or declare spec.signature)" % self.where
            )
        listeners = [dspy.streaming.StreamListener(signature_field_name=name) for name in fields]
        return dspy.streamify(self.module, stream_listeners=listeners, async_streaming=True)

    def _output_fields(self) -> List[str]:
        signature = getattr(self.module, "signature", None)
        predict = getattr(self.module, "predict", None)
        if signature is None and predict is not None:
            signature = getattr(predict, "signature", None)
        fields = getattr(signature, "output_fields", None) or {}
        return [name for name in fields if name != "reasoning"]

    def _stream(self, dspy: Any, lm: Any, inputs: Dict[str, Any]) -> Generator[Dict[str, Any], None, WithUsage]:
        """Streams the output fields token by token; returns the prediction with its usage.

        The async generator ``dspy.streamify`` makes runs as one task on a
        private event loop in a helper thread (anyio's cancel scopes need one
        task), handing items over one at a time through a queue of one: while
        the stream has no credit this generator does not take the next item,
        so the helper waits and stops reading the LM's stream; nothing piles
        up. Closing this generator (a cancel) cancels the task."""
        streaming_program = self._streaming_program(dspy)
        from dspy.streaming import StreamResponse

        handoff: "queue.Queue[Tuple[str, Any]]" = queue.Queue(maxsize=1)
        running: Dict[str, Any] = {}
        prediction = None
        with dspy.context(lm=lm, disable_history=True), _track_usage() as tracker:
            context = contextvars.copy_context()

            async def pump() -> None:
                running["loop"] = asyncio.get_running_loop()
                running["task"] = asyncio.current_task()
                try:
                    async for item in streaming_program(**inputs):
                        await asyncio.to_thread(handoff.put, ("item", item))
                except Exception as exc:
                    await asyncio.to_thread(handoff.put, ("error", exc))
                    return
                await asyncio.to_thread(handoff.put, ("done", None))

            def produce() -> None:
                try:
                    context.run(asyncio.run, pump())
                except BaseException:  # cancelled by a closing consumer: nothing to report
                    pass

            helper = threading.Thread(target=produce, name="pypool-dspy-stream", daemon=True)
            helper.start()
            try:
                while True:
                    kind, item = handoff.get()
                    if kind == "done":
                        break
                    if kind == "error":
                        raise item
                    if isinstance(item, StreamResponse):
                        yield {"field": item.signature_field_name, "chunk": item.chunk, "predictor": item.predict_name}
                    elif isinstance(item, dspy.Prediction):
                        prediction = item
            finally:
                _stop_helper(helper, handoff, running)
        if prediction is None:
            raise RuntimeError("%s: the streamed dspy program ended without a prediction" % self.where)
        return WithUsage(_prediction_fields(prediction), usage_summary(tracker.usage_data))

    def describe(self) -> str:
        """A one-line description for logs."""
        if self._signature_text is None:
            return "dspy %s" % self._module_name
        return "dspy %s(%r)" % (self._module_name, self._signature_text)


def build(spec: Dict[str, Any], where: str) -> DspyProgram:
    """Builds the module a spec describes; raises ``invalid_arguments`` when it cannot."""
    validate.check_spec_keys(spec, _SPEC_REQUIRED, _SPEC_OPTIONAL, where)
    module_name = _typed(spec, "module", str, "a string naming a dspy Module class", where)
    stream_fields = _stream_fields(spec, where)
    if ":" in module_name:
        return _build_custom(spec, module_name, stream_fields, where)
    if spec.get("args") is not None:
        raise invalid_arguments(
            "%s: spec.args is only for a custom module ('package.module:Class'); dspy.%s takes the signature"
            % (where, module_name)
        )
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
    if stream_fields:
        _check_stream_fields(stream_fields, list(signature.output_fields), where)
    return DspyProgram(where, module, module_name, text, inputs, lm, stream_fields=stream_fields)


def _stream_fields(spec: Mapping[str, Any], where: str) -> Optional[List[str]]:
    fields = spec.get("stream")
    if fields is None:
        return None
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields):
        raise invalid_arguments("%s: spec.stream must be a non-empty list of output field names, got %r" % (where, fields))
    return list(fields)


def _check_stream_fields(fields: List[str], outputs: List[str], where: str) -> None:
    unknown = [name for name in fields if name not in outputs]
    if unknown:
        raise invalid_arguments(
            "%s: spec.stream names %s, which %s not output field(s) of the signature (outputs: %s)"
            % (where, ", ".join(repr(n) for n in unknown), "is" if len(unknown) == 1 else "are", ", ".join(outputs))
        )


def _build_custom(spec: Dict[str, Any], path: str, stream_fields: Optional[List[str]], where: str) -> DspyProgram:
    """A module class from user code: imported (if allowed), built with ``spec.args``, ``spec.state`` loaded."""
    if spec.get("instructions") is not None:
        raise invalid_arguments(
            "%s: spec.instructions is only for a built-in module; a custom module (%r) sets its own" % (where, path)
        )
    args = _typed(spec, "args", dict, "an object of constructor keyword arguments", where, optional=True) or {}
    state = _typed(spec, "state", dict, "an object (from module.dump_state())", where, optional=True)
    text = _typed(spec, "signature", str, "a typed signature string such as 'question: str -> answer: str'", where, optional=True)
    lm = spec.get("lm")
    if lm is not None:
        lm_config.check(lm, "definition.spec.lm")
    module_name, _, attribute = (part.strip() for part in path.partition(":"))
    if not module_name or not attribute or ":" in attribute:
        raise invalid_arguments("%s: spec.module must be a dspy class name or 'package.module:Class', got %r" % (where, path))
    python_kind.check_allowed(module_name, where)
    try:
        dspy = load_dspy()
    except ImportError as exc:
        raise invalid_arguments("%s: cannot build a dspy program: %s" % (where, exc)) from exc
    target = python_kind.import_named(module_name, attribute, path, "spec.module", where)
    if not (isinstance(target, type) and issubclass(target, dspy.Module)):
        raise invalid_arguments("%s: spec.module %r is not a dspy.Module subclass" % (where, path))
    try:
        module = target(**args)
    except Exception as exc:
        raise invalid_arguments(
            "%s: %s(**spec.args) failed: %s: %s" % (where, path, type(exc).__name__, exc), traceback.format_exc()
        ) from exc
    if state is not None:
        try:
            module.load_state(state)
        except Exception as exc:
            raise invalid_arguments(
                "%s: spec.state does not fit %s: %s: %s" % (where, path, type(exc).__name__, exc),
                traceback.format_exc(),
            ) from exc
    _forget_saved_lms(module, where)
    inputs: Optional[Dict[str, bool]] = None
    forward: Optional[inspect.Signature] = None
    if text is not None:
        try:
            signature = make_signature(dspy, text)
        except Exception as exc:
            raise invalid_arguments(
                "%s: invalid spec.signature %r: %s: %s" % (where, text, type(exc).__name__, exc)
            ) from exc
        inputs = {name: dspy_types.admits_none(field.annotation) for name, field in signature.input_fields.items()}
        if stream_fields:
            _check_stream_fields(stream_fields, list(signature.output_fields), where)
    else:
        try:
            forward = inspect.signature(module.forward)
        except (TypeError, ValueError, AttributeError) as exc:
            raise invalid_arguments(
                "%s: %s has no inspectable forward(); declare its inputs with spec.signature" % (where, path)
            ) from exc
    return DspyProgram(where, module, path, text, inputs, lm, forward=forward, stream_fields=stream_fields)


def _stop_helper(helper: threading.Thread, handoff: "queue.Queue[Tuple[str, Any]]", running: Dict[str, Any]) -> None:
    """Cancels a streaming helper's task and waits for its thread, emptying the
    hand-over queue so a pending put cannot keep it (or its executor) blocked."""
    loop, task = running.get("loop"), running.get("task")
    if helper.is_alive() and loop is not None and task is not None:
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:  # its loop already closed
            pass
    while helper.is_alive():
        try:
            handoff.get(timeout=0.05)
        except queue.Empty:
            pass
        helper.join(0.05)


def _track_usage() -> Any:
    from dspy.utils.usage_tracker import track_usage

    return track_usage()


def usage_summary(usage_data: Mapping[str, List[Mapping[str, Any]]]) -> Dict[str, Any]:
    """A run's LM usage from DSPy's tracker (``{model: [usage entry per call]}``):
    ``{"calls", "prompt_tokens", "completion_tokens", "total_tokens", "cost", "models"}``.

    ``calls`` counts the LM calls that reached the provider (cache hits are
    not billed and not counted); ``cost`` (USD) is ``None`` unless LiteLLM
    knows the price of every model used."""
    models: Dict[str, Dict[str, Any]] = {}
    totals = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    cost: Optional[float] = 0.0
    for model, entries in usage_data.items():
        prompt = sum(_count(entry.get("prompt_tokens")) for entry in entries)
        completion = sum(_count(entry.get("completion_tokens")) for entry in entries)
        total = sum(_count(entry.get("total_tokens")) or _count(entry.get("prompt_tokens")) + _count(entry.get("completion_tokens")) for entry in entries)
        model_cost = _cost(model, prompt, completion)
        models[model] = {"calls": len(entries), "prompt_tokens": prompt, "completion_tokens": completion, "cost": model_cost}
        totals["calls"] += len(entries)
        totals["prompt_tokens"] += prompt
        totals["completion_tokens"] += completion
        totals["total_tokens"] += total
        cost = None if cost is None or model_cost is None else cost + model_cost
    summary: Dict[str, Any] = dict(totals)
    summary["cost"] = cost if models else None
    summary["models"] = models
    return summary


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


#: The most model names remembered as having no price (a bound, not a target).
UNPRICED_MODELS_REMEMBERED = 256

_unpriced: Set[str] = set()
_pricing: Dict[str, Any] = {}


def load_pricing() -> Any:
    """Imports LiteLLM, whose local price map prices usage, and returns it; ``None``
    when it is not installed (asked once per process).

    ``--preload dspy`` calls this at start: the import takes seconds of CPU,
    which a worker would otherwise spend in its first DSPy request (and, with
    the fork start method, every forked worker again)."""
    if "module" not in _pricing:
        _local_cost_map()
        module: Any = None
        try:
            import litellm

            module = litellm
        except ImportError:
            pass
        _pricing["module"] = module
    return _pricing["module"]


def _local_cost_map() -> None:
    """Tells LiteLLM to read its bundled cost map instead of fetching one over
    the network at import (unless the environment says otherwise)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def _cost(model: str, prompt_tokens: int, completion_tokens: int) -> Optional[float]:
    """USD for the tokens, when LiteLLM's (local) price map knows the model; else ``None``.

    A model LiteLLM cannot price is remembered (up to
    :data:`UNPRICED_MODELS_REMEMBERED` names) and not looked up again in this
    process: the failed lookup costs more CPU than a fast LM call's own
    bookkeeping. A model registered with LiteLLM after its first lookup
    failed therefore stays unpriced until the worker is replaced."""
    if model in _unpriced:
        return None
    litellm = load_pricing()
    if litellm is None:
        return None
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
    except Exception:  # an unknown model (a fake, a private deployment): no price
        if len(_unpriced) < UNPRICED_MODELS_REMEMBERED:
            _unpriced.add(model)
        return None
    return float(prompt_cost) + float(completion_cost)


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

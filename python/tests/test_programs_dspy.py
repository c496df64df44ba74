"""pypool.run_program with dspy programs against tests/fixtures/fake_openai.py.

Skipped only when DSPy is not importable (the project's .venv installs it with
the ``dspy`` extra).
"""

import importlib.util
import json

import pytest

from harness import REPO_FIXTURES_DIR, Worker

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("dspy") is None,
    reason="DSPy is not installed in this Python; install it with pip install -e 'python[dspy]'",
)

KEY_ENV = "PYPOOL_TEST_FAKE_KEY"
KEY = "sk-fake-test-key"
NO_LM_ENV = {"PYPOOL_LM_MODEL": None, "PYPOOL_LM_API_BASE": None, "PYPOOL_LM_API_KEY_ENV": None}


def lm(api_base, **extra):
    config = {"model": "openai/fake-model", "api_base": api_base, "api_key_env": KEY_ENV}
    config.update(extra)
    return config


def dspy_program(signature, module="Predict", **spec):
    return {"kind": "dspy", "spec": dict(spec, module=module, signature=signature)}


@pytest.fixture(scope="module")
def worker():
    """A worker that has a key for the fake server in its environment and no PYPOOL_LM_* defaults."""
    started = Worker(
        "--worker-id", "21",
        extra_pythonpath=[str(REPO_FIXTURES_DIR)],
        env=dict(NO_LM_ENV, **{KEY_ENV: KEY}),
    )
    yield started
    started.close_stdin()
    assert started.wait() == 0, started.stderr.text()
    started.stop()


def run(worker, program_id, inputs, definition=None, version="1"):
    args = {"program_id": program_id, "version": version, "inputs": inputs}
    if definition is not None:
        args["definition"] = definition
    return worker.call("pypool.run_program", **args)


def ok(reply):
    assert reply["status"] == "ok", reply
    return reply["result"]


def error(reply):
    assert reply["status"] == "error", reply
    return reply["error"]


def test_predict_asks_the_lm_once_and_returns_the_typed_outputs(worker, fake_openai):
    before = fake_openai.requests()
    definition = dspy_program("question: str -> answer: str, confidence: float", lm=lm(fake_openai.api_base))
    result = ok(run(worker, "qa-predict", {"question": "What is pypool?"}, definition))
    assert result == {"answer": "echo: What is pypool?", "confidence": 0.5}
    stats = fake_openai.get("/stats")
    assert stats["requests"] == before + 1
    assert stats["last_authorization"] == "Bearer " + KEY  # read from the variable api_key_env names


def test_chain_of_thought_adds_reasoning(worker, fake_openai):
    definition = dspy_program(
        "question: str, context: list[str] -> answer: str",
        module="ChainOfThought",
        instructions="Answer from the context.",
        lm=lm(fake_openai.api_base),
    )
    result = ok(run(worker, "qa-cot", {"question": "Why?", "context": ["because"]}, definition))
    assert result == {"reasoning": "reasoning about: Why?", "answer": "echo: Why?"}


def test_a_cached_dspy_program_runs_without_its_definition(worker, fake_openai):
    definition = dspy_program("question: str -> answer: str", lm=lm(fake_openai.api_base))
    assert error(run(worker, "qa-cached", {"question": "first"}))["kind"] == "program_not_cached"
    ok(run(worker, "qa-cached", {"question": "first"}, definition))
    assert ok(run(worker, "qa-cached", {"question": "second"})) == {"answer": "echo: second"}


@pytest.mark.parametrize(
    "inputs, problem",
    [
        ({"context": "c"}, "missing input 'question'"),
        ({"question": "", "context": "c"}, "input 'question' is empty"),
        ({"question": "   \n\t", "context": "c"}, "input 'question' is empty"),
        ({"question": None, "context": "c"}, "input 'question' is null"),
        ({"question": "q", "context": "c", "extra": "x"}, "unexpected input 'extra'"),
        ({}, "missing input 'context'"),
    ],
)
def test_bad_inputs_are_rejected_before_any_request_reaches_the_lm(worker, fake_openai, inputs, problem):
    definition = dspy_program("question: str, context: str -> answer: str", lm=lm(fake_openai.api_base))
    before = fake_openai.requests()
    failure = error(run(worker, "qa-validate", inputs, definition))
    assert failure["kind"] == "invalid_input"
    assert problem in failure["message"]
    assert "question, context" in failure["message"]
    failure = error(run(worker, "qa-validate", inputs))  # the cached program checks as well
    assert failure["kind"] == "invalid_input"
    assert fake_openai.requests() == before


def test_an_optional_input_may_be_null_but_must_be_present(worker, fake_openai):
    definition = dspy_program("question: str, hint: Optional[str] -> answer: str", lm=lm(fake_openai.api_base))
    assert ok(run(worker, "qa-optional", {"question": "q", "hint": None}, definition)) == {"answer": "echo: q"}
    failure = error(run(worker, "qa-optional", {"question": "q"}))
    assert "missing input 'hint'" in failure["message"]


def test_an_lm_500_is_an_error_reply_at_once_and_the_worker_keeps_serving(worker, fake_openai):
    before = fake_openai.get("/stats")
    definition = dspy_program("question: str -> answer: str", lm=lm(fake_openai.fail_api_base))
    failure = error(run(worker, "qa-fail", {"question": "q"}, definition))
    assert failure["kind"] == "python_exception"
    assert failure["exception_type"]
    assert "asked to fail" in failure["message"]
    after = fake_openai.get("/stats")
    assert after["requests"] == before["requests"] + 1  # num_retries defaults to 0
    assert after["failures"] == before["failures"] + 1
    good = dspy_program("question: str -> answer: str", lm=lm(fake_openai.api_base))
    assert ok(run(worker, "qa-after-fail", {"question": "still there?"}, good)) == {"answer": "echo: still there?"}


def test_an_api_key_in_the_definition_is_refused(worker, fake_openai):
    before = fake_openai.requests()
    definition = dspy_program("question: str -> answer: str", lm=dict(lm(fake_openai.api_base), api_key="sk-leak"))
    failure = error(run(worker, "qa-key", {"question": "q"}, definition))
    assert failure["kind"] == "invalid_input"
    assert "definition.spec.lm.api_key" in failure["message"]
    assert "sk-leak" not in failure["message"]
    assert error(run(worker, "qa-key", {"question": "q"}))["kind"] == "program_not_cached"
    assert fake_openai.requests() == before


def test_settings_supply_the_lm_unless_the_definition_has_one(worker, fake_openai):
    worker.ok("pypool.apply_settings", version=1, settings={"lm": lm(fake_openai.api_base)})
    try:
        no_lm = dspy_program("question: str -> answer: str")
        assert ok(run(worker, "qa-settings", {"question": "from settings"}, no_lm)) == {"answer": "echo: from settings"}
        failing = dspy_program("question: str -> answer: str", lm=lm(fake_openai.fail_api_base))
        assert error(run(worker, "qa-own-lm", {"question": "q"}, failing))["kind"] == "python_exception"
        # new settings apply to programs already cached
        worker.ok("pypool.apply_settings", version=2, settings={"lm": lm(fake_openai.fail_api_base)})
        assert error(run(worker, "qa-settings", {"question": "now failing"}))["kind"] == "python_exception"
    finally:
        worker.ok("pypool.apply_settings", version=3, settings={})


def test_the_environment_supplies_the_lm_last(spawn, fake_openai):
    env = {"PYPOOL_LM_MODEL": "openai/env-model", "PYPOOL_LM_API_BASE": fake_openai.api_base, "PYPOOL_LM_API_KEY_ENV": KEY_ENV, KEY_ENV: KEY}
    env_worker = spawn("--worker-id", "22", env=env)
    assert ok(run(env_worker, "qa-env", {"question": "env"}, dspy_program("question: str -> answer: str"))) == {
        "answer": "echo: env"
    }


def test_no_lm_configured_anywhere_is_an_lm_config_error_without_a_request(spawn, fake_openai):
    bare = spawn("--worker-id", "23", env=NO_LM_ENV)
    before = fake_openai.requests()
    failure = error(run(bare, "qa-nolm", {"question": "q"}, dspy_program("question: str -> answer: str")))
    assert (failure["kind"], failure["exception_type"]) == ("python_exception", "LMConfigError")
    assert "PYPOOL_LM_MODEL" in failure["message"]
    assert fake_openai.requests() == before


def test_an_unset_key_variable_is_named(spawn, fake_openai):
    keyless = spawn("--worker-id", "24", env=dict(NO_LM_ENV, **{KEY_ENV: None}))
    definition = dspy_program("question: str -> answer: str", lm=lm(fake_openai.api_base))
    failure = error(run(keyless, "qa-nokey", {"question": "q"}, definition))
    assert failure["exception_type"] == "LMConfigError"
    assert KEY_ENV in failure["message"]


@pytest.mark.parametrize(
    "spec, named",
    [
        ({"module": "NoSuchModule", "signature": "q: str -> a: str"}, "ChainOfThought"),
        ({"module": "Module", "signature": "q: str -> a: str"}, "not a dspy Module class"),
        ({"module": "Signature", "signature": "q: str -> a: str"}, "not a dspy Module class"),
        ({"module": "Predict", "signature": "q: str"}, "spec.signature"),
        ({"module": "Predict", "signature": "q: NoSuchType -> a: str"}, "NoSuchType"),
        ({"module": "Predict"}, "signature"),
        ({"module": "Predict", "signature": "q: str -> a: str", "state": {"nonsense": 1}}, "spec.state"),
        ({"module": "Predict", "signature": "q: str -> a: str", "lm": {"model": 3}}, "definition.spec.lm.model"),
        ({"module": "Predict", "signature": "q: str -> a: str", "instruction": "typo"}, "instruction"),
        ({"module": "Predict", "signature": "config: str -> a: str"}, "reserved"),
    ],
)
def test_a_dspy_definition_that_cannot_be_built_is_invalid_arguments(worker, spec, named):
    failure = error(run(worker, "qa-bad", {"q": "x"}, {"kind": "dspy", "spec": spec}))
    assert failure["kind"] == "invalid_arguments"
    assert named in failure["message"]


def test_dspy_is_imported_on_first_use_or_at_start_with_preload(spawn, fake_openai):
    lazy = spawn("--worker-id", "25", env=dict(NO_LM_ENV, **{KEY_ENV: KEY}))
    assert lazy.ok("info")["dspy_loaded"] is False
    ok(run(lazy, "qa-lazy", {"question": "q"}, dspy_program("question: str -> answer: str", lm=lm(fake_openai.api_base))))
    assert lazy.ok("info")["dspy_loaded"] is True
    eager = spawn("--worker-id", "26", "--preload", "dspy")
    assert eager.ok("info")["dspy_loaded"] is True


# -- dspy_definition ------------------------------------------------------------------------------


def _fields(signature):
    from pypool_worker.programs import dspy_types

    return {
        group: [(name, dspy_types.annotation_text(field.annotation)) for name, field in getattr(signature, group).items()]
        for group in ("input_fields", "output_fields")
    }


def _predictors(module):
    return {name: predictor for name, predictor in module.named_predictors()}


TYPED = (
    "question: str, context: list[str], limit: Optional[int], mode: Literal['short', 'long'] "
    "-> answer: str, confidence: float, tags: dict[str, list[int]]"
)


@pytest.mark.parametrize("module_name", ["Predict", "ChainOfThought"])
def test_dspy_definition_round_trips_names_types_instructions_and_demos(module_name):
    import dspy

    from pypool_worker.programs import dspy_definition, dspy_kind

    original = getattr(dspy, module_name)(dspy.Signature(TYPED, "Answer with care."))
    for predictor in _predictors(original).values():
        predictor.demos = [dspy.Example(question="q0", answer="a0")]
    definition = json.loads(json.dumps(dspy_definition(original)))  # it must travel as JSON
    assert definition["kind"] == "dspy"
    spec = definition["spec"]
    assert spec["module"] == module_name
    assert spec["signature"] == TYPED
    assert spec["instructions"] == "Answer with care."

    rebuilt = dspy_kind.build(spec, "round trip").module
    assert type(rebuilt) is type(original)
    before, after = _predictors(original), _predictors(rebuilt)
    assert list(before) == list(after)
    for name in before:
        assert _fields(after[name].signature) == _fields(before[name].signature)
        assert after[name].signature.instructions == "Answer with care."
        assert [dict(demo) for demo in after[name].demos] == [{"question": "q0", "answer": "a0"}]
    types = dict(_fields(after[list(after)[0]].signature)["input_fields"])
    assert types == {"question": "str", "context": "list[str]", "limit": "Optional[int]", "mode": "Literal['short', 'long']"}


def test_dspy_definition_drops_a_saved_lm():
    import dspy

    from pypool_worker.programs import dspy_definition

    module = dspy.Predict("question: str -> answer: str")
    module.lm = dspy.LM("openai/some-model", api_base="http://127.0.0.1:9/v1", cache=False)
    assert module.dump_state()["lm"] is not None
    assert dspy_definition(module)["spec"]["state"]["lm"] is None


def test_dspy_definition_refuses_modules_it_cannot_describe():
    import dspy

    from pypool_worker.programs import dspy_definition

    class Pipeline(dspy.Module):
        def __init__(self):
            super().__init__()
            self.first = dspy.Predict("a -> b")

    with pytest.raises(ValueError, match="Pipeline"):
        dspy_definition(Pipeline())


def test_a_definition_from_dspy_definition_runs_on_a_worker(worker, fake_openai):
    import dspy

    from pypool_worker.programs import dspy_definition

    definition = dspy_definition(dspy.ChainOfThought("question: str, context: list[str] -> answer: str"))
    definition["spec"]["lm"] = lm(fake_openai.api_base)
    result = ok(run(worker, "qa-exported", {"question": "exported?", "context": ["yes"]}, definition))
    assert result == {"reasoning": "reasoning about: exported?", "answer": "echo: exported?"}

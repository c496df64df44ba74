"""DSPy as its users write it, through a real worker: custom module classes
with optimized state (round trip: optimize in-process, save the state, run it
through the worker, identical outputs), inputs checked against ``forward``
before any LM call, LM usage beside every result, and output fields streamed
token by token (``dspy.streamify``) from an SSE-speaking fake LM.

Skipped only when DSPy is not importable (the project's .venv installs it).
"""

import importlib.util
import json
import os
import sys

import pytest

from harness import PYTHON_DIR, REPO_FIXTURES_DIR, FakeOpenAI, Worker

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("dspy") is None,
    reason="DSPy is not installed in this Python; install it with pip install -e 'python[dspy]'",
)

KEY_ENV = "PYPOOL_TEST_FAKE_KEY"
KEY = "sk-fake-test-key"
NO_LM_ENV = {"PYPOOL_LM_MODEL": None, "PYPOOL_LM_API_BASE": None, "PYPOOL_LM_API_KEY_ENV": None}
CORPUS = [
    "pypool runs a pool of python worker processes",
    "dspy programs call language models",
    "rust hosts supervise workers and restart them",
    "streams carry chunks under credit",
    "a worker answers every request exactly once",
]


def lm(api_base):
    return {"model": "openai/fake-model", "api_base": api_base, "api_key_env": KEY_ENV}


def rag_definition(api_base, state=None, **spec):
    spec = dict(spec, module="dspy_modules:Rag", args={"corpus": CORPUS, "k": 2}, lm=lm(api_base))
    if state is not None:
        spec["state"] = state
    return {"kind": "dspy", "spec": spec}


@pytest.fixture(scope="module")
def worker():
    started = Worker(
        "--worker-id", "31",
        extra_pythonpath=[str(REPO_FIXTURES_DIR)],
        env=dict(NO_LM_ENV, **{KEY_ENV: KEY}),
    )
    yield started
    started.close_stdin()
    assert started.wait() == 0, started.stderr.text()
    started.stop()


@pytest.fixture(scope="module")
def sse_lm():
    """python/bench/fake_lm.py answering streamed completions token by token (first token after 50 ms)."""
    server = FakeOpenAI(PYTHON_DIR / "bench" / "fake_lm.py", ["--latency-ms", "0", "--first-token-ms", "50"])
    yield server
    assert server.stop() == 0, server.stderr.text()


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


def _in_process_dspy():
    if str(REPO_FIXTURES_DIR) not in sys.path:
        sys.path.insert(0, str(REPO_FIXTURES_DIR))
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import dspy

    return dspy


# -- LM usage -----------------------------------------------------------------


def test_every_dspy_run_reports_its_lm_usage_beside_the_result(worker, fake_openai):
    definition = {"kind": "dspy", "spec": {"module": "ChainOfThought", "signature": "question: str -> answer: str",
                                           "lm": lm(fake_openai.api_base)}}
    reply = run(worker, "usage-cot", {"question": "How many calls?"}, definition)
    assert ok(reply) == {"reasoning": "reasoning about: How many calls?", "answer": "echo: How many calls?"}
    usage = reply["usage"]
    assert usage["calls"] == 1
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] >= usage["prompt_tokens"] + usage["completion_tokens"] - 1  # the server rounds
    assert usage["cost"] is None, "LiteLLM has no price for a fake model"
    assert usage["models"]["openai/fake-model"]["calls"] == 1
    # A custom module calling its predictor once per run reports the same way.
    reply = run(worker, "usage-rag", {"question": "what do streams carry"}, rag_definition(fake_openai.api_base))
    assert reply["usage"]["calls"] == 1
    # A python program reports no usage: the reply is as before.
    reply = run(worker, "usage-py", {"name": "Ada"}, {"kind": "python", "spec": {"callable": "programs_basic:greet"}})
    assert "usage" not in reply


def test_usage_summary_prices_a_model_litellm_knows():
    _in_process_dspy()
    from pypool_worker.programs.dspy_kind import usage_summary

    known = usage_summary({"openai/gpt-4o-mini": [{"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}]})
    assert known["calls"] == 1 and known["total_tokens"] == 1100
    assert known["cost"] is not None and known["cost"] > 0
    mixed = usage_summary({
        "openai/gpt-4o-mini": [{"prompt_tokens": 10, "completion_tokens": 1}],
        "openai/not-a-real-model": [{"prompt_tokens": 10, "completion_tokens": 1}, {"prompt_tokens": 5, "completion_tokens": 2}],
    })
    assert mixed["calls"] == 3 and mixed["prompt_tokens"] == 25 and mixed["completion_tokens"] == 4
    assert mixed["cost"] is None, "one unpriced model makes the total unknown"
    assert mixed["models"]["openai/gpt-4o-mini"]["cost"] is not None
    assert usage_summary({}) == {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
                                 "cost": None, "models": {}}


# -- custom modules -------------------------------------------------------------


def test_a_custom_module_runs_with_its_constructor_arguments(worker, fake_openai):
    result = ok(run(worker, "rag", {"question": "what do streams carry"}, rag_definition(fake_openai.api_base)))
    assert result["answer"] == "echo: what do streams carry"
    assert result["context"] == ["streams carry chunks under credit", "a worker answers every request exactly once"]
    assert result["style"] == "short" and result["demos"] == 0


def test_custom_module_inputs_are_checked_against_forward_before_any_lm_call(worker, fake_openai):
    definition = rag_definition(fake_openai.api_base)
    ok(run(worker, "rag-check", {"question": "warm up"}, definition))
    before = fake_openai.requests()
    for inputs, expected in [
        ({}, "missing input 'question'"),
        ({"question": "q", "colour": "red"}, "unexpected input 'colour'"),
        ({"question": "  "}, "input 'question' is empty"),
        ({"question": None}, "input 'question' is null"),
    ]:
        failure = error(run(worker, "rag-check", inputs))
        assert failure["kind"] == "invalid_input", failure
        assert expected in failure["message"] and "it takes: question, style" in failure["message"], failure
    assert fake_openai.requests() == before, "no invalid input reached the LM"


def test_a_declared_signature_checks_a_custom_modules_inputs(worker, fake_openai):
    definition = rag_definition(fake_openai.api_base, signature="question: str -> answer: str")
    failure = error(run(worker, "rag-declared", {"question": "q", "style": "long"}, definition))
    assert failure["kind"] == "invalid_input" and "unexpected input 'style'" in failure["message"]


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"module": "dspy_modules:NotAModule"}, "is not a dspy.Module subclass"),
        ({"module": "dspy_modules:Missing"}, "has no attribute 'Missing'"),
        ({"module": "no_such_package.mod:Rag"}, "cannot import module 'no_such_package.mod'"),
        ({"module": "dspy_modules:Rag", "args": {"nope": 1}}, "Rag(**spec.args) failed"),
        ({"module": "dspy_modules:Rag", "args": {"corpus": []}, "state": {"generate.predict": {"demos": "x"}}},
         "spec.state does not fit"),
        ({"module": "Predict", "signature": "q -> a", "args": {"x": 1}}, "spec.args is only for a custom module"),
        ({"module": "dspy_modules:Rag", "args": {"corpus": []}, "stream": ["nope"], "signature": "question -> answer"},
         "spec.stream names 'nope'"),
    ],
)
def test_a_custom_module_that_cannot_be_built_is_an_invalid_arguments_error(worker, spec, expected):
    failure = error(run(worker, "rag-bad", {"question": "q"}, {"kind": "dspy", "spec": spec}, version=expected[:20]))
    assert failure["kind"] == "invalid_arguments", failure
    assert expected in failure["message"], failure


def test_an_optimized_program_round_trips_through_the_worker_with_identical_outputs(worker, fake_openai):
    dspy = _in_process_dspy()
    import dspy_modules
    from pypool_worker.programs.dspy_kind import _prediction_fields

    language_model = dspy.LM("openai/fake-model", api_base=fake_openai.api_base, api_key=KEY, cache=False)
    trainset = [
        dspy.Example(question=question, answer="echo: " + question).with_inputs("question")
        for question in ("what runs python workers", "who restarts workers", "what do dspy programs call",
                         "how are requests answered")
    ]
    student = dspy_modules.Rag(corpus=CORPUS, k=2)
    optimizer = dspy.BootstrapFewShot(metric=lambda example, prediction, trace=None: True,
                                      max_bootstrapped_demos=2, max_labeled_demos=2)
    with dspy.context(lm=language_model):
        optimized = optimizer.compile(student, trainset=trainset)
    state = json.loads(json.dumps(optimized.dump_state()))  # it travels as JSON
    assert len(optimized.generate.predict.demos) == 2

    questions = ["question %d about %s" % (n, CORPUS[n % len(CORPUS)].split()[0]) for n in range(50)]
    with dspy.context(lm=language_model):
        expected = [_prediction_fields(optimized(question=q)) for q in questions]
        unoptimized = _prediction_fields(dspy_modules.Rag(corpus=CORPUS, k=2)(question=questions[0]))
    assert unoptimized != expected[0], "the optimized state changes the outputs (demos), or this test proves nothing"

    definition = rag_definition(fake_openai.api_base, state=state)
    through_worker = [ok(run(worker, "rag-optimized", {"question": q}, definition if n == 0 else None))
                      for n, q in enumerate(questions)]
    assert through_worker == expected
    assert all(result["demos"] == 2 for result in through_worker)


# -- streaming ------------------------------------------------------------------


def _stream_program(worker, request_id, definition, inputs, credit=64):
    worker.send({"type": "stream_request", "id": request_id, "command": "pypool.run_program", "credit": credit,
                 "args": {"program_id": "streamed-%d" % request_id, "version": "1", "inputs": inputs,
                          "definition": definition}})
    chunks = []
    while True:
        frame = worker.recv()
        assert frame["id"] == request_id, frame
        if frame["type"] == "reply":
            return chunks, frame
        assert frame["type"] == "chunk" and frame["seq"] == len(chunks), frame
        chunks.append(frame["data"])


def test_a_dspy_program_streams_its_output_field_token_by_token(worker, sse_lm):
    definition = {"kind": "dspy", "spec": {"module": "Predict", "signature": "question: str -> answer: str",
                                           "lm": lm(sse_lm.api_base)}}
    chunks, reply = _stream_program(worker, 501, definition, {"question": "stream me"})
    assert reply["status"] == "ok", reply
    answer = reply["result"]["answer"]
    assert answer.startswith("fake answer")
    assert len(chunks) >= 2, "the answer arrived in several tokens: %r" % chunks
    assert {chunk["field"] for chunk in chunks} == {"answer"}
    assert "".join(chunk["chunk"] for chunk in chunks).strip() == answer
    assert reply["usage"]["calls"] == 1
    # The cached program streams again (DSPy's stream listeners are single-use).
    worker.send({"type": "stream_request", "id": 503, "command": "pypool.run_program", "credit": 64,
                 "args": {"program_id": "streamed-501", "version": "1", "inputs": {"question": "once more"}}})
    again = []
    while True:
        frame = worker.recv()
        if frame["type"] == "reply":
            break
        again.append(frame["data"]["chunk"])
    assert frame["status"] == "ok", frame
    assert len(again) >= 2 and "".join(again).strip() == frame["result"]["answer"], (again, frame)
    # The same program without streaming: one plain reply.
    plain = run(worker, "streamed-501", {"question": "again"}, None)
    assert ok(plain)["answer"].startswith("fake answer")


def test_a_custom_module_streams_the_fields_its_spec_names(worker, sse_lm):
    definition = rag_definition(sse_lm.api_base, stream=["answer"])
    chunks, reply = _stream_program(worker, 502, definition, {"question": "what do streams carry"})
    assert reply["status"] == "ok", reply
    assert "".join(chunk["chunk"] for chunk in chunks).strip() == reply["result"]["answer"]
    assert {chunk["predictor"] for chunk in chunks} == {"generate.predict"}

"""pypool.run_program with python programs (tests/fixtures/programs_basic.py), end to end."""

import pytest

from harness import FIXTURES_DIR, REPO_FIXTURES_DIR


def python_program(function):
    return {"kind": "python", "spec": {"callable": "programs_basic:%s" % function}}


@pytest.fixture
def worker(spawn):
    return spawn("--worker-id", "12", extra_pythonpath=[str(REPO_FIXTURES_DIR)])


def run(worker, program_id, version, inputs, definition=None):
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


def test_an_uncached_program_without_a_definition_is_program_not_cached(worker):
    failure = error(run(worker, "greeter", "1", {"name": "Ada"}))
    assert failure["kind"] == "program_not_cached"
    assert "'greeter'" in failure["message"] and "'1'" in failure["message"]


def test_a_definition_builds_caches_and_runs_then_the_cache_serves_without_it(worker):
    assert ok(run(worker, "greeter", "1", {"name": "Ada"}, python_program("greet"))) == "Hello, Ada!"
    assert worker.ok("info")["programs_cached"] == 1
    assert ok(run(worker, "greeter", "1", {"name": "Bob", "punctuation": "?"})) == "Hello, Bob?"
    assert ok(worker.call("pypool.run_program", program_id="greeter", version="1", definition=None, inputs={"name": "C"})) == "Hello, C!"


def test_a_new_version_rebuilds_and_evicts_the_old_one(worker):
    ok(run(worker, "tool", "1", {"name": "Ada"}, python_program("greet")))
    assert ok(run(worker, "tool", "2", {"text": "one two three", "max_words": 2}, python_program("summarise"))) == {
        "summary": "one two",
        "words": 3,
    }
    assert error(run(worker, "tool", "1", {"name": "Ada"}))["kind"] == "program_not_cached"
    assert ok(run(worker, "tool", "2", {"text": "a b c d e f g"})) == {"summary": "a b c d e", "words": 7}
    assert worker.ok("info")["programs_cached"] == 1


def test_resending_a_definition_rebuilds_the_same_version(worker):
    ok(run(worker, "p", "1", {"name": "Ada"}, python_program("greet")))
    assert ok(run(worker, "p", "1", {"a": 2, "b": 3}, python_program("add"))) == 5
    assert ok(run(worker, "p", "1", {"a": 1, "b": 1})) == 2


def test_the_cache_is_a_bounded_lru(spawn):
    worker = spawn("--worker-id", "13", "--program-cache", "2", extra_pythonpath=[str(REPO_FIXTURES_DIR)])
    assert worker.ok("info")["program_cache_capacity"] == 2
    ok(run(worker, "a", "1", {"name": "a"}, python_program("greet")))
    ok(run(worker, "b", "1", {"name": "b"}, python_program("greet")))
    ok(run(worker, "a", "1", {"name": "a again"}))  # b is now the least recently used
    ok(run(worker, "c", "1", {"name": "c"}, python_program("greet")))
    assert worker.ok("info")["programs_cached"] == 2
    assert error(run(worker, "b", "1", {"name": "b"}))["kind"] == "program_not_cached"
    assert ok(run(worker, "a", "1", {"name": "a"})) == "Hello, a!"
    assert ok(run(worker, "c", "1", {"name": "c"})) == "Hello, c!"


def test_a_missing_input_is_invalid_input_naming_it(worker):
    failure = error(run(worker, "g", "1", {"punctuation": "."}, python_program("greet")))
    assert failure["kind"] == "invalid_input"
    assert "missing input 'name'" in failure["message"]
    assert "name, punctuation" in failure["message"]


def test_an_unexpected_input_is_invalid_input_naming_it(worker):
    failure = error(run(worker, "g", "1", {"name": "Ada", "nmae": "typo"}, python_program("greet")))
    assert failure["kind"] == "invalid_input"
    assert "unexpected input 'nmae'" in failure["message"]


def test_absent_inputs_mean_no_inputs(worker):
    failure = error(worker.call("pypool.run_program", program_id="g", version="1", definition=python_program("greet")))
    assert failure["kind"] == "invalid_input" and "'name'" in failure["message"]


def test_a_raising_program_is_python_exception_and_the_worker_keeps_serving(worker):
    failure = error(run(worker, "f", "1", {"message": "no luck"}, python_program("fail")))
    assert failure["kind"] == "python_exception"
    assert failure["exception_type"] == "ValueError"
    assert failure["message"] == "no luck"
    assert "programs_basic.py" in failure["traceback"]
    assert ok(run(worker, "f2", "1", {"a": 1, "b": 2}, python_program("add"))) == 3
    assert worker.ok("ping")["pong"] is True


@pytest.mark.parametrize(
    "callable_path, named",
    [
        ("programs_basic.greet", "package.module:function"),
        ("no_such_module_xyz:greet", "no_such_module_xyz"),
        ("programs_basic:no_such_function", "no_such_function"),
        ("programs_basic:__doc__", "not a function"),
        (42, "package.module:function"),
    ],
)
def test_a_definition_that_cannot_be_built_is_invalid_arguments(worker, callable_path, named):
    definition = {"kind": "python", "spec": {"callable": callable_path}}
    failure = error(run(worker, "bad", "1", {}, definition))
    assert failure["kind"] == "invalid_arguments"
    assert named in failure["message"]
    assert worker.ok("info")["programs_cached"] == 0


@pytest.mark.parametrize(
    "definition, named",
    [
        ({"kind": "ruby", "spec": {}}, "definition.kind"),
        ({"kind": "python"}, "definition.spec"),
        ({"kind": "python", "spec": {"callable": "programs_basic:greet", "calable": "x"}}, "calable"),
        ({"kind": "python", "spec": {}}, "callable"),
        ("programs_basic:greet", "definition"),
    ],
)
def test_a_malformed_definition_is_invalid_arguments(worker, definition, named):
    failure = error(run(worker, "bad", "1", {}, definition))
    assert failure["kind"] == "invalid_arguments"
    assert named in failure["message"]


@pytest.mark.parametrize(
    "args, named",
    [
        ({"version": "1", "inputs": {}}, "program_id"),
        ({"program_id": "p", "inputs": {}}, "version"),
        ({"program_id": "", "version": "1"}, "program_id"),
        ({"program_id": "p", "version": 1}, "version"),
        ({"program_id": "p", "version": "1", "inputs": ["x"]}, "inputs"),
    ],
)
def test_malformed_request_arguments_are_invalid_arguments(worker, args, named):
    failure = error(worker.call("pypool.run_program", **args))
    assert failure["kind"] == "invalid_arguments"
    assert named in failure["message"]


def test_an_api_key_in_a_definition_is_refused(worker):
    definition = {"kind": "python", "spec": {"callable": "programs_basic:greet"}, "api_key": "sk-secret"}
    failure = error(run(worker, "g", "1", {"name": "Ada"}, definition))
    assert failure["kind"] == "invalid_input"
    assert "definition.api_key" in failure["message"] and "sk-secret" not in failure["message"]


def test_python_programs_never_import_dspy(worker):
    ok(run(worker, "g", "1", {"name": "Ada"}, python_program("greet")))
    error(run(worker, "f", "1", {"message": "x"}, python_program("fail")))
    assert ok(run(worker, "probe", "1", {}, python_program("dspy_imported"))) is False
    assert worker.ok("info")["dspy_loaded"] is False


BROKEN_DSPY = str(FIXTURES_DIR / "broken_dspy")


def test_a_dspy_definition_without_an_importable_dspy_is_invalid_arguments(spawn):
    worker = spawn("--worker-id", "14", extra_pythonpath=[BROKEN_DSPY, str(REPO_FIXTURES_DIR)])
    definition = {"kind": "dspy", "spec": {"module": "Predict", "signature": "question: str -> answer: str"}}
    failure = error(run(worker, "qa", "1", {"question": "q"}, definition))
    assert failure["kind"] == "invalid_arguments"
    assert "simulated: this dspy cannot be imported" in failure["message"]
    assert "pypool-worker[dspy]" in failure["message"]
    assert ok(run(worker, "g", "1", {"name": "Ada"}, python_program("greet"))) == "Hello, Ada!"


def test_preload_of_an_unimportable_dspy_is_a_startup_error(spawn):
    worker = spawn("--worker-id", "15", "--preload", "dspy", extra_pythonpath=[BROKEN_DSPY], read_handshake=False)
    frame = worker.recv()
    assert frame["type"] == "startup_error" and frame["kind"] == "handler_import"
    assert "cannot preload dspy" in frame["message"] and "simulated" in frame["message"]
    assert worker.wait() == 78


def test_preload_accepts_only_known_libraries(spawn):
    worker = spawn("--worker-id", "16", "--preload", "numpy", read_handshake=False)
    frame = worker.recv()
    assert frame["type"] == "startup_error" and frame["kind"] == "bad_arguments"
    assert "--preload" in frame["message"]
    assert worker.wait() == 2


def run_in(worker, namespace, program_id, version, inputs, definition=None):
    args = {"namespace": namespace, "program_id": program_id, "version": version, "inputs": inputs}
    if definition is not None:
        args["definition"] = definition
    return worker.call("pypool.run_program", **args)


def test_a_definition_cached_for_one_namespace_never_runs_for_another(worker):
    assert ok(run_in(worker, "session:a", "secret", "v1", {"name": "Ada"}, python_program("greet"))) == "Hello, Ada!"
    # Another namespace asking for the same id and version gets no hit, and learns nothing.
    failure = error(run_in(worker, "session:b", "secret", "v1", {"name": "Eve"}))
    assert failure["kind"] == "program_not_cached"
    # Planting another definition under the same id and version in b leaves a's intact.
    assert ok(run_in(worker, "session:b", "secret", "v1", {"a": 1, "b": 2}, python_program("add"))) == 3
    assert ok(run_in(worker, "session:a", "secret", "v1", {"name": "Ada"})) == "Hello, Ada!"
    assert worker.ok("info")["programs_cached"] == 2


def test_program_not_cached_reveals_no_cached_version(worker):
    ok(run_in(worker, "session:a", "secret", "9f1c2e0a4b7d3c55", {"name": "Ada"}, python_program("greet")))
    for namespace in ("session:a", "session:b"):
        failure = error(run_in(worker, namespace, "secret", "guess", {"name": "Eve"}))
        assert failure["kind"] == "program_not_cached"
        assert "9f1c2e0a4b7d3c55" not in failure["message"], failure["message"]
        assert "session:a" not in failure["message"] or namespace == "session:a"


@pytest.mark.parametrize("namespace", ["", 7, None])
def test_a_malformed_namespace_is_invalid_arguments(worker, namespace):
    failure = error(worker.call("pypool.run_program", namespace=namespace, program_id="p", version="1", inputs={}))
    assert failure["kind"] == "invalid_arguments" and "namespace" in failure["message"]


def test_the_allowed_modules_refuse_other_callables_before_importing_them(spawn):
    worker = spawn(
        "--worker-id", "13",
        extra_pythonpath=[str(REPO_FIXTURES_DIR)],
        env={"PYPOOL_ALLOWED_PROGRAM_MODULES": "programs_basic, my_pkg.tools"},
    )
    assert ok(run(worker, "greeter", "1", {"name": "Ada"}, python_program("greet"))) == "Hello, Ada!"
    for callable_path in ("os:system", "subprocess:run", "programs_basicx:greet", "my_pkg:thing"):
        failure = error(run(worker, "evil", "1", {}, {"kind": "python", "spec": {"callable": callable_path}}))
        assert failure["kind"] == "invalid_arguments", failure
        assert "not allowed" in failure["message"] and "programs_basic, my_pkg.tools" in failure["message"]

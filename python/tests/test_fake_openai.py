"""tests/fixtures/fake_openai.py, which the DSPy tests here and the Rust integration tests rely on."""

import signal
import subprocess

from harness import TIMEOUT, FakeOpenAI

SYSTEM = (
    "Your input fields are:\n1. `question` (str): \nYour output fields are:\n"
    "1. `reasoning` (str): \n2. `answer` (str): \n3. `score` (float):\n"
    "All interactions will be structured in the following way, with the appropriate values filled in.\n\n"
    "[[ ## question ## ]]\n{question}\n\n[[ ## reasoning ## ]]\n{reasoning}\n\n[[ ## answer ## ]]\n{answer}\n\n"
    "[[ ## score ## ]]\n{score}\n\n[[ ## completed ## ]]\n"
)
USER = (
    "[[ ## question ## ]]\nWhat is pypool?\n\nRespond with the corresponding output fields, starting with the "
    "field `[[ ## reasoning ## ]]`, then `[[ ## answer ## ]]`, then `[[ ## score ## ]]`, and then ending with "
    "the marker for `[[ ## completed ## ]]`."
)


def _chat(**extra):
    body = {"model": "fake", "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]}
    body.update(extra)
    return body


def test_a_completion_answers_every_output_field_in_chat_adapter_format(fake_openai):
    before = fake_openai.requests()
    status, body = fake_openai.post("/v1/chat/completions", _chat())
    assert status == 200
    assert body["object"] == "chat.completion"
    content = body["choices"][0]["message"]["content"]
    assert content == (
        "[[ ## reasoning ## ]]\nreasoning about: What is pypool?\n\n"
        "[[ ## answer ## ]]\necho: What is pypool?\n\n"
        "[[ ## score ## ]]\n0.5\n\n"
        "[[ ## completed ## ]]"
    )
    assert fake_openai.requests() == before + 1


def test_n_choices_are_returned(fake_openai):
    status, body = fake_openai.post("/v1/chat/completions", _chat(n=3))
    assert status == 200
    assert [choice["index"] for choice in body["choices"]] == [0, 1, 2]


def test_fail_paths_return_500_with_an_openai_error_and_are_counted(fake_openai):
    before = fake_openai.get("/stats")
    status, body = fake_openai.post("/fail/v1/chat/completions", _chat())
    assert status == 500
    assert body["error"]["type"] == "server_error" and body["error"]["message"]
    after = fake_openai.get("/stats")
    assert after["requests"] == before["requests"] + 1
    assert after["failures"] == before["failures"] + 1


def test_it_exits_when_stdin_closes():
    server = FakeOpenAI()
    assert server.get("/stats")["requests"] == 0
    assert server.stop() == 0


def test_it_exits_on_sigterm():
    server = FakeOpenAI()
    server.proc.send_signal(signal.SIGTERM)
    try:
        status = server.proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        raise
    finally:
        server.stop()
    assert status == 0, server.stderr.text()

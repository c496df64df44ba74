"""Pricing a DSPy run's LM usage (``usage.cost``): LiteLLM's local price map,
asked once per unknown model, imported at start by ``--preload dspy``.

The lookups are checked against a stand-in ``litellm`` module; only the
preload test needs DSPy (and is skipped without it).
"""

import importlib.util
import os
import subprocess
import sys
import types

import pytest

from harness import PYTHON_DIR, TIMEOUT
from pypool_worker.programs import dspy_kind


class FakeLiteLLM(types.ModuleType):
    """Prices the models in ``prices`` (USD per prompt and completion token); raises for others."""

    def __init__(self, prices):
        super().__init__("litellm")
        self.prices = prices
        self.lookups = []

    def cost_per_token(self, model, prompt_tokens, completion_tokens):
        self.lookups.append(model)
        if model not in self.prices:
            raise ValueError("model %s isn't mapped yet" % model)
        prompt_price, completion_price = self.prices[model]
        return prompt_price * prompt_tokens, completion_price * completion_tokens


@pytest.fixture
def fake_litellm(monkeypatch):
    fake = FakeLiteLLM({"openai/priced": (0.5, 0.25)})
    monkeypatch.setitem(sys.modules, "litellm", fake)
    monkeypatch.setattr(dspy_kind, "_pricing", {})
    monkeypatch.setattr(dspy_kind, "_unpriced", set())
    return fake


def test_an_unpriced_model_is_looked_up_once_per_process(fake_litellm):
    assert dspy_kind._cost("openai/fake-model", 10, 5) is None
    assert dspy_kind._cost("openai/fake-model", 20, 7) is None
    assert fake_litellm.lookups == ["openai/fake-model"]
    assert dspy_kind._cost("private/other", 1, 1) is None
    assert fake_litellm.lookups == ["openai/fake-model", "private/other"]


def test_a_priced_model_is_priced_on_every_call(fake_litellm):
    assert dspy_kind._cost("openai/priced", 2, 4) == 2.0
    assert dspy_kind._cost("openai/priced", 4, 4) == 3.0
    assert fake_litellm.lookups == ["openai/priced", "openai/priced"]
    summary = dspy_kind.usage_summary({"openai/priced": [{"prompt_tokens": 2, "completion_tokens": 4}]})
    assert summary["cost"] == 2.0


def test_the_memory_of_unpriced_models_is_bounded(fake_litellm, monkeypatch):
    monkeypatch.setattr(dspy_kind, "UNPRICED_MODELS_REMEMBERED", 2)
    for name in ("a", "b", "c"):
        assert dspy_kind._cost(name, 1, 1) is None
    assert dspy_kind._unpriced == {"a", "b"}
    assert dspy_kind._cost("c", 1, 1) is None
    assert fake_litellm.lookups == ["a", "b", "c", "c"], "a model past the bound is looked up again"


def test_without_litellm_usage_has_no_price(monkeypatch):
    monkeypatch.setitem(sys.modules, "litellm", None)  # importing it raises ImportError
    monkeypatch.setattr(dspy_kind, "_pricing", {})
    monkeypatch.setattr(dspy_kind, "_unpriced", set())
    assert dspy_kind.load_pricing() is None
    assert dspy_kind._cost("openai/gpt-4o-mini", 10, 10) is None
    assert dspy_kind.usage_summary({"openai/gpt-4o-mini": [{"prompt_tokens": 10, "completion_tokens": 10}]})["cost"] is None


@pytest.mark.skipif(
    importlib.util.find_spec("dspy") is None or importlib.util.find_spec("litellm") is None,
    reason="needs DSPy and LiteLLM (the project's .venv installs both)",
)
def test_preloading_dspy_imports_the_pricing_library_too():
    # A fresh interpreter: this test process may have imported LiteLLM already.
    code = (
        "import sys; from pypool_worker import programs; programs.preload(['dspy']); "
        "print('litellm' in sys.modules, sys.modules['litellm'] is programs.load_pricing())"
    )
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=TIMEOUT * 4)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"], out.stdout

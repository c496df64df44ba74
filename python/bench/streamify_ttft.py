"""Time to first token of a ``dspy.Predict`` answer streamed in-process with
``dspy.streamify`` (one ``StreamListener`` on ``answer``), against an
OpenAI-compatible server streaming server-sent events (``fake_lm.py``).

Usage: ``python python/bench/streamify_ttft.py API_BASE [RUNS]``; prints one
JSON line ``{"runs": n, "median_ms": m, "samples_ms": [...]}``. The baseline of
``tests/integration/examples/dspy_stream_ttft.rs``.
"""

import asyncio
import json
import os
import statistics
import sys
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy  # noqa: E402


async def first_token_ms(module, question):
    # Stream listeners serve one stream each: a fresh one per run (inside the timing, as the worker does).
    started = time.perf_counter()
    program = dspy.streamify(module, stream_listeners=[dspy.streaming.StreamListener(signature_field_name="answer")])
    first = None
    async for item in program(question=question):
        if first is None and isinstance(item, dspy.streaming.StreamResponse):
            first = (time.perf_counter() - started) * 1000.0
    return first


def main():
    api_base = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    lm = dspy.LM("openai/fake-model", api_base=api_base, api_key="sk-not-a-real-key", cache=False, num_retries=0)
    module = dspy.Predict(dspy.Signature("question: str -> answer: str", custom_types={}))
    samples = []
    with dspy.context(lm=lm, disable_history=True):
        for run in range(runs + 2):
            ms = asyncio.run(first_token_ms(module, "question %d" % run))
            if run >= 2:  # two warm-up runs
                samples.append(ms)
    print(json.dumps({"runs": runs, "median_ms": statistics.median(samples), "samples_ms": samples}))


if __name__ == "__main__":
    main()

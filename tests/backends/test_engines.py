"""Real engines behind the OpenAI-compatible backend, unmodified: llama.cpp's server
(``llama-cpp-python[server]``) serving the GGUF export of TinyReasoner, and any server
named by ``TESTTIME_OPENAI_URL`` (+ ``TESTTIME_OPENAI_MODEL``, optional
``TESTTIME_OPENAI_KEY_ENV``) that serves TinyReasoner. Each suite skips cleanly when
its engine is not there. vLLM needs a GPU: point ``TESTTIME_OPENAI_URL`` at
``vllm serve src/testtime/zoo/weights/tiny-reasoner``.

Checked through the engine: greedy outputs equal the embedded backend's (tokenizer,
weights and BOS agree), majority / best-of-N / beam / budget forcing run with the
backend adapting by itself (llama.cpp ignores ``n`` and names no stop string), beam
search finds answers (0 % before stop strings were detected client-side), and the
sampled single-sample accuracy matches the embedded backend's within noise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from testtime.backends import get_generator
from testtime.backends.base import BackendError, SamplingParams
from testtime.backends.llama_server import LlamaServer, llama_cpp_available

WEIGHTS = Path(__file__).resolve().parents[2] / "src/testtime/zoo/weights/tiny-reasoner"
pytestmark = pytest.mark.skipif(
    not (WEIGHTS / "model.safetensors").is_file(), reason="TinyReasoner weights not trained"
)


@pytest.fixture(scope="module", params=["llama.cpp", "env"])
def engine(request, tmp_path_factory):
    """(OpenAI base URL, model name, backend options) of a running engine."""
    if request.param == "env":
        url = os.environ.get("TESTTIME_OPENAI_URL")
        if not url:
            pytest.skip("set TESTTIME_OPENAI_URL (and TESTTIME_OPENAI_MODEL) to test a server")
        options = {"tokenizer": str(WEIGHTS), "num_parameters": 1_900_000}
        if os.environ.get("TESTTIME_OPENAI_KEY_ENV"):
            options["api_key_env"] = os.environ["TESTTIME_OPENAI_KEY_ENV"]
        yield url, os.environ.get("TESTTIME_OPENAI_MODEL", "tiny-reasoner"), options
        return
    if not llama_cpp_available():
        pytest.skip("llama-cpp-python[server] is not installed")
    pytest.importorskip("gguf")
    from testtime.zoo.gguf_export import export_gguf

    gguf = tmp_path_factory.mktemp("gguf") / "tiny-reasoner.gguf"
    export_gguf(WEIGHTS, gguf)
    with LlamaServer(gguf, alias="tiny") as url:
        yield url, "tiny", {"tokenizer": str(WEIGHTS)}


def remote(engine, **kw):
    url, model, options = engine
    return get_generator(f"openai:{url}", model=model, timeout=30.0, **{**options, **kw})


PROMPTS = [f"arith: {a} +{b} *{c}\n" for a, b, c in [(7, 3, 2), (12, 5, 3), (4, 9, 6), (25, 2, 4)]]


def test_greedy_outputs_equal_the_embedded_backend(engine):
    local = get_generator("embedded")
    params = SamplingParams(temperature=0, max_tokens=80)
    with remote(engine) as gen:
        got = gen.generate(PROMPTS, params)
    want = local.generate(PROMPTS, params)
    assert [r[0].text for r in got.completions] == [r[0].text for r in want.completions]
    assert got.usage.prompt_tokens == want.usage.prompt_tokens  # BOS prefilled by both


def test_strategies_run_unmodified_and_match_the_embedded_backend(engine, tmp_path):
    from testtime.scale.harness import scale
    from testtime.tasks import get_task
    from testtime.verifiers import get_verifier

    task = get_task("arith")
    verifier = get_verifier("prm", task=task)
    common = dict(
        verifier=verifier, difficulties=[2], limit=6, seed=0, show_progress=False,
        options={"temperature": 0.8, "max_tokens": 96, "seed": 0}, bootstrap=50,
    )

    def run(gen, strategies, budgets, name):
        out = scale(task, gen, strategies, budgets, tmp_path / name, **common)
        return {(r["strategy"], r["n"]): r for r in out.rows}

    with remote(engine) as gen:
        rows = run(gen, ["greedy", "majority"], [1], "single")
        rows |= run(gen, ["majority", "best-of-n", "beam"], [4], "four")
        rows |= run(gen, ["budget-forcing"], [64], "forcing")  # 64 thinking tokens
    assert rows[("beam", 4)]["accuracy"] > 0  # step stops were seen (0 % when they were not)
    assert rows[("budget-forcing", 64)]["accuracy"] > 0
    info = json.loads((tmp_path / "four" / "results.json").read_text())["config"]["backend_info"]
    assert info["prompt_tokens_from"] and info["stop_detection"] != "not needed yet"
    lrows = run(get_generator("embedded"), ["greedy", "majority"], [1], "local")
    assert rows[("greedy", 1)]["accuracy"] == lrows[("greedy", 1)]["accuracy"]
    # Sampled single-sample accuracy: different RNGs, the same distribution (6 problems,
    # 16 subsets each: a shift of 0.5 would mean the engine samples something else).
    assert abs(rows[("majority", 1)]["accuracy"] - lrows[("majority", 1)]["accuracy"]) < 0.5


def test_llama_cpp_learnt_traits(engine):
    if engine[1] != "tiny":
        pytest.skip("llama.cpp specifics")
    with remote(engine) as gen:
        res = gen.generate(PROMPTS[:1], SamplingParams(n=3, temperature=1.0, max_tokens=24,
                                                        seed=5, stop=("\n",)))
        t = gen.traits
        assert [len(r) for r in res.completions] == [3]
        assert t.n is False and t.stop_reason is not True  # stops watched client-side
        assert gen.describe()["stop_detection"].startswith("client")
        assert t.values == {"top_k": 0}  # llama-cpp-python refuses top_k=-1
        gen.generate(PROMPTS[:1], SamplingParams(temperature=0, max_tokens=8))
        assert t.stream_usage is False and t.stop_reason is False
        assert all(c.finish_reason in ("stop", "length") for c in res.completions[0])
        assert res.usage.prompt_tokens == 3 * (len(PROMPTS[0]) + 1)  # tokenizer + BOS
    # A sampling field the user set and the server rejects is an error, not dropped.
    with remote(engine, extra_body={"top_k": "many"}) as gen, pytest.raises(
        BackendError, match="refuses.*top_k"
    ):
        gen.generate(PROMPTS[:1], SamplingParams(max_tokens=2))


def test_llama_cpp_default_interrupts_are_explained_then_adapted_to(engine, tmp_path):
    if engine[1] != "tiny":
        pytest.skip("llama.cpp specifics")
    from testtime.zoo.gguf_export import export_gguf

    export_gguf(WEIGHTS, tmp_path / "m.gguf")
    params = SamplingParams(n=6, temperature=0.8, max_tokens=64, seed=1)
    with LlamaServer(tmp_path / "m.gguf", interrupt_requests=True) as url:
        opts = dict(model="tiny", split_n=True, backoff_base=0.05, tokenizer=str(WEIGHTS))
        with get_generator(f"openai:{url}", max_attempts=1, **opts) as gen, pytest.raises(
            BackendError, match="--interrupt_requests false"
        ):
            gen.generate(PROMPTS[:1], params)  # concurrent streams cut each other short
        with get_generator(f"openai:{url}", **opts) as gen:  # learnt: one request at a time
            res = gen.generate(PROMPTS[:1], params)
            assert gen.describe()["serialised"]
    assert all(c.finish_reason in ("stop", "length") for c in res.completions[0])

import json

import pytest
from typer.testing import CliRunner

from testtime.cli.main import app
from testtime.zoo import WEIGHTS_DIR, reasoner_path
from testtime.zoo.prime import PrimeConfig, parse_mix, prime

TINY = dict(steps=2, batch_size=2, warmup=1, eval_every=1, valid=(("plain", 2), ("wait", 2)), valid_problems=2,
            valid_samples=1, valid_tokens=32)


def test_parse_mix():
    assert parse_mix("verify=0.25,backtrack") == {"verify": 0.25, "backtrack": 1.0}
    assert "wait" in parse_mix(None)
    with pytest.raises(ValueError, match="name=number"):
        parse_mix("verify=lots")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--behaviours", "verify,reflect"], "valid: backtrack, backward"),
        (["--task", "jsonl"], "valid: arith, countdown, mul"),
        (["--out", str(WEIGHTS_DIR / "tiny-reasoner")], "never writes over"),
        (["--model", "/nonexistent/model"], "no Hugging Face model"),
        (["--model", "scratch", "--lora"], "untrained start"),
    ],
)
def test_bad_input_fails_before_training(tmp_path, args, message):
    result = CliRunner().invoke(app, ["zoo", "prime", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "o").exists()  # nothing trained, nothing written


def test_prime_resumes_and_exports(tmp_path):
    if not (reasoner_path() / "config.json").exists():
        pytest.skip("TinyReasoner weights are not shipped in this checkout")
    out = tmp_path / "primed"
    prime(out, mix={"backtrack": 1.0}, families={"arith": (1.0, (2,))}, config=PrimeConfig(**TINY))
    info = json.loads((out / "training.json").read_text())
    assert info["steps_trained"] == 2 and len(info["history"]) == 2
    assert (out / "model.safetensors").exists() and "backtrack 100%" in (out / "README.md").read_text()
    # extend the same run by two steps: it continues from the checkpoint
    more = prime(out, mix={"backtrack": 1.0}, families={"arith": (1.0, (2,))},
                 config=PrimeConfig(**{**TINY, "steps": 4}), resume=True)
    assert [h["step"] for h in more["history"]] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="another run"):
        prime(out, mix={"verify": 1.0}, families={"arith": (1.0, (2,))}, config=PrimeConfig(**TINY), resume=True)


def test_prime_from_scratch_starts_untrained(tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "scratch"
    info = prime(out, model="scratch", mix={"wait": 1.0}, families={"arith": (1.0, (2,))},
                 config=PrimeConfig(**TINY))
    assert info["model"] == "scratch" and info["parameters"] < 2_500_000
    net = AutoModelForCausalLM.from_pretrained(str(out))
    shipped = json.loads((reasoner_path() / "config.json").read_text()) if (reasoner_path() / "config.json").exists() else None
    assert net.config.n_layer == 4 and (shipped is None or net.config.vocab_size == shipped["vocab_size"])
    assert "Trained from an untrained `scratch` start" in (out / "README.md").read_text()
    assert (out / "special_tokens_map.json").exists()

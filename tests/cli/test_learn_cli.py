"""`testtime learn`: --list, clear one-line errors for bad input, a tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from inprocess_cli import run_cli
from transformers import GPT2Config, GPT2LMHeadModel

from testtime.zoo.tokenizer import build_tokenizer

METHODS = ["dco", "dynamic-cheatsheet", "ettrl", "latentseek", "rerouting", "spine", "state-tuning",
           "system1-rl", "system2-rl", "timehc-rl", "tt-si", "ttrl"]


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture()
def cli(capsys):
    """Runs `testtime learn ...` in this process (the CLI's own error handling
    included), on one torch thread."""

    def run(*args: str) -> Result:
        return Result(*run_cli(capsys, "learn", *args))

    return run


def save_tiny(path: Path, n_positions: int) -> Path:
    tok = build_tokenizer()
    torch.manual_seed(0)
    GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tok), n_positions=n_positions, n_embd=16, n_layer=1, n_head=2,
                   bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    ).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny"), 128)


def test_list_prints_exactly_the_method_names(cli):
    res = cli("--list")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [*METHODS, "lpn"]  # lpn: its own command (cli/lpn.py)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ttlr", "--out", "x"], "unknown learn method 'ttlr'; valid: dco,"),
        (["ttrl"], "give --out"),
        ([], "give a method name"),
        (["ttrl", "--out", "x", "--split", "hard"], "--split must look like"),
        (["ttrl", "--out", "x", "-o", "n_vote=3"], "ttrl has no option 'n_vote'"),
        (["ttrl", "--out", "x", "-o", "steps"], "KEY=VALUE"),
        (["ttrl", "--out", "x", "--task", "sudoku"], "unknown task 'sudoku'"),
        # options after the method are the method's (the README's `learn dco --objective dco`)
        (["dco", "--out", "x", "--objective", "nope"], "objective must be one of"),
        (["ttrl", "--out", "x", "--steps"], "steps must be a positive integer"),
    ],
)
def test_bad_input_is_one_clear_line(cli, args, message, model_dir):
    res = cli(*args, "--model", str(model_dir))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr


def test_a_task_without_a_generator_is_refused_before_training(cli, model_dir, tmp_path):
    tasks = tmp_path / "mine.jsonl"
    tasks.write_text(json.dumps({"id": "a", "prompt": "2+2\n", "answer": "4"}) + "\n")
    res = cli("dco", "--task", str(tasks), "--split", "0", "--problems", "1", "--out",
               str(tmp_path / "o"), "--model", str(model_dir))
    assert res.returncode == 2 and "no generator/solver" in res.stderr
    assert not (tmp_path / "o").exists()


def test_ttrl_end_to_end_and_rerun_is_a_no_op_resume(cli, model_dir, tmp_path):
    out = tmp_path / "run"
    args = ("ttrl", "--split", "2", "--problems", "2", "--out", str(out), "--model", str(model_dir),
            "--quiet", "-o", "steps=2", "-o", "n_votes=3", "-o", "n_samples=2",
            "-o", "prompts_per_step=1", "-o", "max_tokens=16", "-o", "eval_samples=1")
    res = cli(*args)
    assert res.returncode == 0, res.stderr
    assert "pass@1" in res.stdout and (out / "model" / "model.safetensors").exists()
    first = json.loads((out / "metrics.json").read_text())
    res = cli(*args)
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "metrics.json").read_text())["before"] == first["before"]
    res = cli(*args[:-1], "eval_samples=2")  # another run's config
    assert res.returncode == 2 and "another run" in res.stderr


def test_dry_run_resolves_the_options_and_runs_nothing(cli, model_dir, tmp_path):
    res = cli("ettrl", "--split", "2-3", "--problems", "4", "--steps", "5", "--model", str(model_dir),
              "--dry-run")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("plan: ettrl on arith, 4 held-out problems (levels 2, 3)")
    # the user's value, the method's preset and the trainer's default, as the run resolves them
    assert "steps=5" in lines[1] and "rollout='tree'" in lines[1] and "n_votes=16" in lines[1]
    res = cli("ettrl", "--steps", "0", "--model", str(model_dir), "--dry-run")
    assert res.returncode == 2 and "steps must be a positive integer" in res.stderr


def test_backend_options_reach_the_curators_generator_and_in_process_methods_refuse_them(
    cli, model_dir, tmp_path
):
    out = tmp_path / "dc"
    long_model = save_tiny(tmp_path / "long", 1024)  # room for the curator's prompt
    args = ("dynamic-cheatsheet", "--split", "2", "--problems", "1", "--out", str(out), "--model",
            str(long_model), "--quiet", "-o", "mode=curator", "-o", "max_tokens=4",
            "-o", "curator_tokens=4")
    res = cli(*args, "--backend-option", "engine=nope")  # fails before DIR exists
    assert res.returncode == 2 and "unknown engine 'nope'" in res.stderr, res.stderr
    assert not out.exists()
    res = cli(*args, "--backend-option", "engine=hf", "--backend-option", "max_batch=8")
    assert res.returncode == 0, res.stderr
    res = cli(*args, "--backend-option", "engine=lean")  # the options are in the run's config
    assert res.returncode == 2 and "another run" in res.stderr
    res = cli(*args, "--backend-option", "engine=hf", "--dry-run")
    assert "backend options: engine='hf'" in res.stdout
    res = cli("ttrl", "--out", str(tmp_path / "t"), "--backend-option", "split_n=true")
    assert res.returncode == 2 and "runs its model in-process" in res.stderr
    res = cli("dynamic-cheatsheet", "--out", str(tmp_path / "e"), "--model", str(model_dir),
              "--backend-option", "engine=hf")  # mode=examples
    assert res.returncode == 2 and "apply to mode=curator" in res.stderr

import json

from typer.testing import CliRunner

from testtime.cli.main import app


def invoke(*args: str):
    return CliRunner().invoke(app, ["agent", "run", *args])


def test_agent_run_with_the_bfs_policy_reports_success_and_resumes(tmp_path):
    args = ("web", "--backend", "bfs", "--episodes", "4", "--horizon", "60",
            "--env-option", "depth=2", "--out", str(tmp_path))
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    assert "success 1.000 [1.000, 1.000] over 4 episodes" in first.output
    again = invoke(*args)
    assert again.exit_code == 0 and "stored" in again.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["summary"]["episodes"] == 4 and summary["config"]["env"]["depth"] == 2


def test_bad_input_is_a_clear_error(tmp_path):
    result = invoke("moon", "--backend", "bfs", "--out", str(tmp_path))
    assert result.exit_code != 0 and "unknown environment 'moon'" in str(result.exception)
    result = invoke("web", "--backend", "bfs", "--env-option", "depth=0", "--out", str(tmp_path))
    assert "depth must be >= 1" in str(result.exception)


def test_agent_demos_writes_the_bfs_steps(tmp_path):
    path = tmp_path / "demos.jsonl"
    result = CliRunner().invoke(app, ["agent", "demos", "web", "--episodes", "3",
                                      "--out", str(path), "--env-option", "depth=1"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert {r["seed"] for r in rows} == {10_000, 10_001, 10_002}
    assert rows[-1]["completion"].startswith(" found the code\naction: answer ")
    from testtime.zoo.tokenizer import build_tokenizer

    tok = build_tokenizer()  # the embedded model can write every completion character
    assert all(tok.unk_token_id not in tok.encode(r["completion"]) for r in rows)


def test_agent_train_runs_tti_and_refuses_unknown_options(tiny_model, tmp_path, one_thread):
    args = ["agent", "train", "web", "--model", str(tiny_model), "--env-option", "depth=1",
            "--env-option", "branching=2", "--env-option", "distractors=0", "--quiet",
            "--out", str(tmp_path / "t"),
            "-o", "steps=1", "-o", "tasks_per_step=1", "-o", "group=2", "-o", "h_start=2",
            "-o", "h_end=2", "-o", "step_tokens=4", "-o", "eval_episodes=1", "-o", "eval_horizon=1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "success at horizon 1: 0.000 -> 0.000" in result.output
    assert json.loads((tmp_path / "t" / "metrics.json").read_text())["config"]["group"] == 2
    bad = CliRunner().invoke(app, [*args[:-2], "-o", "horizon=3"])
    assert bad.exit_code != 0 and "has no option 'horizon'" in str(bad.exception)


def test_agent_teach_fits_demonstrations(tiny_model, tmp_path, one_thread):
    data = tmp_path / "demos.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"obs {i}\nThought:", "completion": " go\nAction: back\n"})
                            + "\n" for i in range(12)))
    result = CliRunner().invoke(app, ["agent", "teach", str(data), "--model", str(tiny_model), "--quiet",
                                      "-o", "steps=3", "-o", "eval_pairs=4", "-o", "lr=0.01",
                                      "--out", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    assert "held-out NLL" in result.output and (tmp_path / "t" / "model" / "config.json").exists()
    data.write_text('{"prompt": "x"}\n')
    bad = CliRunner().invoke(app, ["agent", "teach", str(data), "--out", str(tmp_path / "u")])
    assert bad.exit_code != 0 and "need an object with 'prompt' and 'completion'" in str(bad.exception)

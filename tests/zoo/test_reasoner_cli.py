from typer.testing import CliRunner

from testtime.cli.main import app


def test_zoo_list_and_unknown_model():
    runner = CliRunner()
    listed = runner.invoke(app, ["zoo", "list"])
    assert listed.exit_code == 0 and "trainable: reasoner" in listed.output
    bad = runner.invoke(app, ["zoo", "train", "nope"])
    assert bad.exit_code == 2 and "unknown zoo model 'nope'; valid:" in bad.output and "prm2" in bad.output


def test_prm2_bad_policy_fails_before_anything_is_written(tmp_path):
    runner = CliRunner()
    out = tmp_path / "prm2"
    missing = runner.invoke(app, ["zoo", "train", "prm2", "--policy", str(tmp_path / "none"), "--out", str(out)])
    assert missing.exit_code == 2 and "no Hugging Face model" in missing.output
    moe = tmp_path / "moe"
    moe.mkdir()
    (moe / "config.json").write_text('{"model_type": "mixtral"}')
    wrong = runner.invoke(app, ["zoo", "train", "prm2", "--policy", str(moe), "--out", str(out)])
    assert wrong.exit_code == 2 and "GPT-2 policy" in wrong.output
    not_prm = runner.invoke(app, ["zoo", "train", "reasoner", "--policy", str(moe), "--out", str(out)])
    assert not_prm.exit_code == 2 and "--policy applies to prm, prm2, not reasoner" in not_prm.output
    assert not out.exists()


def test_zoo_train_runs_from_the_command_line(tmp_path, monkeypatch):
    import testtime.zoo.reasoner as reasoner

    config = reasoner.ReasonerConfig
    tiny = dict(n_layer=1, n_embd=32, n_head=2, batch_size=4, warmup=1, eval_every=2,
                valid_problems=2, valid_samples=1)
    monkeypatch.setattr(reasoner, "ReasonerConfig", lambda: config(**tiny))  # keep it fast
    out = tmp_path / "m"
    result = CliRunner().invoke(app, ["zoo", "train", "reasoner", "--steps", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").exists() and '"steps_trained": 2' in result.output

from typer.testing import CliRunner

from testtime.cli.main import app
from testtime.registry import UnknownName


def test_zoo_list_and_unknown_model():
    runner = CliRunner()
    listed = runner.invoke(app, ["zoo", "list"])
    assert listed.exit_code == 0 and "trainable: reasoner" in listed.output
    bad = runner.invoke(app, ["zoo", "train", "nope"])
    assert isinstance(bad.exception, UnknownName)
    assert "valid:" in str(bad.exception) and "reasoner" in str(bad.exception)


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

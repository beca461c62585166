"""`testtime learn lpn`: a tiny run end to end (train, search, export, report), the
rerun resumes instead of retraining, bad options are one clear line."""

from __future__ import annotations

import json

from inprocess_cli import run_cli

TINY = ["--steps", "4", "--batch", "2", "--hidden", "16", "--latent", "4", "--tasks", "3",
        "--search-steps", "0,1", "--modes", "gradient", "--checkpoint-every", "2", "--quiet"]


def run(capsys, *args: str) -> tuple[int, str, str]:
    return run_cli(capsys, "learn", "lpn", *args)


def test_a_tiny_run_writes_weights_and_report_and_a_rerun_resumes(tmp_path, capsys):
    code, out, err = run(capsys, "--out", str(tmp_path), *TINY)
    assert code == 0, err
    assert "| out of distribution | gradient | 1 |" in out
    for name in ("checkpoint.pt", "eval.json", "report.md", "search_curve.png",
                 "weights/model.safetensors", "weights/config.json", "weights/README.md"):
        assert (tmp_path / name).is_file(), name
    assert json.loads((tmp_path / "weights" / "config.json").read_text())["trained_steps"] == 4
    before = (tmp_path / "checkpoint.pt").stat().st_mtime_ns
    code, _, err = run(capsys, "--out", str(tmp_path), *TINY)
    assert code == 0, err
    assert (tmp_path / "checkpoint.pt").stat().st_mtime_ns == before  # nothing retrained
    code, trained_table, err = run(capsys, "--out", str(tmp_path), *TINY[:-1], "--steps", "6", "--quiet")
    assert code == 0, err  # a longer run extends the checkpoint
    assert json.loads((tmp_path / "weights" / "config.json").read_text())["trained_steps"] == 6
    evaluate_only = ["--weights", str(tmp_path / "weights"), "--tasks", "3", "--search-steps", "0,1",
                     "--modes", "gradient", "--quiet"]
    code, out, err = run(capsys, "--out", str(tmp_path / "again"), *evaluate_only)
    assert code == 0, err
    assert out.splitlines()[:6] == trained_table.splitlines()[:6]  # same weights, same accuracies
    assert "weights " in (tmp_path / "again" / "report.md").read_text().splitlines()[0]
    code, _, err = run(capsys, "--out", str(tmp_path / "again"), *evaluate_only, "--hidden", "8")
    assert code == 2 and "only the evaluation options" in err


def test_bad_options_are_one_clear_line(tmp_path, capsys):
    code, _, err = run(capsys, "--out", str(tmp_path), "--hiden", "8")
    assert code == 2 and "lpn has no option 'hiden'" in err and "hidden" in err
    code, _, err = run(capsys, "--out", str(tmp_path), "--modes", "beam")
    assert code == 2 and "modes must be some of" in err
    code, _, err = run(capsys, "--steps", "3")
    assert code == 2 and "give --out" in err
    code, out, _ = run(capsys, "--dry-run", "--hidden", "64")
    assert code == 0 and "hidden=64" in out and "26 cells" in out

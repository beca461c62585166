"""`testtime adapt`: --list, clear errors for bad input, and a tiny end-to-end run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from testtime.adapt import ADAPT_METHODS


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from testtime.cli.main import main; main()", "adapt", *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_list_prints_exactly_the_method_names():
    res = _cli("--list")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ADAPT_METHODS.names()
    assert "tent" in res.stdout.splitlines()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "tent,tnet", "--out", "x"], "unknown adaptation method 'tnet'; valid:"),
        (["--method", "tent", "--setting", "sideways", "--out", "x"], "unknown setting 'sideways'"),
        (
            ["--method", "tent", "--domains", "fogg", "--out", "x"],
            "unknown corruption 'fogg'; valid:",
        ),
        (["--method", "tent"], "give --out"),
    ],
)
def test_bad_input_is_one_clear_line(args, message, tmp_path):
    res = _cli(*args)
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_tiny_run_on_the_shipped_model(tmp_path):
    from testtime.zoo.cifar import weights_dir

    if not (weights_dir("resnet-bn") / "model.safetensors").exists():
        pytest.skip("shipped resnet-bn weights not present yet")
    out = tmp_path / "run"
    res = _cli("--method", "source,bn", "--setting", "reset", "--domains", "contrast",
               "--limit", "100", "--batch-size", "50", "--quiet", "--out", str(out))  # fmt: skip
    assert res.returncode == 0, res.stderr
    methods = json.loads((out / "results.json").read_text())["methods"]
    # BN adaptation repairs much of what low contrast does to a BatchNorm model.
    assert methods["bn"]["mean_error"] < methods["source"]["mean_error"]
    assert (out / "heatmap.png").exists() and (out / "results.md").exists()

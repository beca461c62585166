"""`testtime adapt`: --list, clear errors for bad input, and a tiny end-to-end run."""

from __future__ import annotations

import json
import sys

import pytest

from testtime.adapt import ADAPT_METHODS


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``testtime adapt ...`` in-process through the real entry point (exit code, out, err)."""
    from testtime.cli.main import main

    old = sys.argv
    sys.argv = ["testtime", "adapt", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        sys.argv = old
    out, err = capsys.readouterr()
    return code, out, err


def test_list_prints_exactly_the_method_names(capsys):
    code, out, err = _cli(capsys, "--list")
    assert code == 0, err
    assert out.splitlines() == ADAPT_METHODS.names()
    assert "tent" in out.splitlines()


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
def test_bad_input_is_one_clear_line(args, message, capsys):
    code, _, err = _cli(capsys, *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_tiny_run_on_the_shipped_model(tmp_path, capsys):
    from testtime.zoo.cifar import weights_dir

    if not (weights_dir("resnet-bn") / "model.safetensors").exists():
        pytest.skip("shipped resnet-bn weights not present yet")
    out = tmp_path / "run"
    code, _, err = _cli(capsys, "--method", "source,bn", "--setting", "reset", "--domains", "contrast",
               "--limit", "100", "--batch-size", "50", "--quiet", "--out", str(out))  # fmt: skip
    assert code == 0, err
    methods = json.loads((out / "results.json").read_text())["methods"]
    # BN adaptation repairs much of what low contrast does to a BatchNorm model.
    assert methods["bn"]["mean_error"] < methods["source"]["mean_error"]
    assert (out / "heatmap.png").exists() and (out / "results.md").exists()


def test_dry_run_prints_the_plan_and_a_probed_estimate(capsys):
    from testtime.zoo.cifar import weights_dir

    if not (weights_dir("resnet-bn") / "model.safetensors").exists():
        pytest.skip("shipped resnet-bn weights not present yet")
    code, out, err = _cli(capsys, "--method", "source,tent", "--domains", "contrast,fog",
                          "--limit", "100", "--batch-size", "50", "--dry-run")  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("plan: 2 method(s) × 2 domains × 100 images")
    assert lines[0].endswith("200 images, 4 batches per method")
    assert [ln.split(":")[0].strip() for ln in lines[1:3]] == ["source", "tent"]
    assert "img/s in the probe" in lines[1] and lines[-1].startswith("estimated time: ~")

"""Per-strategy / per-method help, --version, flags and help at 80 columns."""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version

import pytest
import typer.main
from typer.testing import CliRunner

from testtime.cli.learn import extra_options
from testtime.cli.main import app


def invoke(*args: str, columns: int = 80):
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": str(columns)})
    return result


def test_version():
    res = invoke("--version")
    assert res.exit_code == 0 and res.output.strip() == f"testtime {version('testtime')}"


def test_strategy_help_lists_every_constructor_option_with_its_default():
    from testtime.scale import STRATEGIES

    res = invoke("scale", "--help-strategy", "beam")
    assert res.exit_code == 0, res.output
    assert "Snell et al., 2024" in res.output and "process verifier" in res.output
    for p in list(inspect.signature(STRATEGIES.get("beam")).parameters.values()):
        line = next(ln for ln in res.output.splitlines() if ln.split()[:1] == [p.name])
        assert f"default {p.default!r}" in line
    assert re.search(r"^\s+n\s+int\s+default 16\s+set by --n", res.output, re.M)


def test_learn_method_help_differs_from_learn_help_and_shows_presets():
    plain = invoke("learn", "--help").output
    ttrl = invoke("learn", "ttrl", "--help").output
    ettrl = invoke("learn", "ettrl", "--help").output
    assert ttrl != plain and ttrl.startswith(plain.rstrip("\n"))
    assert "Zuo et al. 2025" in ttrl and re.search(r"n_votes\s+int\s+default 16", ttrl)
    assert re.search(r"rollout\s+str\s+default 'sample'", ttrl)
    assert re.search(r"rollout\s+str\s+default 'tree'\s+this method's preset", ettrl)


def test_adapt_method_help():
    res = invoke("adapt", "--help-method", "tent")
    assert res.exit_code == 0, res.output
    assert "Wang et al., ICLR 2021" in res.output
    assert re.search(r"lr\s+float\s+default 0.001", res.output)
    assert "model " not in res.output  # supplied by the benchmark, not an option


@pytest.mark.parametrize("command", ["serve", "scale", "learn", "adapt"])
def test_help_at_80_columns_keeps_option_names_whole_and_shows_defaults(command):
    click_cmd = typer.main.get_command(app).commands[command]
    res = invoke(command, "--help")
    assert res.exit_code == 0, res.output
    assert max(len(ln) for ln in res.output.splitlines()) <= 80
    words = set(re.findall(r"--[a-z][a-z0-9-]*", res.output))
    for param in click_cmd.params:
        for opt in param.opts:
            if opt.startswith("--"):
                assert opt in words, f"{opt} missing from `{command} --help`"
    assert "[default:" in res.output
    assert "--no-no-auth" not in res.output


def test_extra_method_options_after_the_method():
    assert extra_options(["--objective", "ce", "--steps=3", "--reshape"]) == [
        "objective=ce", "steps=3", "reshape=true"
    ]
    with pytest.raises(ValueError, match="unexpected argument 'x'"):
        extra_options(["x"])

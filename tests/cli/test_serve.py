"""`testtime serve` refuses unsafe or contradictory set-ups before loading a model."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from testtime.cli.main import app
from testtime.cli.serve import _load_keys


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0", "--no-auth"], "only allowed on a loopback host"),
        (["--host", "127.0.0.1"], "no API key given"),
        (["--api-key", "k", "--no-auth"], "contradicts"),
        (["--api-key", "k", "--upstream-model", "m"], "HTTP upstream"),
    ],
)
def test_unsafe_or_contradictory_setups_are_refused(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["serve", "--upstream", "embedded", *args])
    assert isinstance(result.exception, ValueError) and message in str(result.exception)


def test_key_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# clients\nfile-key\n\n")
    monkeypatch.setenv("TT_KEYS", "env-a, env-b")
    assert _load_keys(["cli"], "TT_KEYS", keys) == ["cli", "env-a", "env-b", "file-key"]
    monkeypatch.setenv("TT_EMPTY", "")
    with pytest.raises(ValueError, match="TT_EMPTY"):
        _load_keys([], "TT_EMPTY", None)

"""`testtime show DIR`: the summary table on stdout and the page next to the run."""

from __future__ import annotations

import json
import sys
from unittest import mock


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    from testtime.cli.main import main

    code = 0
    try:
        with mock.patch.object(sys, "argv", ["testtime", "show", *args]):
            main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_show_prints_the_table_and_writes_the_page(tmp_path, capsys):
    run = tmp_path / "adapt-run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"config": {"model": "resnet-bn"}, "methods": {
        "source": {"mean_error": 43.5, "images_per_s": 900.0},
        "tent": {"mean_error": 19.6, "images_per_s": 310.0}}}))
    code, out, err = _cli(capsys, str(run))
    assert code == 0, err
    assert "adapt run" in out and "43.5" in out and "19.6" in out
    page = (run / "view.html").read_text()
    assert "<h2>summary</h2>" in page and "<td>tent</td>" in page
    assert f"page: {run / 'view.html'}" in out.replace("\n", "")
    other = tmp_path / "page.html"
    code, _, _ = _cli(capsys, str(run), "--html", str(other))
    assert code == 0 and other.read_text() == page
    (run / "view.html").unlink()
    code, out, _ = _cli(capsys, str(run), "--no-html")
    assert code == 0 and "tent" in out and not (run / "view.html").exists()


def test_a_directory_without_results_is_one_clear_line(tmp_path, capsys):
    code, _, err = _cli(capsys, str(tmp_path))
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "holds no results.json or metrics.json" in err

"""The run page in a real headless browser (Debian's chromium): every candidate, the
vote and the plots are in the rendered DOM, run text is escaped, and it paints."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from testtime.viewer import load_run, render

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
needs_browser = pytest.mark.skipif(
    BROWSER is None,
    reason="no headless browser installed (apt-get install -y chromium) — the run page is not rendered",
)

def _browser(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    assert BROWSER is not None
    # --no-sandbox: test containers run as root; a fresh profile keeps runs independent.
    return subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={cwd / 'profile'}", *args],
        capture_output=True, text=True, timeout=90, cwd=cwd,
    )  # fmt: skip

def test_page_is_self_contained_and_escapes_run_text(scale_run):
    page = render(load_run(scale_run))
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing fetched from anywhere
    assert "<script" not in page and "&lt;script&gt;" in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == len(list(scale_run.glob("*.png"))) >= 3
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)

@needs_browser
def test_rendered_dom_holds_every_candidate_and_the_vote(scale_run, tmp_path):
    page = scale_run / "view.html"
    page.write_text(render(load_run(scale_run)))
    res = _browser("--dump-dom", page.as_uri(), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    assert "<title>testtime scale run — run</title>" in dom  # the hostile text did not run
    assert dom.count('<table class="candidates">') == 2
    assert "vote: <span class=\"ok\">7</span>: 2/4, 8: 1/4, 9: 1/4" in dom
    assert "candidates of majority@1, majority@4" in dom and "candidates of greedy@1" in dom
    assert "3+4=8\nanswer: 8" in dom and "&lt;script&gt;document.title" in dom
    assert dom.count("<img ") == len(list(scale_run.glob("*.png"))) == 3
    assert "problems.jsonl:2: skipped" in dom

@needs_browser
def test_page_paints_its_plots(scale_run, tmp_path):
    page = scale_run / "view.html"
    page.write_text(render(load_run(scale_run)))
    shot = tmp_path / "shot.png"
    res = _browser(f"--screenshot={shot}", "--window-size=1000,1400", page.as_uri(), cwd=tmp_path)
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    # The plots' lines and bands: ~0.6% of this window; a page without plots has none.
    coloured = (pixels.max(axis=2) - pixels.min(axis=2)) > 0.2
    assert coloured.mean() > 0.002, f"only {coloured.mean():.4%} coloured pixels"

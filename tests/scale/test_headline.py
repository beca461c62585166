from testtime.scale.headline import headline
from testtime.scale.report import markdown


def row(strategy, n, acc, half, diff=None, width=0.05, problems=50):
    r = {"strategy": strategy, "n": n, "difficulty": 6, "accuracy": acc, "ci_low": acc - half, "ci_high": acc + half,
         "coverage": 0.96 if n > 1 else acc, "problems": problems, "baseline": "majority"}
    if diff is not None:
        r.update(diff=diff, diff_low=diff - width, diff_high=diff + width)
    return r


def test_headline_states_falls_and_noise_as_they_are():
    rows = [row("sample", 1, 0.60, 0.13), row("majority", 1, 0.60, 0.13, 0.0, 0.0), row("majority", 16, 0.68, 0.12, 0.0, 0.0),
            row("best-of-n", 16, 0.50, 0.13, -0.18), row("weighted-majority", 16, 0.66, 0.12, -0.02)]
    text = "\n".join(headline(rows))
    assert "Difficulty 6 (50 problems): one sample 0.60 [0.47, 0.73]" in text
    assert "the best is majority 0.68 (+0.08 over one sample)" in text
    assert "best-of-n@16: 0.50, below majority (-0.18 [-0.23, -0.13])" in text
    assert "weighted-majority@16: 0.66, not separable from majority" in text
    assert "coverage@16 (some sample right): 0.96" in text
    assert "Too few problems to read the curves: 95% half-widths up to 0.13" in text


def test_headline_at_a_size_whose_curves_are_not_noise():
    rows = [row("sample", 1, 0.60, 0.068, problems=200), row("majority", 16, 0.74, 0.06, 0.0, 0.0, problems=200),
            row("best-of-n", 16, 0.80, 0.055, 0.06, 0.03, problems=200)]
    text = "\n".join(headline(rows))
    assert "best-of-n@16: 0.80, above majority (+0.06 [+0.03, +0.09])" in text
    assert "half-widths <= 0.07: the curves are not noise" in text
    assert "## Headline" in markdown(rows, {"task": "arith"})

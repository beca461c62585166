from testtime.scale.report import DIFF_PLOT, markdown, write_report


def row(strategy, n, acc, flops, diff=None):
    return {
        "strategy": strategy, "n": n, "difficulty": 6, "labels": "none", "accuracy": acc,
        "ci_low": acc - 0.1, "ci_high": acc + 0.1, "coverage": None, "generated_tokens": 100.0 * n,
        "prompt_tokens": 20.0, "verifier_tokens": 0.0, "charged_tokens": 20.0 + 100 * n,
        "computed_tokens": 20.0 + 100 * n, "flops": flops, "model_calls": 1.0, "wall_s": 0.5,
        "baseline": None if diff is None else "majority", "diff": diff,
        "diff_low": None if diff is None else diff - 0.05, "diff_high": None if diff is None else diff + 0.05,
    }


def test_report_table_and_plots(tmp_path):
    rows = [row("majority", 1, 0.4, 2e6), row("majority", 4, 0.6, 8e6), row("greedy", 1, 0.5, 2e6)]
    text = markdown(rows, {"task": "arith"})
    assert "## Difficulty 6" in text and "| majority | 4 | none | 0.6 |" in text
    assert "| – |" in text  # missing coverage is shown as a dash
    report = write_report(tmp_path, rows, {"task": "arith"})
    assert report.read_text() == text
    for name in ("accuracy_vs_n.png", "accuracy_vs_flops.png", "accuracy_vs_charged_tokens.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / DIFF_PLOT).exists()  # no row has a paired difference


def test_paired_differences_are_tabled_and_plotted(tmp_path):
    rows = [row("majority", 4, 0.6, 8e6), row("best-of-n", 4, 0.7, 9e6, diff=0.1)]
    text = markdown(rows, {})
    assert "| best-of-n | 4 | none | 0.7 | 0.6 | 0.8 | 0.1 | 0.05 | 0.15 |" in text
    write_report(tmp_path, rows, {})
    assert (tmp_path / DIFF_PLOT).read_bytes()[:4] == b"\x89PNG"


def test_plots_fall_back_to_tokens_without_flops(tmp_path):
    rows = [row("majority", 1, 0.4, None), row("majority", 2, 0.5, None)]
    write_report(tmp_path, rows, {})
    assert (tmp_path / "accuracy_vs_flops.png").stat().st_size > 1000


def test_report_states_the_ttspm_saturation():
    rows = [row("majority", n, 0.5, 1e6) for n in (1, 2, 4, 8, 16, 32)]
    for r in rows:
        r["coverage"] = 1 - 0.7 ** r["n"]
    text = markdown(rows, {})
    assert "p̂ = 0.300" in text and "predicts N* = 10" in text and "knee: N = 8" in text


def test_plot_title_names_task_model_verifier_and_n_range():
    from testtime.scale.report import run_title

    rows = [row("majority", 1, 0.4, 2e6), row("majority", 16, 0.6, 8e6)]
    config = {"task": "countdown", "backend": "openai:http://h/v1", "verifier": "prm"}
    assert run_title(rows, config) == "countdown · model openai:http://h/v1 · verifier prm · N 1–16"
    assert run_title(rows[:1], {"task": "arith", "backend": "embedded", "verifier": None}) == (
        "arith · model embedded · verifier none · N 1"
    )
    info = {"task": "arith", "backend": "embedded", "backend_info": {"name": "local:tiny-reasoner:lean"}}
    assert run_title(rows, info).startswith("arith · model local:tiny-reasoner:lean · verifier none")

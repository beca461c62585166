"""One report of the CIFAR-10-C adaptation runs next to the spec's reference table.

    python benchmarks/adapt_report.py runs/c10c-full runs/c10c-l500 runs/c10c-l2000 \
        --out benchmarks/results/adapt_cifar10c

Reads the run folders that ``benchmarks/adapt_cifar10c.py`` (or ``testtime adapt``)
wrote — ``main-<setting>/``, ``wild-*/``, ``guard-*/`` and ``throughput.json`` — and
writes ``OUT.md``, ``OUT.json`` and ``OUT.png`` (grouped bars: ours vs the reference).
Where several runs hold the same (setting, method), the one with the most images per
domain wins. The reference ordering is checked on the measured numbers; nothing here
changes a result.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from testtime.store import atomic_write_json
from testtime.store.atomic import atomic_write_bytes, atomic_write_text

SETTINGS = ("reset", "continual", "mixed")
# The spec's reference (WRN-28-10 "Standard", 94.8% clean; CIFAR-10-C severity 5): mean
# error % per (reset each shift, continual, mixed); None where the spec has no number.
REFERENCE: dict[str, tuple[float | None, float | None, float | None]] = {
    "source": (43.5, 43.5, 43.5),
    "bn": (20.4, 20.4, 33.8),
    "tent": (18.6, 20.0, 44.1),
    "eata": (None, 17.9, 28.6),
    "sar": (None, 20.4, 33.8),
    "cotta": (None, 16.5, 32.5),
    "rotta": (None, 19.3, 33.4),
    "lame": (None, 64.3, 75.2),
}
# Label-sorted stream, ResNet-26-GN (the spec's second reference).
REFERENCE_CORRELATED = {"source": 32.7, "tent": 87.6, "eata": 40.8, "sar": 37.1, "cotta": 44.5,
                        "rotta": 33.7, "lame": 11.3}  # fmt: skip
# Runs that equal the continual one by construction: a method whose output on a batch does
# not depend on earlier batches gives the same reset-each-shift errors (measured equal at
# 200 images/domain), and the source model's per-image predictions do not depend on the
# batch, so the mixed stream's mean is the continual one's.
SAME_AS_CONTINUAL = {"reset": ("source", "bn", "lame"), "mixed": ("source",)}


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _limit_rank(limit: int | None) -> float:
    return float("inf") if limit is None else float(limit)


def collect(roots: list[Path], prefix: str, merge: bool) -> dict[str, dict[str, Any]]:
    """``{run name: {method: row}}`` of every ``prefix*`` run under ``roots``. ``merge``:
    runs of the same name in several roots are one run, where per method the one with the
    most images per domain wins; otherwise a run is named ``root/name``."""
    runs: dict[str, dict[str, Any]] = {}
    for root in roots:
        for res_path in sorted(root.glob(f"{prefix}*/results.json")):
            res = json.loads(res_path.read_text())
            name = res_path.parent.name if merge else f"{root.name}/{res_path.parent.name}"
            for method, row in res["methods"].items():
                row = {**row, "limit": res["config"]["limit"], "config": res["config"]}
                old = runs.setdefault(name, {}).get(method)
                if old is None or _limit_rank(row["limit"]) > _limit_rank(old["limit"]):
                    runs[name][method] = row
    return runs


def _row(runs: dict[str, dict[str, Any]], prefix: str, setting: str, method: str) -> tuple[Any, bool]:
    """``method``'s row of run ``{prefix}main-{setting}``, or its continual row where that is
    equal by construction and larger; the flag says the continual row was taken."""
    row = runs.get(f"{prefix}main-{setting}", {}).get(method)
    if method in SAME_AS_CONTINUAL.get(setting, ()):
        same = runs.get(f"{prefix}main-continual", {}).get(method)
        if same and (row is None or _limit_rank(same["limit"]) > _limit_rank(row["limit"])):
            return same, True
    return row, False


def main_table(runs: dict[str, dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    methods = [m for m in REFERENCE if any(m in runs.get(f"main-{s}", {}) for s in SETTINGS)]
    for name in (f"main-{s}" for s in SETTINGS):
        methods += [m for m in runs.get(name, {}) if m not in methods]
    cells: dict[str, dict[str, Any]] = {}
    lines = [
        "| method | reset (ours) | continual (ours) | mixed (ours) | reset (ref) | continual (ref) | mixed (ref) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        ours = []
        for s in SETTINGS:
            row, same = _row(runs, "", s, m)
            if row is None:
                ours.append("–")
                continue
            cells.setdefault(m, {})[s] = {"mean_error": row["mean_error"], "limit": row["limit"],
                                          "images_per_s": row["images_per_s"],
                                          "forwards_per_batch": row["forwards_per_batch"]}  # fmt: skip
            sub = "" if row["limit"] is None else f" ({row['limit']}/dom)"
            ours.append(f"{row['mean_error']:.1f}{sub}{' =' if same else ''}")
        ref = [("–" if v is None else f"{v:.1f}") for v in REFERENCE.get(m, (None,) * 3)]
        lines.append(f"| {m} | " + " | ".join(ours + ref) + " |")
    return lines, cells


def ordering_checks(runs: dict[str, dict[str, Any]]) -> list[str]:
    """The issue's reference ordering, checked on the measured means (✔ holds, ✘ not).

    ``runs``: the main runs per root (``root/main-<setting>``). Each pair is compared on
    the largest run that holds both methods, so both saw the same images."""
    roots = sorted({name.split("/")[0] for name in runs})

    def check(label: str, a: str, b: str, setting: str, holds) -> str:
        pairs = [(ra, rb) for r in roots
                 if (ra := _row(runs, f"{r}/", setting, a)[0])
                 and (rb := _row(runs, f"{r}/", setting, b)[0])]  # fmt: skip
        if not pairs:
            return f"- {label}: not measured"
        ra, rb = max(pairs, key=lambda p: _limit_rank(p[0]["limit"]))
        x, y = ra["mean_error"], rb["mean_error"]
        images = "all 10,000" if ra["limit"] is None else f"{ra['limit']}"
        return f"- {label}: {x:.1f} vs {y:.1f} ({images} images/domain) {'✔' if holds(x, y) else '✘'}"

    out = [check("BN adapt roughly halves the source error (continual; BN ≤ 0.6 × source)",
                 "bn", "source", "continual", lambda a, b: a <= 0.6 * b)]  # fmt: skip
    for s in ("reset", "continual"):
        out.append(check(f"Tent ≤ BN ({s})", "tent", "bn", s, lambda a, b: a <= b))
    # On the mixed stream the reference has Tent worse than BN adapt (44.1 vs 33.8).
    out.append(check("Tent worse than BN (mixed), as in the reference", "tent", "bn", "mixed",
                     lambda a, b: a > b))  # fmt: skip
    for m, label in (("eata", "EATA"), ("cotta", "CoTTA")):
        out.append(check(f"{label} ≤ Tent (continual)", m, "tent", "continual", lambda a, b: a <= b))
    out.append(check("LAME worse than source on i.i.d. (continual)", "lame", "source",
                     "continual", lambda a, b: a > b))  # fmt: skip
    out.append(check("LAME far better than source on the label-sorted stream", "lame", "source",
                     "correlated", lambda a, b: a < b))  # fmt: skip
    return out


def correlated_lines(runs: dict[str, dict[str, Any]]) -> list[str]:
    """Ours on the label-sorted stream next to the spec's ResNet-26-GN reference."""
    ours = runs.get("main-correlated", {})
    lines = ["| method | ours | images/domain | reference (ResNet-26-GN) |", "|---|---|---|---|"]
    for m in dict.fromkeys([*REFERENCE_CORRELATED, *ours]):
        row = ours.get(m)
        mine = "–" if row is None else f"{row['mean_error']:.1f}"
        lim = "–" if row is None else ("all" if row["limit"] is None else row["limit"])
        ref = REFERENCE_CORRELATED.get(m)
        lines.append(f"| {m} | {mine} | {lim} | {'–' if ref is None else f'{ref:.1f}'} |")
    return lines


def other_tables(runs: dict[str, dict[str, Any]], skip_main: bool = True) -> list[str]:
    lines = ["| run | model | setting | batch | images/domain | method | mean error | img/s |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, methods in sorted(runs.items()):
        if skip_main and name in (f"main-{s}" for s in SETTINGS):
            continue
        for m, row in methods.items():
            c = row["config"]
            lim = "all" if c["limit"] is None else c["limit"]
            lines.append(f"| {name} | {c['model']} | {c['setting']} | {c['batch_size']} | {lim} | "
                         f"{m} | {row['mean_error']:.1f} | {row['images_per_s']:.0f} |")  # fmt: skip
    return lines


def plot(cells: dict[str, Any], path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    methods = list(cells)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
    for ax, (i, s) in zip(axes, enumerate(SETTINGS), strict=True):
        x = np.arange(len(methods))
        ours = [cells[m].get(s, {}).get("mean_error", np.nan) for m in methods]
        ref = [REFERENCE.get(m, (None,) * 3)[i] for m in methods]
        ref = [np.nan if v is None else v for v in ref]
        ax.bar(x - 0.2, ours, 0.4, label="ours (ResNet, this repo)")
        ax.bar(x + 0.2, ref, 0.4, label="reference (WRN-28-10)", alpha=0.6)
        ax.set_xticks(x, methods, rotation=45)
        ax.set_title(s)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("mean online error (%)")
    axes[0].legend()
    fig.suptitle("CIFAR-10-C severity 5, batch 200")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("roots", nargs="+", type=Path, help="run folders of adapt_cifar10c.py")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/adapt_cifar10c"))
    args = ap.parse_args()
    missing = [str(r) for r in args.roots if not r.is_dir()]
    if missing:
        raise SystemExit(f"no such run folder: {', '.join(missing)}")
    runs = {}
    for prefix in ("main-", "wild-", "guard-"):
        runs |= collect(args.roots, prefix, merge=prefix == "main-")
    table, cells = main_table(runs)
    # Methods too slow for all 10,000 images per domain, next to the baselines measured on
    # the same seeded subset (the main table shows each method's largest run).
    per_root = collect(args.roots, "main-", merge=False)
    subsets = {k: v for k, v in per_root.items()
               if all(r["limit"] is not None for r in v.values())}  # fmt: skip
    checks = ordering_checks(per_root)
    throughput = next((t for r in args.roots if (t := _load(r / "throughput.json"))), None)
    md = [
        "# CIFAR-10-C adaptation (resnet-bn unless stated; severity 5; batch 200; seed 0)", "",
        "`python benchmarks/adapt_report.py " + " ".join(str(r) for r in args.roots) + "`", "",
        "Mean online error (%). `(N/dom)`: a seeded subset of N of the 10,000 images per "
        "domain; otherwise all 10,000. `=`: equal to the continual run by construction "
        "(a stateless method's reset run; the source model on the mixed stream).", "",
        *table, "", "## Reference ordering", "", *checks, "",
        "## Label-sorted stream", "", *correlated_lines(runs), "",
        "## Same seeded subset (methods measured on fewer images, with baselines)", "",
        *other_tables(subsets, skip_main=False), "",
        "## Other settings", "", *other_tables(runs), "",
    ]  # fmt: skip
    if throughput:
        rows = {r["method"]: r for r in throughput["methods"]}
        md += ["## Cost", ""] + [
            f"- {m}: {r['images_per_s']:.0f} img/s, {r['vs_fwd_bwd_norm_affine']:.2f}× a plain "
            f"forward+backward (norm-affine gradients), {r['forwards_per_batch']:.1f} forwards and "
            f"{r['backwards_per_batch']:.1f} backwards per batch"
            for m, r in rows.items()
        ]  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(md) + "\n")
    atomic_write_json(args.out.with_suffix(".json"), {
        "main": cells, "checks": checks, "other": {k: {m: {"mean_error": r["mean_error"],
        "config": r["config"]} for m, r in v.items()} for k, v in runs.items()
        if not k.startswith("main-") or k == "main-correlated"}, "throughput": throughput})  # fmt: skip
    plot(cells, args.out.with_suffix(".png"))
    print("\n".join(md))


if __name__ == "__main__":
    main()

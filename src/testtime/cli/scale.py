"""`testtime scale`: accuracy and compute of scaling strategies vs budget N."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from typer import Option

from testtime.cli.main import app
from testtime.cluster import RAY_CONCURRENCY_HELP, RAY_HELP, RAY_TASKS_HELP, optional_session

# Strategy constructor options that `testtime scale` sets from its own flags.
CLI_SETS = {"temperature": "--temperature", "top_p": "--top-p", "max_tokens": "--max-tokens",
            "aggregation": "--aggregation", "seed": "--seed"}


def strategy_help(name: str) -> str:
    """Every constructor option of strategy ``name`` with its default, and its paper."""
    from testtime.cli.describe import paper_of, render, signature_options
    from testtime.scale import STRATEGIES

    factory = STRATEGIES.get(name)
    notes = {key: f"set by {flag}" for key, flag in CLI_SETS.items()}
    budget = getattr(factory, "budget_param", "n")
    if budget is not None:
        notes[budget] = "set by --n (the budget N)"
    needs = [f"backend: {', '.join(factory.requires)}"] if factory.requires else []
    if factory.needs_step_verifier:
        needs.append("a process verifier (--verifier prm)")
    elif factory.needs_verifier:
        needs.append("a verifier (--verifier)")
    title = f"strategy {name}" + (f" (needs {'; '.join(needs)})" if needs else "")
    return render(title, paper_of(factory), signature_options(factory), "--option KEY=VALUE", notes)


def parse_ints(text: str, what: str) -> list[int]:
    """``"1,4,16"`` -> [1, 4, 16], with a clear error naming the option."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise ValueError(f"{what} is empty")
    return values


def parse_names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError("no strategy given (e.g. --strategy majority,best-of-n)")
    return names


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``["mode=async", "width=4"]`` -> {"mode": "async", "width": 4} (ints, floats,
    true/false/none recognised; anything else stays a string)."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--option must look like KEY=VALUE, got {pair!r}")
        value: Any = raw
        lowered = raw.strip().lower()
        if lowered in ("true", "false"):
            value = lowered == "true"
        elif lowered == "none":
            value = None
        else:
            for kind in (int, float):
                try:
                    value = kind(raw)
                    break
                except ValueError:
                    continue
        options[key.strip().replace("-", "_")] = value
    return options


def run_and_report(
    *,
    task_name: str,
    strategies: list[str],
    budgets: list[int],
    out: Path,
    limit: int,
    seed: int,
    difficulties: list[int] | None,
    backend: str,
    backend_options: dict[str, Any],
    verifier_name: str | None,
    options: dict[str, Any],
    extra_options: dict[str, Any] | None = None,
    subsets: int = 16,
    dry_run: bool = False,
    baseline: str | None = "majority",
    label_free: bool = False,
) -> Path | None:
    """Validate, build the backend and verifier, run the harness, print a summary;
    returns the report's path. Shared by `testtime scale` and `testtime run`.
    ``extra_options`` (from --option) must be taken by at least one strategy.
    ``dry_run``: print the plan and a probed time estimate instead (returns None)."""
    from rich.console import Console
    from rich.table import Table

    from testtime.backends import get_generator
    from testtime.cluster import limit_upstream
    from testtime.scale import STRATEGIES
    from testtime.scale.common import check_positive
    from testtime.scale.harness import scale
    from testtime.scale.plan import accepts
    from testtime.tasks import get_task
    from testtime.verifiers import get_verifier

    # Cheap checks first, so bad input fails before a model is loaded.
    for name in strategies:
        STRATEGIES.get(name)
    for n in budgets:
        check_positive("every budget N", n)
    for key in extra_options or {}:
        if not any(accepts(name, key) for name in strategies):
            raise ValueError(f"option {key!r} is not taken by any of: {', '.join(strategies)}")
    task = get_task(task_name)
    verifier = get_verifier(verifier_name, task=task) if verifier_name else None
    generator = limit_upstream(get_generator(backend, **backend_options))
    if dry_run:
        from testtime.cli.plan import estimate, render
        from testtime.scale.plan import make_plan

        plan = make_plan(task, generator, strategies, budgets, verifier=verifier,
                         difficulties=difficulties, limit=limit, seed=seed,
                         options={**options, **(extra_options or {})})  # fmt: skip
        print(render(plan, estimate(plan, generator, verifier)), end="")
        from testtime.store.runstore import DB_NAME

        if (out / DB_NAME).exists():
            print(f"note: {out} holds a run store; a run resumes what it holds (not counted here)")
        return None
    result = scale(
        task, generator, strategies, budgets, out, verifier=verifier,
        difficulties=difficulties, limit=limit, seed=seed,
        options={**options, **(extra_options or {})}, backend=backend, max_subsets=subsets,
        baseline=baseline, label_free=label_free,
    )
    table = Table("difficulty", "strategy", "N", "accuracy", "95% CI", "tokens/problem")
    for r in result.rows:
        table.add_row(
            str(r["difficulty"]), r["strategy"], str(r["n"]), f"{r['accuracy']:.3f}",
            f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]",
            f"{r['generated_tokens'] + r['prompt_tokens']:.0f}",
        )
    console = Console()
    console.print(table)
    console.print(f"report: {result.report}")
    console.print(f"candidates and votes: testtime show {out}", markup=False)
    return result.report


DEFAULT_OUT = Path("runs/scale")


@app.command("scale")
def scale_command(
    task: Annotated[str | None, Option(help="task family (arith, countdown, mul) or a .jsonl file")] = None,
    strategy: Annotated[str, Option(help="comma-separated strategy names (see --list)")] = "majority",
    n: Annotated[str, Option(help="comma-separated budgets N")] = "1,2,4,8,16",
    limit: Annotated[int, Option(help="problems per difficulty")] = 50,
    seed: Annotated[int, Option(help="seed of the problems and of sampling")] = 0,
    out: Annotated[Path, Option(help="output directory (resumable)")] = DEFAULT_OUT,
    difficulty: Annotated[int | None, Option(help="a single difficulty")] = None,
    difficulties: Annotated[
        str | None, Option(help="comma-separated difficulties (default: the task's levels)")
    ] = None,
    backend: Annotated[
        str, Option(help="embedded, openai:<base_url>, vllm:<model> or a model directory")
    ] = "embedded",
    model: Annotated[str | None, Option(help="model name for openai/vllm backends")] = None,
    api_key_env: Annotated[str | None, Option(help="environment variable holding the API key")] = None,
    backend_option: Annotated[
        list[str] | None,
        Option(help="backend option KEY=VALUE (repeatable): split_n=true, tokenizer=DIR, "
               "num_parameters=N, max_concurrency=N, top_k=40, min_p=0.05, repeat_penalty=1.1, "
               "experts=K (activated experts per token of an in-process MoE)"),
    ] = None,
    verifier: Annotated[
        str | None, Option(help="verifier for scored strategies: oracle, prm, orm...")
    ] = None,
    temperature: Annotated[float, Option(help="sampling temperature")] = 0.8,
    top_p: Annotated[float, Option(help="nucleus sampling threshold")] = 1.0,
    max_tokens: Annotated[int, Option(help="tokens per sample")] = 256,
    aggregation: Annotated[str, Option(help="step-score aggregation: last, min, prod, mean")] = "last",
    subsets: Annotated[
        int, Option(help="random k-subsets of each pool evaluated per budget k")
    ] = 16,
    option: Annotated[
        list[str] | None,
        Option(help="strategy option KEY=VALUE (repeatable), e.g. mode=async for ffs"),
    ] = None,
    budget: Annotated[
        int | None,
        Option(help="generated+verifier tokens per problem (strategy compute-optimal)"),
    ] = None,
    list_: Annotated[bool, Option("--list", help="print the strategy names and exit")] = False,
    help_strategy: Annotated[
        str | None, Option(help="print a strategy's options, defaults and paper, and exit")
    ] = None,
    dry_run: Annotated[
        bool, Option("--dry-run", help="print the plan and a time estimate (a short probe); no run")
    ] = False,
    baseline: Annotated[
        str, Option(help="strategy the paired-bootstrap differences are taken against ('none': off)")
    ] = "majority",
    label_free: Annotated[
        bool,
        Option("--label-free", help="refuse oracle upper bounds and seal the test problems' labels"),
    ] = False,
    ray: Annotated[str | None, Option(help=RAY_HELP)] = None,
    ray_tasks: Annotated[int | None, Option(help=RAY_TASKS_HELP)] = None,
    ray_concurrency: Annotated[int | None, Option(help=RAY_CONCURRENCY_HELP)] = None,
) -> None:
    """Run strategies × budgets N on a task and write results.json, plots and report.md."""
    # Imported here: testtime.scale loads every strategy (and torch), which --help need not.
    from testtime.scale.common import check_positive

    if list_:
        from testtime.scale import STRATEGIES

        for name in STRATEGIES.names():
            print(name)
        return
    if help_strategy is not None:
        print(strategy_help(help_strategy), end="")
        return
    if task is None:
        raise ValueError("--task is required (e.g. --task arith), or use --list")
    if difficulty is not None and difficulties is not None:
        raise ValueError("give --difficulty or --difficulties, not both")
    levels = [difficulty] if difficulty is not None else (
        parse_ints(difficulties, "--difficulties") if difficulties else None
    )
    backend_options: dict[str, Any] = {}
    if model is not None:
        backend_options["model"] = model
    if api_key_env is not None:
        backend_options["api_key_env"] = api_key_env
    backend_options.update(parse_options(backend_option))
    extra_options = parse_options(option)
    if budget is not None:  # only compute-optimal takes it; run_and_report refuses otherwise
        extra_options["budget"] = check_positive("--budget", budget)
    with optional_session(ray, tasks=ray_tasks, upstream_concurrency=ray_concurrency):
        run_and_report(
            task_name=task, strategies=parse_names(strategy), budgets=parse_ints(n, "--n"), out=out,
            limit=limit, seed=seed, difficulties=levels, backend=backend,
            backend_options=backend_options, verifier_name=verifier,
            options={"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens,
                     "aggregation": aggregation, "seed": seed},
            extra_options=extra_options, subsets=check_positive("--subsets", subsets),
            dry_run=dry_run, baseline=None if baseline == "none" else baseline,
            label_free=label_free,
        )

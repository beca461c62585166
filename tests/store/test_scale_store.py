"""The scaling harness's run store cannot lie: records keyed by content (an edited
prompt is regenerated), changed bytes detected and recomputed, a kill anywhere
resumes to the uninterrupted results, the result files appear as one set.
Real components: the embedded TinyReasoner on a JSONL task."""

from __future__ import annotations

import json
import re
import shutil
import signal
from dataclasses import asdict
from pathlib import Path

import pytest

from testtime.backends import get_generator
from testtime.scale.harness import run_scale, scale
from testtime.scale.plan import make_plan
from testtime.store import RunStore, StoreCorruption, read_result_set
from testtime.tasks import get_task

OPTIONS = {"max_tokens": 48, "temperature": 1.0}


@pytest.fixture(scope="module")
def generator():
    return get_generator("embedded")


@pytest.fixture(scope="module")
def task_file(tmp_path_factory):
    return write_task(tmp_path_factory.mktemp("task") / "t.jsonl")


@pytest.fixture(scope="module")
def straight(generator, task_file, tmp_path_factory):
    """An uninterrupted run's folder (copy it before changing it)."""
    out = tmp_path_factory.mktemp("straight")
    run(task_file, generator, out)
    return out


def write_task(path: Path, edit: dict[str, str] | None = None) -> Path:
    """Six arith problems as a JSONL task (``edit`` replaces prompts by id)."""
    rows = [
        {"id": p.id, "prompt": (edit or {}).get(p.id, p.prompt), "answer": p.answer}
        for p in get_task("arith").generate(6, 2, seed=1)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run(task_file: Path, generator, out: Path, **kwargs):
    return scale(
        get_task(str(task_file)), generator, ["majority"], [1, 4], out, seed=7,
        options=OPTIONS, show_progress=False, **{"batch_samples": 8, **kwargs},
    )  # fmt: skip


def evaluate(task_file: Path, generator, out: Path, **kwargs) -> list[dict]:
    """The run's records as problems.jsonl holds them, without writing result files
    (the plots take most of a run's time here)."""
    plan = make_plan(get_task(str(task_file)), generator, ["majority"], [1, 4], seed=7, options=OPTIONS)
    got = run_scale(plan, generator, out, **{"batch_samples": 8, **kwargs})
    return _comparable([json.loads(json.dumps(asdict(r))) for r in got])


def records(out: Path) -> list[dict]:
    return _comparable([json.loads(line) for line in (out / "problems.jsonl").read_text().splitlines()])


def _comparable(rows: list[dict]) -> list[dict]:
    """Records as a resumed run must reproduce them: answers, scores, every candidate and
    the generated tokens. Prompt tokens, calls and wall time are the cost of how the
    work was batched (and what a prefix cache held), not of what was sampled."""
    for r in rows:
        r["compute"] = r["compute"]["generated_tokens"]
    return rows


class Counting:
    """The same model (same identity), recording every prompt it samples; it can be
    interrupted (KeyboardInterrupt) once ``fail_after`` prompts were sampled."""

    def __init__(self, inner, fail_after: int | None = None) -> None:
        self.inner, self.fail_after, self.prompts = inner, fail_after, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate(self, prompts, params, **kw):
        if self.fail_after is not None and len(self.prompts) >= self.fail_after:
            raise KeyboardInterrupt
        self.prompts += list(prompts)
        return self.inner.generate(prompts, params, **kw)


def test_every_candidate_is_exported_and_the_set_has_a_manifest(straight):
    rows = records(straight)
    assert len(rows) == 6 * 2
    for r in rows:
        assert len(r["candidates"]) == 4  # the whole pool, for every budget
        for c in r["candidates"]:
            assert {"text", "answer", "num_tokens", "score", "correct"} <= set(c)
    manifest = read_result_set(straight)
    assert {"results.json", "problems.jsonl", "report.md", "accuracy_vs_n.png"} <= set(manifest["files"])
    assert not list(straight.glob(".results-staging*"))


def test_an_edited_prompt_is_regenerated_and_nothing_else(generator, straight, task_file, tmp_path):
    shutil.copytree(straight, tmp_path / "run")
    before = {r["problem_id"]: r for r in records(straight)}
    pid = next(iter(before))
    old_prompt = get_task(str(task_file)).problems[0].prompt
    edited = write_task(tmp_path / "t.jsonl", {pid: old_prompt.replace("arith:", "arith: ")})
    counting = Counting(generator)
    after = {r["problem_id"]: r for r in evaluate(edited, counting, tmp_path / "run")}  # same id, new text
    assert len(counting.prompts) == 1 and counting.prompts[0] != old_prompt
    assert all(after[k] == before[k] for k in before if k != pid)
    assert after[pid]["candidates"] != before[pid]["candidates"]


def test_new_weights_in_the_same_folder_are_another_model(generator, task_file, tmp_path):
    from safetensors.torch import load_file, save_file

    from testtime.backends.local import LocalGenerator

    model = tmp_path / "model"
    shutil.copytree(generator.model_dir, model)
    evaluate(task_file, LocalGenerator(model), tmp_path / "run")
    tensors = load_file(model / "model.safetensors")
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] * 1.01  # "retrained"
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    counting = Counting(LocalGenerator(model))
    evaluate(task_file, counting, tmp_path / "run")
    assert len(counting.prompts) == 6  # every pool sampled again, none reused


def test_changed_bytes_in_a_stored_answer_are_detected_and_recomputed(
    generator, straight, task_file, tmp_path
):
    shutil.copytree(straight, tmp_path / "run")
    truth = records(straight)
    db = tmp_path / "run" / "runstore.sqlite"
    data = db.read_bytes()
    # Flip every stored "answer" of one value to another (same length): SQLite still reads it.
    answer = next(
        c["answer"] for r in truth for c in r["candidates"] if re.fullmatch(r"-?\d+", c["answer"] or "")
    )
    target = f'"answer":"{answer}"'.encode()
    forged = f'"answer":"{answer[:-1]}{(int(answer[-1]) + 1) % 10}"'.encode()
    assert data.count(target) >= 1
    db.write_bytes(data.replace(target, forged))
    counting = Counting(generator)
    with pytest.warns(StoreCorruption, match="fails its checksum"):
        again = evaluate(task_file, counting, tmp_path / "run")
    assert 1 <= len(counting.prompts) < 6  # only the damaged pools were sampled again
    assert again == records(straight)  # ... to exactly what they were
    with RunStore(tmp_path / "run") as store:
        assert store.corrupted == set() and len(store) == 6


@pytest.mark.parametrize("where", ["after-first-commit", "inside-second-call"])
def test_a_kill_anywhere_resumes_to_the_uninterrupted_results(
    generator, straight, task_file, tmp_path, where, monkeypatch
):
    if where == "after-first-commit":
        real, calls = RunStore.put_many, []

        def put_many(self, items):
            if calls:
                raise KeyboardInterrupt  # the kill lands right after one batch's commit
            calls.append(len(items))
            real(self, items)

        monkeypatch.setattr(RunStore, "put_many", put_many)
        with pytest.raises(KeyboardInterrupt):
            evaluate(task_file, generator, tmp_path / "killed")
        monkeypatch.setattr(RunStore, "put_many", real)
    else:
        with pytest.raises(KeyboardInterrupt):
            evaluate(task_file, Counting(generator, fail_after=2), tmp_path / "killed")
    with RunStore(tmp_path / "killed") as store:
        assert len(store) == 2  # one batch of two problems stored
    assert evaluate(task_file, generator, tmp_path / "killed") == records(straight)
    if where == "inside-second-call":  # other batches (one problem per call, not two)
        rebatched = evaluate(task_file, generator, tmp_path / "rebatched", batch_samples=4)
        assert rebatched == records(straight)


def test_ctrl_c_while_the_set_is_moved_in_is_deferred(generator, task_file, tmp_path, monkeypatch):
    import testtime.store.resultset as resultset

    real = resultset.os.replace
    moved: list[str] = []

    def replace(src, dst):
        real(src, dst)
        staged, into = Path(src).parent.name, Path(dst).parent.name
        if moved or (staged.startswith(resultset.STAGE) and not into.startswith(resultset.STAGE)):
            moved.append(Path(dst).name)
            if len(moved) == 1:
                signal.raise_signal(signal.SIGINT)  # Ctrl-C right after the first file lands

    monkeypatch.setattr(resultset.os, "replace", replace)
    # a shell's background job starts with SIGINT ignored: give this test Python's own handler
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run(task_file, generator, tmp_path / "run", limit=1)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert moved[-2:] == ["results.json", "manifest.json"]  # the whole set, then the signal
    read_result_set(tmp_path / "run")


def test_an_incomplete_set_is_refused_in_one_line(tmp_path):
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(ValueError, match="holds no complete result set"):
        read_result_set(tmp_path)


def test_a_store_holding_part_of_a_batch_resumes_to_the_same_results(generator, straight, task_file, tmp_path):
    # The state a kill between two writes of one batch used to leave: problem 1 of the
    # batch (1, 2) stored, problem 2 not. Resumed, problem 2 is sampled in another batch
    # (2, 3): with per-problem seeds its pool is what the uninterrupted run sampled.
    import sqlite3

    shutil.copytree(straight, tmp_path / "run")
    con = sqlite3.connect(tmp_path / "run" / "runstore.sqlite")
    rowids = [r for (r,) in con.execute("SELECT rowid FROM items ORDER BY rowid")]
    con.execute("DELETE FROM items WHERE rowid IN (?, ?, ?)", (rowids[1], rowids[2], rowids[4]))
    con.commit()
    con.close()
    counting = Counting(generator)
    resumed = evaluate(task_file, counting, tmp_path / "run")
    assert resumed == records(straight)
    assert len(counting.prompts) == 3


def test_result_sets_replace_each_other_whole(tmp_path):
    from testtime.store import result_set

    (tmp_path / ".results-staging-999999999-x").mkdir()  # left by a writer that is gone
    with result_set(tmp_path) as stage:
        for name in ("results.json", "report.md", "plot_a.png"):
            (stage / name).write_text(f"first {name}")
    with result_set(tmp_path) as stage:
        for name in ("results.json", "report.md", "plots/b.png"):
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            (stage / name).write_text(f"second {name}")
    assert set(read_result_set(tmp_path)["files"]) == {"results.json", "report.md", "plots/b.png"}
    assert not (tmp_path / "plot_a.png").exists()  # the first set's plot is not left behind
    assert (tmp_path / "report.md").read_text() == "second report.md"
    assert not list(tmp_path.glob(".results-staging*"))
    (tmp_path / "report.md").write_text("edited")
    with pytest.raises(ValueError, match="report.md is missing or changed"):
        read_result_set(tmp_path)

"""Progress lines when stderr is not a terminal."""

from __future__ import annotations

import io

from testtime.progress import PlainProgress, make_progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_line_per_tenth_or_per_interval_and_one_when_done():
    out, clock = io.StringIO(), Clock()
    with PlainProgress(out, interval=5.0, clock=clock) as bar:
        job = bar.add_task("scale arith", total=100)
        for _ in range(25):  # 25 units, 0.1 s apart: crosses 10% and 20%
            clock.now += 0.1
            bar.advance(job, 1)
        clock.now += 6.0  # no advance for a while, then a small one: the interval line
        bar.advance(job, 1)
        bar.update(job, completed=100)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("scale arith: 10/100 (10%), 0:00:01 elapsed, ~0:00:09 left")
    assert lines[1].startswith("scale arith: 20/100 (20%)")
    assert lines[2].startswith("scale arith: 26/100 (26%)")
    assert lines[3].startswith("scale arith: 100/100 (100%)") and "left" not in lines[3]
    assert len(lines) == 4  # finished: nothing more on exit


def test_removed_task_reports_where_it_stopped():
    out = io.StringIO()
    bar = PlainProgress(out, clock=Clock())
    job = bar.add_task("  tent", total=10)
    bar.advance(job, 3)  # 30%: printed
    bar.remove_task(job)  # the last line is current: nothing new
    bar.advance(job := bar.add_task("eata", total=100), 40)
    bar.advance(job, 5)  # no tenth crossed, no interval passed: no line yet
    bar.remove_task(job)  # progress since the last line: one more
    assert [ln.split(" (")[0] for ln in out.getvalue().splitlines()] == [
        "tent: 3/10", "eata: 40/100", "eata: 45/100"
    ]


def test_piped_stderr_gets_plain_lines(capsys):
    bar = make_progress(disable=False)  # pytest's captured stderr is not a terminal
    assert isinstance(bar, PlainProgress)
    with bar:
        job = bar.add_task("x", total=2)
        bar.advance(job, 2)
    assert capsys.readouterr().err.startswith("x: 2/2 (100%)")
    assert not isinstance(make_progress(disable=True), PlainProgress)


def test_a_resumed_task_starts_at_its_completed_count_and_shows_its_note():
    out, clock = io.StringIO(), Clock()
    bar = PlainProgress(out, clock=clock)
    job = bar.add_task("ttrl", total=10, completed=4, note="")
    clock.now = 2.0
    bar.update(job, note="pass@1 0.31")
    bar.advance(job, 1)
    # 1 done in 2 s since the resume: 5 left take ~10 s
    assert out.getvalue() == "ttrl: 5/10 (50%), 0:00:02 elapsed, ~0:00:10 left  pass@1 0.31\n"

"""The program database: cells, selection, lazy penalty, migration, JSON state."""

from __future__ import annotations

import json

import pytest

from testtime.programs.database import DatabaseConfig, Program, ProgramDatabase


def program(pid: str, fitness: float | None, code: str | None = None, island: int = 0,
            parent: str | None = None) -> Program:
    return Program(pid, code or f"x = {pid!r}\n", generation=0, island=island, parent_id=parent,
                   score=fitness, fitness=fitness, reason="" if fitness is not None else "crashed: x")


def filled(seed: int = 0, **config) -> ProgramDatabase:
    db = ProgramDatabase(DatabaseConfig(num_islands=3, **config), seed=seed)
    db.add_initial(program("base", 1.0, "x = 0\n"))
    for i in range(12):
        code = "x = 0\n" + "y = 1\n" * (i * 7) + f"z = {i}\n"  # spread over complexity cells
        db.add(program(f"p{i}", float(i % 5), code, island=i % 3, parent="base"))
    db.add(program("bad", None, "raise SystemExit\n", parent="base"))
    return db


def test_cells_keep_the_fittest_and_failures_stay_out():
    db = filled()
    assert db.best.id == "p4"  # fitness 4 (p9 ties later and does not replace it)
    for island in range(3):
        for program_ in db.elites(island):
            assert program_.fitness is not None
            rivals = [p for p in db.valid() if p.cell == program_.cell and (
                p.island == island or p.id == "base")]
            assert program_.fitness == max(p.fitness for p in rivals)
    assert "bad" in db.programs and db.programs["bad"].cell is None


def test_selection_rotates_islands_and_is_seeded():
    a, b = filled(seed=3), filled(seed=3)
    picks_a = [a.sample() for _ in range(9)]
    picks_b = [b.sample() for _ in range(9)]
    assert [p.island for p in picks_a] == [0, 1, 2] * 3
    assert [(p.parent.id, [i.id for i in p.inspirations]) for p in picks_a] == [
        (p.parent.id, [i.id for i in p.inspirations]) for p in picks_b]
    for pick in picks_a:
        assert pick.parent.fitness is not None
        assert all(i.id != pick.parent.id for i in pick.inspirations)


def test_pure_exploitation_draws_from_the_archive():
    db = filled(exploration_ratio=0.0, exploitation_ratio=1.0, archive_size=2)
    top = {p.id for p in db.archive()}
    assert len(top) == 2
    assert {db.sample().parent.id for _ in range(30)} <= top


def test_lazy_penalty_levels():
    base = program("base", 1.0, "x = 0\n")
    for level, same_as_parent, same_as_other in ((0, None, None),
                                                 (1, "lazy: identical to its parent", None),
                                                 (2, "lazy: identical to a program in the database",
                                                  "lazy: identical to a program in the database")):
        db = ProgramDatabase(DatabaseConfig(lazy_penalty=level))
        db.add_initial(base)
        db.add(program("other", 0.5, "x = 1\n"))
        assert db.lazy("x = 0\n", base) == same_as_parent
        assert db.lazy("x = 1\n", base) == same_as_other
        assert db.lazy("x = 2\n", base) is None


def test_migration_copies_top_elites_to_the_next_island():
    db = filled()
    star = program("star", 10.0, "x = 0\n" + "w = 2\n" * 200, island=0, parent="base")
    db.add(star)
    assert "star" not in [p.id for p in db.elites(1)]
    db.migrate()
    assert "star" in [p.id for p in db.elites(1)]


def test_state_round_trips_through_json_and_continues_the_same_stream():
    db = filled(seed=5)
    db.sample()
    copy = ProgramDatabase.from_state(json.loads(json.dumps(db.state())))
    assert copy.state() == db.state()
    assert [(p.island, p.parent.id) for p in (copy.sample() for _ in range(6))] == [
        (p.island, p.parent.id) for p in (db.sample() for _ in range(6))]


def test_bad_config_and_empty_database_are_refused():
    with pytest.raises(ValueError, match="lazy_penalty"):
        DatabaseConfig(lazy_penalty=3)
    with pytest.raises(ValueError, match="sum"):
        DatabaseConfig(exploration_ratio=0.6, exploitation_ratio=0.6)
    with pytest.raises(RuntimeError, match="no valid program"):
        ProgramDatabase().sample()
    db = ProgramDatabase()
    db.add(program("a", 1.0))
    with pytest.raises(ValueError, match="already"):
        db.add(program("a", 1.0))

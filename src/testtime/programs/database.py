"""The program database of AlphaEvolve / OpenEvolve as ThetaEvolve uses it: islands,
each a MAP-Elites grid, an elite archive, and ThetaEvolve's parent selection.

* **cells**: a program's features are its complexity (code length, log-scale bins) and
  its diversity (how much of its parent's code it changed, in bins); each island keeps
  the fittest program per cell (MAP-Elites, Mouret & Clune 2015);
* **selection** (ThetaEvolve's ``_sample_parent``): with probability
  ``exploration_ratio`` a random elite of the current island, with
  ``exploitation_ratio`` a random program of the archive (the top ``archive_size``,
  preferring the current island), else any valid program; inspirations are the
  island's best and random other elites; the current island rotates per sample;
* **migration**: every ``migration_interval`` generations each island sends its top
  ``migration_rate`` fraction of elites to the next island of the ring;
* **lazy penalty** (ThetaEvolve): level 1 flags a child whose code equals its
  parent's, level 2 one whose code equals any program already in the database; a lazy
  child is not evaluated and gets the penalty reward.

The state is plain JSON (:meth:`state` / :meth:`from_state`), the random stream
included, so a resumed run samples exactly what an uninterrupted one would.
Deviation: OpenEvolve's diversity feature is edit distance to a reference set; here it
is the changed-line fraction against the parent (difflib), which is cheaper.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class DatabaseConfig:
    num_islands: int = 4
    complexity_bins: int = 8
    diversity_bins: int = 4
    archive_size: int = 20
    exploration_ratio: float = 0.2
    exploitation_ratio: float = 0.7
    num_inspirations: int = 2
    migration_interval: int = 5
    migration_rate: float = 0.2
    lazy_penalty: int = 1  # 0 off, 1 identical to the parent, 2 identical to any program

    def __post_init__(self) -> None:
        for name in ("num_islands", "complexity_bins", "diversity_bins", "archive_size",
                     "migration_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"database {name} must be >= 1, got {getattr(self, name)}")
        if self.num_inspirations < 0:
            raise ValueError(f"num_inspirations must be >= 0, got {self.num_inspirations}")
        if not (0 <= self.exploration_ratio and 0 <= self.exploitation_ratio
                and self.exploration_ratio + self.exploitation_ratio <= 1):
            raise ValueError("exploration_ratio and exploitation_ratio must be >= 0 and sum to <= 1")
        if not 0 < self.migration_rate <= 1:
            raise ValueError(f"migration_rate must be in (0, 1], got {self.migration_rate}")
        if self.lazy_penalty not in (0, 1, 2):
            raise ValueError(f"lazy_penalty must be 0, 1 or 2, got {self.lazy_penalty}")


@dataclass
class Program:
    """One candidate; ``score`` is None when it failed (``reason`` says why)."""

    id: str
    code: str
    generation: int
    island: int
    parent_id: str | None = None
    score: float | None = None
    fitness: float | None = None  # higher is better (the score, negated when minimising)
    reward: float = 0.0  # the evolution reward (see evolve.reward)
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    cell: tuple[int, int] | None = None

    @property
    def code_hash(self) -> str:
        return hashlib.sha256(self.code.encode()).hexdigest()


@dataclass
class Pick:
    """Where a child will live, whom it evolves from, and what the prompt also shows."""

    island: int
    parent: Program
    inspirations: list[Program]


def changed_fraction(code: str, parent: str | None) -> float:
    if parent is None:
        return 1.0
    return 1.0 - difflib.SequenceMatcher(None, parent.splitlines(), code.splitlines()).ratio()


class ProgramDatabase:
    def __init__(self, config: DatabaseConfig | None = None, seed: int = 0) -> None:
        self.config = config or DatabaseConfig()
        self.rng = random.Random(seed)
        self.programs: dict[str, Program] = {}
        self.islands: list[dict[tuple[int, int], str]] = [{} for _ in range(self.config.num_islands)]
        self.code_hashes: set[str] = set()
        self.current_island = 0
        self.best_id: str | None = None

    # ----- inserting ---------------------------------------------------------------
    def lazy(self, code: str, parent: Program | None) -> str | None:
        """Why ``code`` earns the lazy penalty (None when it does not)."""
        level = self.config.lazy_penalty
        if level == 1 and parent is not None and code == parent.code:
            return "lazy: identical to its parent"
        if level == 2 and hashlib.sha256(code.encode()).hexdigest() in self.code_hashes:
            return "lazy: identical to a program in the database"
        return None

    def cell_of(self, program: Program) -> tuple[int, int]:
        cfg = self.config
        parent = self.programs.get(program.parent_id) if program.parent_id else None
        complexity = min(cfg.complexity_bins - 1, int(math.log2(max(len(program.code), 1)) / 2))
        frac = changed_fraction(program.code, parent.code if parent else None)
        return complexity, min(cfg.diversity_bins - 1, int(frac * cfg.diversity_bins))

    def add(self, program: Program) -> None:
        """Record ``program``; a valid one competes for its cell on its island."""
        if program.id in self.programs:
            raise ValueError(f"program {program.id} is already in the database")
        self.programs[program.id] = program
        self.code_hashes.add(program.code_hash)
        if program.fitness is None:
            return
        program.cell = self.cell_of(program)
        self._place(program, program.island)
        best = self.programs.get(self.best_id) if self.best_id else None
        if best is None or program.fitness > best.fitness:
            self.best_id = program.id

    def add_initial(self, program: Program) -> None:
        """Record a valid starting program on every island."""
        self.add(program)
        if program.fitness is None:
            raise ValueError(f"initial program {program.id} has no score: {program.reason}")
        for island in range(self.config.num_islands):
            self._place(program, island)

    def _place(self, program: Program, island: int) -> None:
        cells = self.islands[island]
        holder = cells.get(program.cell)
        if holder is None or program.fitness > self.programs[holder].fitness:
            cells[program.cell] = program.id

    # ----- sampling ----------------------------------------------------------------
    @property
    def best(self) -> Program | None:
        return self.programs.get(self.best_id) if self.best_id else None

    def valid(self) -> list[Program]:
        return [p for p in self.programs.values() if p.fitness is not None]

    def archive(self) -> list[Program]:
        ranked = sorted(self.valid(), key=lambda p: (-p.fitness, p.id))
        return ranked[: self.config.archive_size]

    def elites(self, island: int) -> list[Program]:
        return [self.programs[pid] for _, pid in sorted(self.islands[island].items())]

    def sample(self) -> Pick:
        """A parent and inspirations from the current island; then the next island."""
        if self.best is None:
            raise RuntimeError("the database holds no valid program to evolve from")
        cfg, island = self.config, self.current_island
        elites = self.elites(island)
        roll = self.rng.random()
        if roll < cfg.exploration_ratio and elites:
            parent = self.rng.choice(elites)
        elif roll < cfg.exploration_ratio + cfg.exploitation_ratio:
            archive = self.archive()
            local = [p for p in archive if p.island == island]
            parent = self.rng.choice(local or archive)
        else:
            parent = self.rng.choice(self.valid())
        others = [p for p in elites if p.id != parent.id]
        inspirations: list[Program] = []
        if others and cfg.num_inspirations:
            top = max(others, key=lambda p: p.fitness)
            rest = [p for p in others if p.id != top.id]
            picks = self.rng.sample(rest, min(len(rest), cfg.num_inspirations - 1))
            inspirations = [top, *picks]
        self.current_island = (island + 1) % cfg.num_islands
        return Pick(island, parent, inspirations)

    def migrate(self) -> None:
        """Each island's top elites join the next island of the ring."""
        moves = []
        for island in range(self.config.num_islands):
            elites = sorted(self.elites(island), key=lambda p: -p.fitness)
            count = math.ceil(len(elites) * self.config.migration_rate)
            moves += [(p, (island + 1) % self.config.num_islands) for p in elites[:count]]
        for program, target in moves:
            self._place(program, target)

    # ----- state -------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {
            "config": asdict(self.config),
            "rng": [version, list(internal), gauss],
            "current_island": self.current_island,
            "best_id": self.best_id,
            "programs": [asdict(p) for p in self.programs.values()],
            "islands": [[[list(cell), pid] for cell, pid in sorted(cells.items())]
                        for cells in self.islands],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ProgramDatabase:
        db = cls(DatabaseConfig(**state["config"]))
        version, internal, gauss = state["rng"]
        db.rng.setstate((version, tuple(internal), gauss))
        db.current_island = state["current_island"]
        db.best_id = state["best_id"]
        for raw in map(dict, state["programs"]):
            cell = raw.pop("cell")
            program = Program(**raw, cell=tuple(cell) if cell is not None else None)
            db.programs[program.id] = program
            db.code_hashes.add(program.code_hash)
        db.islands = [{tuple(cell): pid for cell, pid in cells} for cells in state["islands"]]
        return db

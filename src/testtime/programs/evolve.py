"""The evolve loop of ThetaEvolve (Wang et al. 2025, "ThetaEvolve: Test-time Learning on
Open Problems"), inference-only: each generation samples ``batch`` (parent,
inspirations) pairs from the program database, asks one :class:`Generator` for a new
program per prompt in a single batched call, scores the programs in the sandbox,
inserts them, and checkpoints the whole state atomically. Rerunning on the same
folder resumes after the last finished generation and produces exactly what an
uninterrupted run would (for a seeded generator).

Rewards follow ThetaEvolve's graded error codes: no program in the answer -0.4, lazy
(identical code) -0.3, failed run -0.2, invalid solution -0.1; a valid program gets its
fitness, or with ``shaping`` ThetaEvolve's ``rl_normalized_reward``: the score clamped to
the problem's ``[A, B]``, mapped to [0, 1] (flipped when minimising), raised to
``alpha``. With a generator that learns (:class:`testtime.programs.rl.PolicyLearner`),
each scored generation is also one GRPO step on these rewards (ThetaEvolve's test-time
RL; shaping required, since raw fitness can rank a failure above a valid program), and
the learner's state is checkpointed with the run.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from testtime.backends.base import Generator, SamplingParams, Usage
from testtime.programs.database import DatabaseConfig, Pick, Program, ProgramDatabase
from testtime.programs.problems.base import Invalid, Problem
from testtime.programs.prompt import build_prompt, extract_code
from testtime.programs.sandbox import Limits, Sandbox
from testtime.store.atomic import atomic_write_json

PENALTY = {"format": -0.4, "lazy": -0.3, "execution": -0.2, "invalid": -0.1}
STATE = "state.json"


@dataclass(frozen=True)
class EvolveConfig:
    generations: int = 10
    batch: int = 8  # programs proposed per generation (one batched generate call)
    temperature: float = 0.8
    max_tokens: int = 2048
    seed: int = 0
    workers: int = 1  # sandbox runs in parallel
    shaping: bool = False
    alpha: float = 1.0
    database: DatabaseConfig = field(default_factory=DatabaseConfig)

    def __post_init__(self) -> None:
        for name in ("generations", "batch", "max_tokens", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")


def shaped_reward(problem: Problem, score: float, alpha: float) -> float:
    """ThetaEvolve's reward shaping: [A, B] -> [0, 1], then ``** alpha``."""
    low, high = problem.score_range
    x = (min(max(score, low), high) - low) / (high - low)
    return (x if problem.maximize else 1.0 - x) ** alpha


def _seed(seed: int, *parts: object) -> int:
    text = "/".join(map(str, (seed, *parts)))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


@dataclass
class EvolveResult:
    best: Program
    curve: list[float]  # the best score after each generation (index 0: the baseline)
    generations: int
    usage: Usage


class Evolution:
    def __init__(self, problem: Problem, generator: Generator, out: Path,
                 config: EvolveConfig | None = None, limits: Limits | None = None,
                 log: TextIO | None = None) -> None:
        self.problem, self.generator, self.out = problem, generator, Path(out)
        self.config = config or EvolveConfig()
        self.sandbox = Sandbox(limits)
        self.log = log if log is not None else sys.stderr
        self.learns = callable(getattr(generator, "learn", None))
        if self.learns and not self.config.shaping:
            raise ValueError("the test-time RL step needs reward shaping (--shaping): raw fitness "
                             "can rank a failed program above a valid one")

    # ----- scoring -----------------------------------------------------------------
    @property
    def _programs(self) -> bool:
        return self.problem.language == "python"

    def _prompt(self, pick: Pick) -> str:
        if self._programs:
            return build_prompt(self.problem, pick.parent, pick.inspirations)
        return self.problem.prompt_for(pick.parent, pick.inspirations)

    def _score(self, program: Program) -> Program:
        value: Any = program.code  # a problem in another language scores the answer itself
        if self._programs:
            run = self.sandbox.run(program.code, self.problem.entry)
            program.details = {"wall_s": round(run.wall_s, 3)}
            if not run.ok:
                program.reason, program.reward = run.reason, PENALTY["execution"]
                return program
            value = run.value
        try:
            score, details = self.problem.check(value)
        except Invalid as err:
            program.reason, program.reward = f"invalid: {err}", PENALTY["invalid"]
            return program
        program.score, program.fitness = score, self.problem.fitness(score)
        program.details.update(details)
        program.reward = (shaped_reward(self.problem, score, self.config.alpha)
                          if self.config.shaping else program.fitness)
        return program

    def _score_all(self, programs: list[Program]) -> list[Program]:
        with ThreadPoolExecutor(self.config.workers) as pool:
            return list(pool.map(self._score, programs))

    # ----- state -------------------------------------------------------------------
    def _fingerprint(self) -> dict[str, Any]:
        """The settings a resumed run must share, flat (``database.num_islands``)."""
        cfg = asdict(self.config)
        cfg.pop("generations")  # more generations may be asked for on resume
        cfg.pop("workers")  # parallel scoring gives the same results
        flat = {"problem": self.problem.name, "generator": self.generator.name}
        flat.update((k, v) for k, v in cfg.items() if k != "database")
        flat.update((f"database.{k}", v) for k, v in cfg["database"].items())
        flat.update((f"sandbox.{k}", v) for k, v in asdict(self.sandbox.limits).items())
        return flat

    def _load(self) -> tuple[ProgramDatabase, dict[str, Any]]:
        path = self.out / STATE
        if not path.exists():
            return ProgramDatabase(self.config.database, seed=self.config.seed), {
                "generation": -1, "curve": [], "usage": asdict(Usage())}
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ValueError(f"{path} is not a readable evolve state ({err})") from None
        saved, now = state.get("fingerprint") or {}, self._fingerprint()
        if saved != now:
            diff = ", ".join(f"{k}: {saved.get(k)!r} there, {now[k]!r} now" for k in now
                             if saved.get(k) != now[k])
            raise ValueError(f"{self.out} holds an evolve run with other settings ({diff}); "
                             "use another --out")
        if self.learns and state.get("learner_state"):
            self.generator.load_state(self.out / state["learner_state"])
        return ProgramDatabase.from_state(state["database"]), state

    def _save(self, db: ProgramDatabase, run: dict[str, Any]) -> None:
        atomic_write_json(self.out / STATE, {**run, "fingerprint": self._fingerprint(),
                                             "database": db.state()})

    # ----- the loop ----------------------------------------------------------------
    def run(self) -> EvolveResult:
        cfg, problem = self.config, self.problem
        db, run = self._load()
        usage = Usage(**run["usage"])
        if run["generation"] < 0:  # generation 0: the baseline
            base = self._score(Program("g0-0", problem.baseline, generation=0, island=0))
            if base.score is None:
                raise RuntimeError(f"the {problem.name} baseline fails: {base.reason}")
            db.add_initial(base)
            run.update(generation=0, curve=[base.score], mean_reward=[base.reward])
            self._save(db, run)
            self._line(0, db, [base], 0.0)
        for gen in range(run["generation"] + 1, cfg.generations + 1):
            start = time.monotonic()
            picks = [db.sample() for _ in range(cfg.batch)]
            prompts = [self._prompt(pick) for pick in picks]
            params = SamplingParams(n=1, temperature=cfg.temperature, max_tokens=cfg.max_tokens,
                                    seed=_seed(cfg.seed, "generation", gen))
            result = self.generator.generate(prompts, params)
            usage += result.usage
            if len(result.completions) != len(prompts) or not all(result.completions):
                raise ValueError(f"generator {self.generator.name!r} answered "
                                 f"{len(result.completions)} of {len(prompts)} prompts")
            children, lazy = [], []
            for i, (pick, samples) in enumerate(zip(picks, result.completions, strict=True)):
                text = samples[0].text
                code = extract_code(text) if self._programs else problem.read(text)
                child = Program(f"g{gen}-{i}", code or text, generation=gen,
                                island=pick.island, parent_id=pick.parent.id)
                if code is None:
                    child.reason, child.reward = "format: no program or answer", PENALTY["format"]
                    lazy.append(child)
                elif (why := db.lazy(code, pick.parent)) is not None:
                    child.reason, child.reward = why, PENALTY["lazy"]
                    lazy.append(child)
                else:
                    children.append(child)
            scored = self._score_all(children)
            batch = sorted(scored + lazy, key=lambda p: int(p.id.split("-")[1]))
            for child in batch:
                db.add(child)
            if gen % cfg.database.migration_interval == 0:
                db.migrate()
            run["curve"].append(db.best.score)
            run["mean_reward"] = [*run.get("mean_reward", []), sum(p.reward for p in batch) / len(batch)]
            run.update(generation=gen, usage=asdict(usage))
            previous = run.get("learner_state")
            if self.learns:
                stats = self.generator.learn(prompts, [row[0] for row in result.completions],
                                             [p.reward for p in batch])
                run["rl"] = [*run.get("rl", []), {"generation": gen, **stats}]
                run["learner_state"] = f"learner-{gen}.pt"
                self.generator.save_state(self.out / run["learner_state"])
            self._save(db, run)
            if previous and previous != run.get("learner_state"):  # the state now names the new one
                (self.out / previous).unlink(missing_ok=True)
            self._line(gen, db, scored + lazy, time.monotonic() - start)
        return EvolveResult(db.best, run["curve"], run["generation"], usage)

    def _line(self, gen: int, db: ProgramDatabase, batch: list[Program], seconds: float) -> None:
        valid = sum(p.score is not None for p in batch)
        print(f"evolve {self.problem.name}: generation {gen}/{self.config.generations}, "
              f"best {db.best.score:.8g}, valid {valid}/{len(batch)}, {seconds:.1f} s",
              file=self.log, flush=True)


def load_state(out: Path) -> dict[str, Any]:
    """A run folder's saved state (for reports)."""
    return json.loads((Path(out) / STATE).read_text(encoding="utf-8"))

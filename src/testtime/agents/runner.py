"""Resumable multi-episode runs and their summary with bootstrap intervals.

Each finished episode is one item of a :class:`~testtime.store.RunStore` under
``out`` (keyed by seed; the run's config — environment, policy, loop options —
is fingerprinted, so a rerun resumes and a changed config is refused), and
``episodes.jsonl`` is exported when the run ends or is interrupted. Success is summarised
with a percentile bootstrap over episodes; two runs on the same seeds compare
with a paired bootstrap of their per-seed difference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from testtime.agents.env import Environment
from testtime.agents.loop import Episode, LoopOptions, run_episode
from testtime.agents.policy import Policy
from testtime.scale.summary import bootstrap_ci
from testtime.store import RunStore


def run_config(env: Environment, policy: Policy, options: LoopOptions) -> dict[str, Any]:
    return {"kind": "agent-run", "env": env.describe(), "policy": policy.describe(),
            "options": asdict(options)}


def run_episodes(
    env: Environment, policy: Policy, seeds: Sequence[int], options: LoopOptions, out: str | Path,
    *, on_episode: Callable[[Episode, bool], None] | None = None,
) -> list[Episode]:
    """Play every seed (skipping those stored in ``out``); ``on_episode(ep, resumed)`` reports."""
    with RunStore(out, run_config(env, policy, options)) as store:
        episodes = []
        try:
            for seed in seeds:
                key = store.key("episode", seed)
                stored = store.get(key)
                if stored is not None:
                    episode, resumed = Episode.from_dict(stored), True
                else:
                    episode, resumed = run_episode(env, policy, seed, options), False
                    store.put(key, episode.to_dict())
                episodes.append(episode)
                if on_episode is not None:
                    on_episode(episode, resumed)
        finally:  # also when interrupted: the file shows every episode stored so far
            store.export_jsonl(Path(out) / "episodes.jsonl")
    return episodes


def summarise(episodes: Sequence[Episode], *, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Success rate with its 95% bootstrap CI, and the mean steps and tokens per episode."""
    if not episodes:
        raise ValueError("no episodes to summarise")
    success = [float(e.success) for e in episodes]
    low, high = bootstrap_ci(success, resamples=resamples, seed=seed)
    return {
        "episodes": len(episodes), "success": float(np.mean(success)), "ci_low": low,
        "ci_high": high,
        "steps": float(np.mean([e.ledger.steps for e in episodes])),
        "invalid_steps": float(np.mean([e.ledger.invalid_steps for e in episodes])),
        "reasoning_tokens": float(np.mean([e.ledger.reasoning_tokens for e in episodes])),
        "charged_tokens": float(np.mean([e.ledger.compute.charged_tokens for e in episodes])),
        "answered": float(np.mean([e.ended == "answer" for e in episodes])),
    }


def paired_success(episodes: Sequence[Episode], baseline: Sequence[Episode], *,
                   resamples: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Mean success difference (episodes − baseline) over shared seeds, paired bootstrap CI."""
    base = {e.seed: float(e.success) for e in baseline}
    diffs = [float(e.success) - base[e.seed] for e in episodes if e.seed in base]
    if not diffs:
        raise ValueError("no seed in common with the baseline")
    low, high = bootstrap_ci(diffs, resamples=resamples, seed=seed)
    return float(np.mean(diffs)), low, high

"""Demonstrations of the action format: the BFS reference policy's episodes as
(prompt, completion) pairs in exactly the prompts :class:`GeneratorPolicy` builds.

The data a supervised step needs to teach a model (the embedded TinyReasoner
has never seen the format) to act: each step's prompt, fitted to ``limit``
tokens by ``count`` like the policy's, and the completion ``" <thought>\\naction:
<action>"`` in lower case (the embedded character tokenizer has no capitals; the policy
reads the action line, and the web environment the answer, case-insensitively). Only
solved episodes are kept (BFS solves every generated task within a horizon of the
site's size). Seeds are the caller's: keep training and
evaluation seeds apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from testtime.agents.env import Environment
from testtime.agents.loop import LoopOptions, run_episode
from testtime.agents.policy import Trajectory, Turn, build_prompt, fit_prompt
from testtime.agents.reference import BFSPolicy


def demonstrations(
    env: Environment, seeds: Sequence[int], *, window: int = 4, horizon: int = 500,
    limit: int | None = None, count: Callable[[str], int] | None = None,
) -> Iterator[dict[str, object]]:
    """One ``{"seed", "step", "prompt", "completion"}`` per step of each solved episode."""
    if (limit is None) != (count is None):
        raise ValueError("give both limit and count (to fit prompts to a context), or neither")
    for seed in seeds:
        episode = run_episode(env, BFSPolicy(), seed, LoopOptions(horizon=horizon))
        if not episode.success:
            continue
        first = env.reset(seed)
        trajectory = Trajectory(first, env.action_help)
        for step, turn in enumerate(episode.turns):
            prompt = (build_prompt(trajectory, window) if limit is None or count is None
                      else fit_prompt(trajectory, window, limit, count))
            yield {"seed": seed, "step": step, "prompt": prompt,
                   "completion": f" {turn['thought']}\naction: {turn['action']}\n".lower()}
            trajectory.turns.append(Turn(turn["thought"], turn["action"], turn["observation"]))

"""testtime.agents: policies that act in text environments, and interaction scaling (TTI).

``ENVIRONMENTS`` holds the environments by name (``web``: the built-in
generated site); :func:`run_episode` / :func:`run_episodes` play them with any
:class:`Policy` (a :class:`GeneratorPolicy` over any backend, or the scripted
:class:`BFSPolicy`). TTI's curriculum RL over the horizon trains the embedded GPT-2 as a
:class:`~testtime.agents.learner.LearnerPolicy` (:mod:`testtime.agents.tti_rl`, imported on
demand: it loads torch).
"""

from testtime.agents import web as _web  # noqa: F401  (registers "web")
from testtime.agents.env import ENVIRONMENTS, Environment, Step
from testtime.agents.loop import Episode, LoopOptions, run_episode
from testtime.agents.policy import GeneratorPolicy, Policy
from testtime.agents.reference import BFSPolicy
from testtime.agents.runner import paired_success, run_episodes, summarise

__all__ = [
    "ENVIRONMENTS", "BFSPolicy", "Environment", "Episode", "GeneratorPolicy", "LoopOptions",
    "Policy", "Step", "paired_success", "run_episode", "run_episodes", "summarise",
]

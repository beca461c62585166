"""testtime.programs: searching over programs at test time.

- ThetaEvolve's evolve loop (Wang et al. 2025): :mod:`~testtime.programs.sandbox` (+ the
  child :mod:`~testtime.programs.runner`), :mod:`~testtime.programs.database` (islands,
  MAP-Elites cells, selection, lazy penalty), :mod:`~testtime.programs.prompt`,
  :mod:`~testtime.programs.evolve` (the resumable loop, rewards, shaping),
  :mod:`~testtime.programs.rl` (the test-time GRPO step), :mod:`~testtime.programs.mutate`
  (the no-model random-mutation generator), :mod:`~testtime.programs.report`, and the
  built-in :mod:`~testtime.programs.problems`.
- The Latent Program Network (Macfarlane & Bonnet 2024): :mod:`testtime.programs.lpn`.
"""

"""testtime.layers: sequence layers whose state learns at test time.

- :mod:`testtime.layers.lact`: LaCT, large-chunk test-time training of SwiGLU fast weights
  (with :mod:`~testtime.layers.fast_optim`'s online optimisers and
  :mod:`~testtime.layers.attention`'s sliding-window companion).
- :mod:`testtime.layers.rwkv7`: RWKV-7 "Goose" (generalised delta rule), recurrent and
  chunked forms; its initial state is what :mod:`testtime.learn.state_tuning` tunes.
- :mod:`testtime.layers.lm`, :mod:`~testtime.layers.recall`, :mod:`~testtime.layers.train`:
  tiny language models over these mixers, the key–value recall data and a resumable trainer.
"""

"""Root conftest: loaded first, it puts ``tests/`` on the path for :mod:`tiny_gpt2`."""

"""Root conftest: loaded first, it puts ``tests/`` on the path for the shared helper
modules (:mod:`tiny_gpt2`, :mod:`inprocess_cli`)."""

"""testtime.backends."""

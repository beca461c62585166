"""testtime.adapt."""

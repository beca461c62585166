"""testtime.learn."""

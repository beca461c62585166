"""testtime.serve."""

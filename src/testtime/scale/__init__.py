"""testtime.scale."""

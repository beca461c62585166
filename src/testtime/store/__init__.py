"""testtime.store."""

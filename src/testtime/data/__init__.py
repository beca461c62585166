"""testtime.data."""

"""testtime.zoo."""

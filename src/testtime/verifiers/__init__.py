"""testtime.verifiers."""

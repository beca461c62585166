"""testtime: spend compute at test time."""

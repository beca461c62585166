"""testtime.tasks."""

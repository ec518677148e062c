"""One grid cell as a Ray Train run: the per-worker loop, LR schedules, checkpoint/resume."""

"""The shipped job files, one grid each; a package so that they share defaults by importing
each other (`from jobs import _cpu_defaults`) instead of loading sibling files by path.
A job file is `jobs/[!_]*.py`; a module whose name starts with `_` is shared code, not a job.

Run one as `python jobs/FILE.py` or `vlscale sweep jobs/FILE.py`; `vlscale.platform.sweep.jobs`
imports it as `jobs.FILE` either way (the checkout root goes on `sys.path`).
"""

"""Keep the sweep's cell counts in the MLflow UI current while the sweep runs.

A Ray Tune callback on the driver: at the start and each time a trial (a cell) completes or
fails, `refresh_sweep_status` recounts the sweep's cell runs and rewrites the parent run's
`vlscale.cells` tag and description line, so a user watching the runs table sees how many cells
are finished, failed, running and missing without waiting for the sweep to end.
"""

from __future__ import annotations

import logging

from mlflow.exceptions import MlflowException
from ray.tune import Callback

from vlscale import tracking
from vlscale.errors import UserError
from vlscale.tracking.sweep_status import CellCounts, refresh_sweep_status

log = logging.getLogger(__name__)


class CellsStatusCallback(Callback):
    """Refreshes the sweep's `CellCounts` in MLflow as cells end (`last` holds the latest)."""

    def __init__(self, sweep: tracking.SweepRun, declared: int) -> None:
        self.sweep = sweep
        self.declared = declared
        self.last: CellCounts | None = None

    def refresh(self) -> CellCounts | None:
        """Recount and write; a store that is down is logged, never fails the sweep (the
        counts are written again when the next cell ends and when the sweep finishes)."""
        try:
            self.last = refresh_sweep_status(self.sweep, declared=self.declared)
        except (MlflowException, OSError, UserError) as error:
            log.warning("cell counts not written to %s: %s", self.sweep.tracking_uri, error)
        return self.last

    def setup(self, **info) -> None:
        self.refresh()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.refresh()

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.refresh()

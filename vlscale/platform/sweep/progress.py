"""Sweep progress on the console: one line per cell state change and an overall bar.

A Ray Tune callback on the driver: trial start, completion and error are the cells' state changes;
the bar counts cells done / total and compute done / total (compute = the cells' GFLOPs).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

from ray.tune import Callback

from vlscale.platform.config import format_count
from vlscale.platform.sweep import ledger

BAR_WIDTH = 28


class SweepProgress(Callback):
    def __init__(self, entries: Sequence[ledger.LedgerEntry],
                 launch: Sequence[ledger.LedgerEntry], stream=None) -> None:
        self.total_cells = len(entries)
        self.total_compute = sum(e.compute for e in entries) or 1.0
        self.done_cells = sum(e.state in ledger.DONE for e in entries)
        self.done_compute = sum(e.compute for e in entries if e.state in ledger.DONE)
        self.by_hash = {e.cell.cell_hash: e for e in launch}
        self.stream = stream  # resolved at print time: Tune pickles its callbacks
        self.started = time.monotonic()
        self.finished_since_refit = 0
        self.refit: Callable[[], None] | None = None
        self.refit_every = 0

    def _entry(self, trial) -> ledger.LedgerEntry | None:
        return self.by_hash.get(trial.config.get("trial", {}).get("cell_hash"))

    def _say(self, entry: ledger.LedgerEntry | None, state: str) -> None:
        if entry is None:
            return
        print(f"[{time.monotonic() - self.started:7.1f}s] {state:<9} {ledger.describe_cell(entry)}",
              file=self.stream or sys.stdout, flush=True)

    def bar(self) -> str:
        fraction = self.done_compute / self.total_compute
        filled = int(BAR_WIDTH * fraction)
        return (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] cells {self.done_cells}/"
                f"{self.total_cells}  compute {format_count(self.done_compute)}/"
                f"{format_count(self.total_compute)} GFLOPs ({fraction:.0%})")

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._say(self._entry(trial), "running")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        entry = self._entry(trial)
        if entry is not None:
            self.done_cells += 1
            self.done_compute += entry.compute
        self._say(entry, "finished")
        print(self.bar(), file=self.stream or sys.stdout, flush=True)
        self.finished_since_refit += 1
        if self.refit and self.refit_every and self.finished_since_refit >= self.refit_every:
            self.finished_since_refit = 0
            self.refit()

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._say(self._entry(trial), "failed")
        print(self.bar(), file=self.stream or sys.stdout, flush=True)

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self._say(self._entry(trial), "retrying")

"""The global sample order: a pure function of (shards, seed, epoch), never of the worker count.

Every epoch, the row groups ("units") are permuted with the epoch's seed and cut into windows of
`units_per_window` consecutive units; a window's rows are permuted again with a seed of their own.
The epoch's sample sequence is the windows' usable rows in that order. A window is the unit of
work of one Ray task, so it can be produced in parallel and still be consumed in order, and
a position in the sequence is (epoch, window, offset) — cheap to resume from.

Why windows of several row groups: consecutive samples then mix several shards (a row group is
often written from one source), while a read task stays bounded (a few thousand rows).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from vlscale.errors import UserError

DEFAULT_WINDOW_ROWS = 4096
_UNIT_ORDER, _ROW_ORDER = 1, 2  # seed-stream tags: keep the two kinds of permutation independent


@dataclass(frozen=True)
class Cursor:
    """A position in the global sample sequence."""

    epoch: int
    window: int
    offset: int
    """Usable samples of the window already consumed."""


class SampleOrder:
    """The deterministic order of units and rows for every epoch."""

    def __init__(self, unit_rows: np.ndarray, seed: int, window_rows: int = DEFAULT_WINDOW_ROWS):
        if seed < 0:
            raise UserError(f"the data seed must be non-negative, got {seed}")
        self.unit_rows = np.asarray(unit_rows, dtype=np.int64)
        self.seed = int(seed)
        typical = int(np.median(self.unit_rows)) if len(self.unit_rows) else 1
        self.units_per_window = max(1, round(window_rows / max(typical, 1)))
        self.num_windows = -(-len(self.unit_rows) // self.units_per_window)

    def windows(self, epoch: int) -> list[np.ndarray]:
        """The unit indices of each window of `epoch`, in order."""
        return _windows(self.seed, epoch, len(self.unit_rows), self.units_per_window)

    def window_units(self, epoch: int, window: int) -> np.ndarray:
        return self.windows(epoch)[window]

    def row_permutation(self, epoch: int, window: int) -> np.ndarray:
        """The order of the window's rows, indices into the concatenation of its units' rows."""
        rows = int(self.unit_rows[self.window_units(epoch, window)].sum())
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _ROW_ORDER, epoch, window]))
        return rng.permutation(rows)

    def advance(self, epoch: int, window: int, steps: int) -> tuple[int, int]:
        """The (epoch, window) `steps` windows after (epoch, window)."""
        flat = epoch * self.num_windows + window + steps
        return divmod(flat, self.num_windows)

    def locate(self, samples: int, usable_per_unit: np.ndarray) -> Cursor:
        """The cursor of the `samples`-th usable sample (0-based) of the endless sequence."""
        usable_per_epoch = int(usable_per_unit.sum())
        if usable_per_epoch == 0:
            raise UserError("the shard set has no usable rows (no decodable image with a caption)")
        epoch, within = divmod(samples, usable_per_epoch)
        for window, units in enumerate(self.windows(epoch)):
            in_window = int(usable_per_unit[units].sum())
            if within < in_window:
                return Cursor(epoch, window, within)
            within -= in_window
        raise AssertionError("unreachable: within < usable_per_epoch")


@functools.lru_cache(maxsize=4)
def _windows(seed: int, epoch: int, num_units: int, units_per_window: int) -> list[np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, _UNIT_ORDER, epoch]))
    order = rng.permutation(num_units)
    return [order[start:start + units_per_window]
            for start in range(0, num_units, units_per_window)]

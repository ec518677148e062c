"""Which cells a law may be fitted on: the paper's compute and samples-seen limits.

Nezhurina et al. 2025 fit their main figure (fig1) only on cells with C <= 1e12 GFLOPs
(`--max_x`), samples seen <= 1e10 (`--max_samples_seen`) and C >= 1e6 (`--min_flops`), and drop
runs that failed at large scale: C > 1e11 with error E >= 0.7 (`filter_data` in their
`scaling_laws/main.py`, applied to ImageNet and MSCOCO error rates after the metric became
1 - accuracy, before the frontier). `Limits` applies the same rules to a table of cells that has
a compute and an error column. Every limit is inclusive where the paper's is (`<=`, `>=`); the
failed-run rule drops C > 1e11 (strictly) with E >= 0.7, as theirs keeps E < 0.7 above 1e11.

The limits act on cells (after the best run per cell is taken): compute and samples seen are
the same for every run of a cell, and if a cell's best run failed so did all of its runs, so
this drops exactly the cells the paper's row filter removes.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from vlscale.analysis import columns as C
from vlscale.errors import UserError

FAILED_RUN_COMPUTE = 1e11
"""GFLOPs above which a run with error >= `FAILED_RUN_ERROR` counts as failed (the paper's)."""
FAILED_RUN_ERROR = 0.7
"""Error (1 - accuracy) at or above which a large run counts as failed (the paper's)."""


@dataclass(frozen=True)
class Limits:
    """Inclusive compute and samples-seen bounds and the failed-large-run rule; None / False
    leaves a rule off (the default: nothing is dropped)."""

    max_compute: float | None = None
    min_compute: float | None = None
    max_samples_seen: float | None = None
    drop_failed_large_runs: bool = False

    def __post_init__(self) -> None:
        for name in ("max_compute", "min_compute", "max_samples_seen"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value > 0):
                raise UserError(f"--{name.replace('_', '-')} must be a positive number, "
                                f"got {value}")
        if (self.min_compute is not None and self.max_compute is not None
                and self.min_compute > self.max_compute):
            raise UserError(f"--min-compute {self.min_compute:g} is above --max-compute "
                            f"{self.max_compute:g}: no cell could be kept")

    @property
    def active(self) -> bool:
        return any(v not in (None, False) for v in asdict(self).values())

    def describe(self) -> str:
        """The active limits in words, e.g. "C <= 1e+12, samples_seen <= 1e+10"."""
        parts = []
        if self.min_compute is not None:
            parts.append(f"C >= {self.min_compute:g}")
        if self.max_compute is not None:
            parts.append(f"C <= {self.max_compute:g}")
        if self.max_samples_seen is not None:
            parts.append(f"{C.SAMPLES_SEEN} <= {self.max_samples_seen:g}")
        if self.drop_failed_large_runs:
            parts.append(f"without failed large runs (C > {FAILED_RUN_COMPUTE:g} with "
                         f"E >= {FAILED_RUN_ERROR:g})")
        return ", ".join(parts) or "none"

    def record(self) -> dict:
        return asdict(self)

    def apply(self, cells: pd.DataFrame, compute: str = C.GFLOPS_TOTAL, error: str = "error",
              error_mode: str | None = None) -> pd.DataFrame:
        """The rows of `cells` within the limits; a UserError when none is left."""
        if not self.active:
            return cells
        keep = pd.Series(True, index=cells.index)
        needs = [compute] if (self.max_compute or self.min_compute
                              or self.drop_failed_large_runs) else []
        needs += [C.SAMPLES_SEEN] if self.max_samples_seen is not None else []
        needs += [error] if self.drop_failed_large_runs else []
        missing = [name for name in needs if name not in cells.columns]
        if missing:
            raise UserError(f"the limits ({self.describe()}) need column(s) "
                            f"{', '.join(missing)}, which the table lacks")
        if self.drop_failed_large_runs and error_mode == "value":
            raise UserError("--drop-failed-large-runs is the paper's rule for error = "
                            f"1 - accuracy (E >= {FAILED_RUN_ERROR:g} at C > "
                            f"{FAILED_RUN_COMPUTE:g}); it does not apply to a loss "
                            "(--error value)")
        if self.max_compute is not None:
            keep &= cells[compute] <= self.max_compute
        if self.min_compute is not None:
            keep &= cells[compute] >= self.min_compute
        if self.max_samples_seen is not None:
            keep &= cells[C.SAMPLES_SEEN] <= self.max_samples_seen
        if self.drop_failed_large_runs:
            keep &= ~((cells[compute] > FAILED_RUN_COMPUTE) & (cells[error] >= FAILED_RUN_ERROR))
        if not keep.any():
            raise UserError(f"the limits ({self.describe()}) leave none of the {len(cells)} "
                            "cells: loosen them")
        return cells[keep]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The limits as command-line options (`vlscale fit`, `vlscale report`)."""
    group = parser.add_argument_group(
        "limits", "which cells are fitted, after the best run per cell is taken (the paper's "
        "fig1: --max-compute 1e12 --max-samples-seen 1e10 --min-compute 1e6 "
        "--drop-failed-large-runs)")
    group.add_argument("--max-compute", type=float, metavar="C",
                       help="keep cells with compute <= C GFLOPs (the paper's --max_x)")
    group.add_argument("--min-compute", type=float, metavar="C",
                       help="keep cells with compute >= C GFLOPs (the paper's --min_flops)")
    group.add_argument("--max-samples-seen", type=float, metavar="N",
                       help="keep cells with samples_seen <= N (the paper's --max_samples_seen)")
    group.add_argument("--drop-failed-large-runs", action="store_true",
                       help=f"drop cells with compute > {FAILED_RUN_COMPUTE:g} GFLOPs and error "
                            f">= {FAILED_RUN_ERROR:g}: runs that failed at large scale (the "
                            "paper's rule for ImageNet and MSCOCO error = 1 - accuracy)")


def from_arguments(args: argparse.Namespace) -> Limits:
    return Limits(max_compute=args.max_compute, min_compute=args.min_compute,
                  max_samples_seen=args.max_samples_seen,
                  drop_failed_large_runs=args.drop_failed_large_runs)

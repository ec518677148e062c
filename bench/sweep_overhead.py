"""Sweep overhead: wall time of a small grid against the sum of its cells' own training times.

Runs an 8-cell grid (2 procedures x 2 sizes x 2 samples-seen values) on an embedded Ray cluster
with a fresh MLflow store, then divides the sweep's wall time (all of `run_sweep`: grid
validation, Ray start, the new store's schema creation, ledger, Tune, trial start-up; only the
report is left out, `report=False`, and the synthetic data is written before the clock starts)
by the sum of the cells' own `wall_time_s` (each cell's time from the opening of its MLflow run
to its last metric). Target: <= 1.25 on 2 cores. Where the rest goes: docs/design.md, "Sweep
overhead".

    python bench/sweep_overhead.py [--samples 1024 2048]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the `helpers` package


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, nargs=2, default=[2048, 4096])
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from vlscale import tracking
    from vlscale.platform.data.synth import write_synth
    from vlscale.platform.sweep.driver import SweepOptions, run_sweep

    from helpers.grids import tiny_grid

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_synth(work / "synth", samples=max(args.samples), image_size=32, seed=0,
                    eval_samples=128, zeroshot_samples=128)
        grid = tiny_grid(str(work / "synth"), name="overhead")
        grid = type(grid)(**{**grid.__dict__, "samples_seen": tuple(args.samples)})
        options = SweepOptions(tracking_uri=f"sqlite:///{work / 'mlflow.db'}",
                               storage_path=str(work / "ray"), report=False)
        started = time.perf_counter()
        run_sweep(grid, options)
        wall = time.perf_counter() - started
        runs = tracking.list_cell_runs(options.tracking_uri, grid.name)
        cell_time = sum(r.metrics[tracking.METRIC_WALL_TIME_S] for r in runs)
    print(f"{len(runs)} cells, samples seen {args.samples}, 1 trial at a time, 2 CPUs")
    print(f"sweep wall time:            {wall:8.1f} s")
    print(f"sum of cells' own times:    {cell_time:8.1f} s")
    print(f"ratio sweep / cells: {wall / cell_time:.2f}  (target <= 1.25)")


if __name__ == "__main__":
    main()

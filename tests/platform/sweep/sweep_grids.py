"""The sweep driver of the kill test, as its own process: `python sweep_grids.py SHARDS URI
STORAGE` runs `helpers.grids.tiny_grid` without a report."""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: the `helpers` package
    from vlscale.platform.sweep.driver import SweepOptions, run_sweep

    from helpers.grids import tiny_grid

    shards, uri, storage = sys.argv[1:4]
    run_sweep(tiny_grid(shards), SweepOptions(tracking_uri=uri, storage_path=storage,
                                              report=False))

"""Sweep overhead: wall time of a small grid against the sum of its cells' own training times.

Runs an 8-cell grid (2 procedures x 2 sizes x 2 samples-seen values) on an embedded Ray cluster
with a fresh MLflow store, then divides the sweep's wall time (all of `run_sweep`: grid
validation, Ray start, the new store's schema creation, ledger, Tune, trial start-up; only the
report is left out, `report=False`, and the synthetic data is written before the clock starts)
by the sum of the cells' own `wall_time_s` (each cell's time from the opening of its MLflow run
to its last metric). Target: <= 1.25 on 2 cores. Where the rest goes: docs/design.md, "Sweep
overhead".

Then, in a fresh process once the sweep's Ray is down, the floor any Ray Tune sweep of as many
cells pays on this machine: `ray.init` with vlscale's settings and a Tune grid of as many
trials (one at a time, actors reused, each with its cell's trial resources, vlscale's Tune
loggers) whose trainable
only imports what a cell's trial imports (torch, open_clip, MLflow, vlscale's trainer) and
reports once. What the sweep spends beyond its cells and that floor is vlscale's own; the floor
over the cells is the best ratio a sweep on Ray Tune reaches here.

    python bench/sweep_overhead.py [--samples 1024 2048]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the `helpers` package


def empty_trial(config: dict) -> None:
    """A trial that imports what a cell's trial imports, then reports once."""
    import mlflow  # noqa: F401
    import open_clip  # noqa: F401
    import torch  # noqa: F401
    from ray import tune

    import vlscale.platform.train.loop  # noqa: F401

    tune.report({"trial": config["trial"]})


def floor_seconds(resources: list[dict[str, float]], storage: str) -> dict[str, float]:
    """Ray's start and an empty Tune grid of one trial per entry of `resources` (what each
    reserves), timed as `run_sweep` is timed (`ray` and vlscale's driver imported before the
    clock starts, Tune after)."""
    import ray

    from vlscale.platform.cluster import ensure_ray
    from vlscale.platform.sweep.driver import TUNE_LOGGERS_ENV

    os.environ.setdefault(TUNE_LOGGERS_ENV, "1")  # as the sweep sets it

    started = time.perf_counter()
    ensure_ray()  # as `run_sweep` starts its embedded cluster
    ray_up = time.perf_counter() - started
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    tuner = tune.Tuner(
        tune.with_resources(empty_trial, lambda config: resources[config["trial"]]),
        param_space={"trial": tune.grid_search(list(range(len(resources))))},
        tune_config=tune.TuneConfig(max_concurrent_trials=1, reuse_actors=True),
        run_config=tune.RunConfig(name="floor", storage_path=storage, verbose=0,
                                  callbacks=[JsonLoggerCallback()]))
    results = tuner.fit()
    total = time.perf_counter() - started
    ray.shutdown()
    if results.errors:
        raise RuntimeError(f"the empty trials failed: {results.errors[0]}")
    return {"ray_up": ray_up, "total": total}


def measure_floor(resources: list[dict[str, float]], storage: Path) -> dict[str, float]:
    """`floor_seconds` in a fresh process (its own Ray, no module imported yet)."""
    result = subprocess.run(
        [sys.executable, __file__, "--floor-only", json.dumps(resources), str(storage)],
        capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"the floor measurement failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, nargs=2, default=[2048, 4096])
    parser.add_argument("--floor-only", nargs=2, metavar=("RESOURCES_JSON", "STORAGE"),
                        help="only measure the Ray + Tune floor (what the sweep run calls)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if args.floor_only:
        print(json.dumps(floor_seconds(json.loads(args.floor_only[0]), args.floor_only[1])))
        return
    import ray

    from vlscale import tracking
    from vlscale.platform.data.synth import write_synth
    from vlscale.platform.sweep.driver import SweepOptions, run_sweep, trial_resources

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
        ray.shutdown()
        floor = measure_floor([trial_resources(cell) for cell in grid.cells()], work / "floor")
    print(f"{len(runs)} cells, samples seen {args.samples}, 1 trial at a time, "
          f"{os.cpu_count()} CPUs")
    print(f"sweep wall time:            {wall:8.1f} s")
    print(f"sum of cells' own times:    {cell_time:8.1f} s")
    print(f"Ray + Tune floor:           {floor['total']:8.1f} s  (fresh process: Ray up in "
          f"{floor['ray_up']:.1f} s, then {len(runs)} empty trials importing what a cell's "
          "trial imports)")
    print(f"vlscale's own fixed cost:   {wall - cell_time - floor['total']:8.1f} s  "
          "(sweep - cells - floor)")
    print(f"best ratio on Ray Tune here: {(cell_time + floor['total']) / cell_time:.2f}  "
          "((cells + floor) / cells)")
    print(f"ratio sweep / cells: {wall / cell_time:.2f}  (target <= 1.25)")


if __name__ == "__main__":
    main()

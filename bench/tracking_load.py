"""Tracking load: a cold and a cached `load_results` of a 10,000-run sweep, against a plain
`mlflow.search_runs` over the same runs measured in the same run.

Builds each store fast but through the real logging path: a couple of dozen cells are logged
with `CellRunLogger` exactly as training logs them (sweep parent, cell runs, compute, every
evaluation at its samples seen, finish), half cosine cells with one evaluation and half
constant-LR cells evaluated at `--eval-points` checkpoints (the paper's grid: 7,575 runs and
123,000 checkpoints, ~16 per run); then the rows of those runs (runs, tags, params, metrics,
latest metrics) are copied with SQL under new run ids up to `--runs` runs, and every run's
start and end are moved a day back (a sweep that finished earlier). Stores: the embedded
kind (SQLite file) and PostgreSQL (a private server on 127.0.0.1, `tests/helpers/postgres.py`).
Target: cold < 15 s, cached < 1 s on both. Each figure is wall time; the process's own CPU time
is printed beside it (on a shared machine the difference is time spent waiting for a core, and
for PostgreSQL, the server's own work).

    python bench/tracking_load.py [--runs 10000] [--stores sqlite postgres]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the `helpers` package

SWEEP = "load-bench"
BASE_CELLS = 24
DAY_MS = 86_400_000
RUN_TABLES = ("runs", "tags", "params", "latest_metrics", "metrics")
"""The MLflow tables holding a run's rows (keyed by run_uuid) that the copies duplicate."""


def evaluations(error: float) -> dict[str, dict[str, float]]:
    """What each evaluation logs: 3 tasks, 8 metrics, monotone in one error."""
    return {"zeroshot": {"acc1": 1 - error, "acc5": 1 - 0.55 * error,
                         "mean_per_class_recall": 1 - 1.02 * error},
            "retrieval": {"image_to_text_r1": 1 - 1.1 * error, "text_to_image_r1": 1 - 1.15 * error},
            "heldout": {"loss": 1.5 + 4 * error, "contrastive_loss": 1.0 + 3 * error,
                        "caption_loss": 0.5 + error}}


def log_base_cells(uri: str, eval_points: int) -> int:
    """Log `BASE_CELLS` cells through `open_cell_run` / `log_eval` as training does; returns the
    number of evaluated checkpoints."""
    from vlscale import tracking
    from vlscale.testing.synthetic import (
        ARCH_GFLOPS,
        CLIP,
        MAMMUT,
        SyntheticProcedure,
        synthetic_cell,
    )

    const = SyntheticProcedure("mammut-const", "mammut", a=MAMMUT.a, c=MAMMUT.c, d=MAMMUT.d,
                               schedule="const")
    sweep = tracking.start_sweep_parent(uri, SWEEP)
    checkpoints = 0
    half = BASE_CELLS // 2
    archs = list(ARCH_GFLOPS.items())
    for index in range(BASE_CELLS):
        arch, gflops = archs[index % len(archs)]
        samples = 100_000 * (1 + index // len(archs))
        procedure = CLIP if index < half else const
        points = (samples,) if index < half else tuple(
            samples * (k + 1) for k in range(eval_points))
        cell = synthetic_cell(procedure, arch, points[-1],
                              points if procedure is const else ())
        with tracking.open_cell_run(cell, sweep=sweep, flush_interval_s=3600) as run:
            run.log_compute(gflops, points[-1])
            for point in points:
                error = float(procedure.error(gflops * point))
                for task, values in evaluations(error).items():
                    run.log_eval(task, values, point)
            run.log_metrics({tracking.METRIC_WALL_TIME_S: 60.0 * gflops,
                             tracking.METRIC_ACCELERATOR_HOURS: gflops / 60.0}, points[-1])
        checkpoints += len(points)
    sweep.finish()
    return checkpoints


def multiply_runs(uri: str, total: int) -> int:
    """Copy the sweep's cell runs with SQL (new run ids, run name + "-c<k>") until the store
    holds `total` cell runs; returns the number of cell runs."""
    import sqlalchemy as sa

    from vlscale import tracking

    base = [r.run_id for r in tracking.list_cell_runs(uri, SWEEP)]
    copies = [(old, uuid.uuid4().hex, f"-c{k}")
              for k, old in enumerate(base[i % len(base)] for i in range(total - len(base)))]
    engine = sa.create_engine(uri)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TEMPORARY TABLE copy_map (old_id VARCHAR(32), "
                                   "new_id VARCHAR(32), suffix VARCHAR(16))"))
        connection.execute(sa.text("INSERT INTO copy_map VALUES (:old, :new, :suffix)"),
                           [{"old": o, "new": n, "suffix": s} for o, n, s in copies])
        inspector = sa.inspect(connection)
        for table in RUN_TABLES:
            names = [c["name"] for c in inspector.get_columns(table)]
            values = ["copy_map.new_id" if n == "run_uuid" else
                      "t.name || copy_map.suffix" if (table, n) == ("runs", "name") else
                      f"t.{n}" for n in names]
            connection.execute(sa.text(
                f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(values)} "
                f"FROM {table} t JOIN copy_map ON t.run_uuid = copy_map.old_id"))
        # As a sweep that ended a day ago: a load re-lists runs that ended within the last
        # CLOCK_SKEW_S (they may still change), which every run of a just-built store did.
        connection.execute(sa.text(f"UPDATE runs SET start_time = start_time - {DAY_MS}, "
                                   f"end_time = end_time - {DAY_MS}"))
    engine.dispose()
    return len(base) + len(copies)


def measure(name: str, uri: str, runs: int, eval_points: int) -> None:
    import mlflow

    from vlscale import tracking
    from vlscale.analysis import load_results

    started = time.perf_counter()
    checkpoints = log_base_cells(uri, eval_points)
    logged = time.perf_counter() - started
    count = multiply_runs(uri, runs)
    built = time.perf_counter() - started
    started, cpu = time.perf_counter(), time.process_time()
    cold = load_results(uri, SWEEP)
    cold_s, cold_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    cached = load_results(uri, SWEEP)
    cached_s, cached_cpu = time.perf_counter() - started, time.process_time() - cpu
    assert (cold.cache, cached.cache) == ("miss", "hit"), (cold.cache, cached.cache)
    assert len(cold.runs) == count and cached.table.equals(cold.table)
    experiment = tracking.find_sweep_parent(uri, SWEEP).experiment_id
    mlflow.set_tracking_uri(uri)
    started, cpu = time.perf_counter(), time.process_time()
    plain = mlflow.search_runs([experiment], filter_string=f"tags.`{tracking.TAG_KIND}` = "
                               f"'{tracking.KIND_CELL}'", max_results=100_000)
    search_s, search_cpu = time.perf_counter() - started, time.process_time() - cpu
    assert len(plain) == count
    per_copy = checkpoints / BASE_CELLS
    print(f"--- {name}: {count} cell runs (~{per_copy * count:,.0f} checkpoints, "
          f"{len(cold.table):,} table rows); store built in {built:.1f} s "
          f"({BASE_CELLS} cells logged in {logged:.1f} s, the rest SQL copies)")
    print(f"cold load: {cold_s:.2f} s  (this process's CPU: {cold_cpu:.2f} s)")
    print(f"cached load: {cached_s:.2f} s  (CPU: {cached_cpu:.2f} s)")
    print(f"mlflow.search_runs: {search_s:.2f} s  (CPU: {search_cpu:.2f} s)")
    print(f"ratio cold / search_runs: {cold_s / search_s:.2f}")
    print(f"ratio cached / search_runs: {cached_s / search_s:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--eval-points", type=int, default=30,
                        help="checkpoints of each constant-LR cell (default 30: ~16 per run)")
    parser.add_argument("--stores", nargs="+", choices=("sqlite", "postgres"),
                        default=["sqlite", "postgres"])
    args = parser.parse_args()
    if args.runs < BASE_CELLS:
        parser.error(f"--runs must be at least {BASE_CELLS}")
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        for store in args.stores:
            home = Path(tmp) / store
            os.environ["VLSCALE_HOME"] = str(home)  # a fresh state dir: the first load is cold
            if store == "sqlite":
                home.mkdir()
                measure("SQLite", f"sqlite:///{home / 'mlflow.db'}", args.runs, args.eval_points)
            else:
                from helpers.postgres import local_postgres

                with local_postgres() as server:
                    measure("PostgreSQL", server.uri, args.runs, args.eval_points)


if __name__ == "__main__":
    main()

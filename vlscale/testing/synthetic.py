"""A synthetic sweep whose evaluations follow known scaling laws, as a table or in a real store.

For tests, demos and notebooks when no trained sweep is at hand. `synthetic_table` draws the
results; `write_synthetic_sweep` logs the same values into an MLflow store through the calls the
training loop makes (sweep parent, one cell run per cell, compute, evaluations at each evaluated
checkpoint, finish) and the sweep's `grid.json` (as the sweep driver writes it), so everything
downstream (ledger, `load_runs`, the report, the MLflow UI) sees an ordinary sweep. Nothing is
trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vlscale.analysis import columns as C

ARCH_GFLOPS: dict[str, float] = {"cpu-w32-l1": 1.0, "cpu-w64-l2": 2.2, "cpu-w96-l3": 4.8,
                                 "cpu-w128-l4": 10.5}
"""Pretend forward GFLOPs per sample of four architectures (only their ratios matter)."""
SAMPLES_SEEN: tuple[int, ...] = (100_000, 300_000, 1_000_000, 3_000_000)


@dataclass(frozen=True)
class SyntheticProcedure:
    """A procedure whose zero-shot top-1 error is E(C) = a C^c + d (times 1 + noise)."""

    name: str
    model_type: str
    a: float
    c: float
    d: float
    schedule: str = "cosine"
    dataset: str = "synth"

    def error(self, compute: np.ndarray) -> np.ndarray:
        return self.a * np.asarray(compute, float) ** self.c + self.d


CLIP = SyntheticProcedure("clip-synth", "clip", a=3.4, c=-0.15, d=0.20)
MAMMUT = SyntheticProcedure("mammut-synth", "mammut", a=8.8, c=-0.22, d=0.15)
"""Default pair: MaMMUT starts worse and improves faster; the laws cross inside the grid."""


def _evaluations(error: float) -> dict[str, dict[str, float]]:
    """All logged tasks from one zero-shot error (monotone in it, like real evaluations)."""
    return {"zeroshot": {"acc1": 1 - error, "acc5": 1 - 0.55 * error,
                         "mean_per_class_recall": 1 - 1.02 * error},
            "retrieval": {"image_to_text_r1": 1 - min(1.0, 1.1 * error),
                          "text_to_image_r1": 1 - min(1.0, 1.15 * error)},
            "heldout": {"loss": 1.5 + 4 * error, "contrastive_loss": 1.0 + 3 * error,
                        "caption_loss": 0.5 + error}}


def synthetic_table(procedures: Sequence[SyntheticProcedure] = (CLIP, MAMMUT), *,
                    archs: dict[str, float] | None = None,
                    samples_seen: Sequence[int] = SAMPLES_SEEN, noise: float = 0.01,
                    seed: int = 0) -> pd.DataFrame:
    """One row per procedure x arch x samples seen x task x metric, in the results-table format
    (relative noise `noise` on the error; the same seed gives the same table)."""
    rng = np.random.default_rng(seed)
    rows = []
    for procedure in procedures:
        for arch, gflops in (archs or ARCH_GFLOPS).items():
            for samples in samples_seen:
                error = float(procedure.error(gflops * samples) * (1 + noise * rng.normal()))
                for task, values in _evaluations(error).items():
                    for metric, value in values.items():
                        rows.append({C.DOWNSTREAM_DATASET: task, C.METRIC: metric,
                                     C.VALUE: value, C.PRETRAIN_DATASET: procedure.dataset,
                                     C.LR_SCHEDULER: procedure.schedule,
                                     C.MODEL_TYPE: procedure.model_type, "procedure":
                                     procedure.name, C.ARCH: arch,
                                     C.SAMPLES_SEEN: float(samples),
                                     C.GFLOPS_PER_SAMPLE: gflops,
                                     C.GFLOPS_TOTAL: gflops * samples})
    return pd.DataFrame(rows)


def synthetic_cell(procedure: SyntheticProcedure, arch: str, samples: int,
                   eval_points: tuple[int, ...] = ()):
    """The grid cell of `procedure` at (arch, samples seen) as the synthetic sweep logs it."""
    from vlscale.platform.config import Cell, DataSpec, ModelSpec, TrainSpec

    return Cell(ModelSpec(procedure.model_type, arch), DataSpec(procedure.dataset, "/synthetic"),
                TrainSpec(samples_seen=samples, global_batch=500, lr=1e-3,
                          schedule=procedure.schedule, eval_points=eval_points),
                procedure=procedure.name)


def write_synthetic_sweep(tracking_uri: str, sweep_id: str,
                          procedures: Sequence[SyntheticProcedure] = (CLIP, MAMMUT), *,
                          archs: dict[str, float] | None = None,
                          samples_seen: Sequence[int] = SAMPLES_SEEN, noise: float = 0.01,
                          seed: int = 0, failed: int = 0, missing: int = 0,
                          log_grid: bool = True):
    """Log `synthetic_table`'s values as a sweep; returns the `tracking.SweepRun`.

    A "const" procedure is one run per architecture evaluated at every samples-seen value (as
    the training loop does). Per procedure, the last `failed` cells fail before evaluating and
    the `missing` cells before them never start (they are only in `grid.json`).
    """
    from vlscale import tracking

    table = synthetic_table(procedures, archs=archs, samples_seen=samples_seen, noise=noise,
                            seed=seed)
    sweep = tracking.start_sweep_parent(tracking_uri, sweep_id)
    grid = []
    for procedure in procedures:
        rows = table[table["procedure"] == procedure.name]
        plan = []
        for arch, gflops in (archs or ARCH_GFLOPS).items():
            if procedure.schedule in C.CONSTANT_SCHEDULES:
                points = tuple(sorted(samples_seen))
                plan.append((synthetic_cell(procedure, arch, points[-1], points), gflops, points))
            else:
                plan += [(synthetic_cell(procedure, arch, s), gflops, (s,)) for s in samples_seen]
        for index, (cell, gflops, points) in enumerate(plan):
            grid += tracking.grid_manifest([cell], {cell.model.key: gflops})
            position = len(plan) - index
            if position <= failed:
                with tracking.open_cell_run(cell, sweep=sweep) as run:
                    run.log_compute(gflops, 0)
                    run.finish(tracking.CellState.FAILED, error="RuntimeError: synthetic failure")
                continue
            if position <= failed + missing:
                continue
            with tracking.open_cell_run(cell, sweep=sweep, flush_interval_s=3600) as run:
                run.log_compute(gflops, cell.train.samples_seen)
                for samples in points:
                    mine = rows[(rows[C.ARCH] == cell.model.arch)
                                & (rows[C.SAMPLES_SEEN] == samples)]
                    for task, part in mine.groupby(C.DOWNSTREAM_DATASET):
                        run.log_eval(task, dict(zip(part[C.METRIC], part[C.VALUE])), samples)
                run.log_metrics({tracking.METRIC_WALL_TIME_S: 60.0 * gflops,
                                 tracking.METRIC_ACCELERATOR_HOURS: gflops / 60.0},
                                cell.train.samples_seen)
    if log_grid:
        sweep.log_grid(grid)
    sweep.finish(tracking.CellState.FAILED if failed or missing else tracking.CellState.FINISHED)
    return sweep

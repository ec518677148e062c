"""Canonical column names of a results table: the one place that says what each column means.

A results table has one row per evaluated checkpoint (or, once aggregated, per grid cell) and per
downstream task and metric. The names are those of the table published with Nezhurina et al. 2025
(`lscomp_overview_best_per_cell.csv`), so that table loads unchanged, and the MLflow loader of the
platform produces the same columns. Everything in `vlscale.analysis` refers to columns through
these constants, never through string literals.
"""

from __future__ import annotations

# --- the evaluation --------------------------------------------------------------------------
DOWNSTREAM_DATASET = "downstream_dataset"
"""Evaluation task, e.g. `imagenet1k`, `mscoco_captions`."""
METRIC = "metric"
"""Metric name, e.g. `acc1`, `image_retrieval_recall@5`, `contrastive_loss` (see `axes`)."""
VALUE = "value"
"""The metric's value as measured (accuracies and recalls as fractions in [0, 1])."""

# --- the training procedure: what is compared ------------------------------------------------
MODEL_TYPE = "model_type"
"""`clip`, `mammut`, ... (the objective / architecture family)."""
PRETRAIN_DATASET = "pretrain_dataset"
"""Pre-training data, e.g. `datacomp_1b`, `relaion2b-en`."""
LR_SCHEDULER = "lr_scheduler"
"""`cosine` (only final checkpoints count) or `const` (every post-warm-up checkpoint counts)."""

# --- the grid cell: where on the scaling curve -----------------------------------------------
ARCH = "arch"
"""Architecture name, e.g. `ViT-B-16`; with `samples_seen` it identifies a cell."""
SAMPLES_SEEN = "samples_seen"
"""Samples seen at the evaluated point: the cell's position on the samples axis."""
GFLOPS_PER_SAMPLE = "gflops_per_sample"
"""Forward GFLOPs per sample (batch 1) of the architecture."""
GFLOPS_TOTAL = "gflops_total"
"""Compute axis: `gflops_per_sample` x `samples_seen`."""
MPARAMS = "mparams"
"""Parameter count in millions (model-size axis of compute-optimal allocation)."""

# --- optional: per-checkpoint tables before aggregation --------------------------------------
RUN_ID = "run_id"
"""One training run (one hyper-parameter setting of one cell)."""
CHECKPOINT_SAMPLES = "checkpoint_samples"
"""Samples seen when the evaluated checkpoint was written; a table without this column holds
final checkpoints only. With it, aggregation takes `samples_seen` from it."""
IS_FINAL = "is_final"
"""True for the last checkpoint of a run (the only one that counts for a cosine schedule);
without it, a run's largest `checkpoint_samples` is its final one."""
WARMUP_SAMPLES = "warmup_samples"
"""Warm-up length in samples; constant-schedule checkpoints inside the warm-up are dropped."""

# --- groups of columns -----------------------------------------------------------------------
TASK_COLUMNS: tuple[str, ...] = (DOWNSTREAM_DATASET, METRIC)
PROCEDURE_COLUMNS: tuple[str, ...] = (MODEL_TYPE, PRETRAIN_DATASET, LR_SCHEDULER)
CELL_COLUMNS: tuple[str, ...] = TASK_COLUMNS + PROCEDURE_COLUMNS + (ARCH, SAMPLES_SEEN)
"""A cell = one point of one procedure's scaling curve on one task; runs inside it differ only
in hyper-parameters, and the best of them is the cell's value."""

CONSTANT_SCHEDULES: frozenset[str] = frozenset({"const", "constant"})
"""Schedules whose intermediate checkpoints are valid points of the scaling curve: with a constant
learning rate a checkpoint at s samples is (up to the missing cool-down) a run of length s."""

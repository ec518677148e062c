import numpy as np
import pandas as pd
import pytest

from vlscale.analysis import (
    add_compute,
    add_error,
    best_per_cell,
    curve_points,
    higher_is_better,
    to_error,
)
from vlscale.analysis import columns as C
from vlscale.errors import UserError


@pytest.mark.parametrize("metric", ["acc1", "acc5", "image_retrieval_recall@5",
                                    "mean_per_class_recall", "mean_average_precision"])
def test_accuracy_like_metrics(metric):
    assert higher_is_better(metric)


@pytest.mark.parametrize("metric", ["contrastive_loss", "caption_loss", "loss", "perplexity"])
def test_loss_like_metrics(metric):
    assert not higher_is_better(metric)


def test_unknown_metric_is_a_user_error():
    with pytest.raises(UserError, match="--error"):
        higher_is_better("banana")


def test_error_transforms():
    np.testing.assert_allclose(to_error([0.25, 0.9], "1-value"), [0.75, 0.1])
    np.testing.assert_allclose(to_error([2.5, 3.0], "value"), [2.5, 3.0])
    with pytest.raises(UserError):
        to_error([1.0], "log")


def test_add_error_infers_the_mode_and_refuses_mixtures():
    table = pd.DataFrame({"metric": ["acc1", "acc1"], "value": [0.5, 0.75]})
    out, mode = add_error(table)
    assert mode == "1-value" and out["error"].tolist() == [0.5, 0.25]
    mixed = pd.DataFrame({"metric": ["acc1", "loss"], "value": [0.5, 2.0]})
    with pytest.raises(UserError, match="mixes"):
        add_error(mixed)


def test_add_compute_derives_gflops_total():
    table = pd.DataFrame({"gflops_per_sample": [2.0, 3.0], "samples_seen": [10.0, 100.0]})
    assert add_compute(table)["gflops_total"].tolist() == [20.0, 300.0]
    with pytest.raises(UserError, match="--compute"):
        add_compute(table, "flops")


def _runs() -> pd.DataFrame:
    """Two cosine runs (two learning rates) of one cell, and one constant run with 3 checkpoints
    of which the first lies in the warm-up."""
    base = dict(downstream_dataset="imagenet1k", metric="acc1", pretrain_dataset="dc",
                model_type="clip", arch="ViT-S-32", gflops_per_sample=2.0)
    rows = [
        # cosine, lr A: an intermediate checkpoint (not a curve point) and the final one
        dict(base, lr_scheduler="cosine", run_id="a", samples_seen=100, checkpoint_samples=50,
             is_final=False, value=0.9),
        dict(base, lr_scheduler="cosine", run_id="a", samples_seen=100, checkpoint_samples=100,
             is_final=True, value=0.30),
        # cosine, lr B: better final value
        dict(base, lr_scheduler="cosine", run_id="b", samples_seen=100, checkpoint_samples=100,
             is_final=True, value=0.35),
        # constant schedule, warm-up 20 samples
        dict(base, lr_scheduler="const", run_id="c", samples_seen=100, checkpoint_samples=10,
             is_final=False, warmup_samples=20, value=0.05),
        dict(base, lr_scheduler="const", run_id="c", samples_seen=100, checkpoint_samples=40,
             is_final=False, warmup_samples=20, value=0.20),
        dict(base, lr_scheduler="const", run_id="c", samples_seen=100, checkpoint_samples=100,
             is_final=True, warmup_samples=20, value=0.31),
    ]
    table = pd.DataFrame(rows)
    table["warmup_samples"] = table["warmup_samples"].fillna(0)
    return table


def test_curve_points_keep_final_cosine_and_post_warmup_constant_checkpoints():
    points = curve_points(_runs())
    cosine = points[points.lr_scheduler == "cosine"]
    const = points[points.lr_scheduler == "const"]
    assert sorted(cosine.value) == [0.30, 0.35]
    assert sorted(const.samples_seen) == [40, 100]  # the warm-up checkpoint is gone
    assert sorted(const.gflops_total) == [80.0, 200.0]  # each with its own compute


def test_final_checkpoints_from_run_ids_when_is_final_is_absent():
    points = curve_points(_runs().drop(columns=["is_final"]))
    cosine = points[points.lr_scheduler == "cosine"]
    assert sorted(cosine.value) == [0.30, 0.35]
    with pytest.raises(UserError, match="is_final or a run_id"):
        curve_points(_runs().drop(columns=["is_final", "run_id"]))


def test_best_per_cell_takes_the_best_run_in_each_cell():
    cells = best_per_cell(_runs())
    assert len(cells) == 3  # cosine@100, const@40, const@100
    cosine = cells[cells.lr_scheduler == "cosine"]
    assert cosine.value.tolist() == [0.35] and cosine.run_id.tolist() == ["b"]
    # idempotent on an aggregated table
    again = best_per_cell(cells)
    assert len(again) == 3 and sorted(again.value) == sorted(cells.value)


def test_best_per_cell_minimises_losses():
    table = pd.DataFrame({"metric": ["loss"] * 2, "arch": ["S"] * 2, "samples_seen": [1e6] * 2,
                          "value": [3.0, 2.5]})
    assert best_per_cell(table).value.tolist() == [2.5]


def test_best_per_cell_is_idempotent_on_the_published_table(anchors_dir):
    table = pd.read_csv(anchors_dir / "lscomp_overview_best_per_cell.csv")
    cells = best_per_cell(table)
    assert len(cells) == len(table)
    pd.testing.assert_series_equal(cells[C.VALUE].sort_values().reset_index(drop=True),
                                   table[C.VALUE].sort_values().reset_index(drop=True))

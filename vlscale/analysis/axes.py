"""The two axes of a scaling law: compute, and an error that decreases with it.

Laws are fitted to an *error* (lower is better, ideally tending to a floor) against *compute*.
Accuracies and recalls become errors as `1 - value`; losses are errors already.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from vlscale.analysis import columns as C
from vlscale.errors import UserError

ErrorMode = Literal["1-value", "value"]
ERROR_MODES: tuple[str, ...] = ("1-value", "value")

_HIGHER_IS_BETTER = ("acc", "recall", "precision", "average_precision", "map", "miou", "auc",
                     "f1", "top1", "top5")
_LOWER_IS_BETTER = ("loss", "perplexity", "ppl", "nll", "error", "err", "bpb", "bits_per")


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of `metric` is better (accuracy-like) or worse (loss-like).

    Decided from the name because tables carry names, not directions; loss-like words win
    (e.g. `caption_loss`), and an unknown name is an error rather than a guess.
    """
    name = str(metric).lower()
    if any(word in name for word in _LOWER_IS_BETTER):
        return False
    if any(word in name for word in _HIGHER_IS_BETTER):
        return True
    raise UserError(f"cannot tell whether metric '{metric}' is accuracy-like or loss-like: "
                    "pass --error 1-value (accuracy, recall) or --error value (loss)")


def error_mode_for(metrics: pd.Series | list[str]) -> ErrorMode:
    """The error transform that suits every metric in `metrics` (they must agree)."""
    modes = {"1-value" if higher_is_better(m) else "value" for m in pd.unique(pd.Series(metrics))}
    if len(modes) != 1:
        raise UserError("the selection mixes accuracy-like and loss-like metrics: "
                        "select one metric with --where metric=NAME")
    return modes.pop()  # type: ignore[return-value]


def to_error(values: np.ndarray | pd.Series, mode: ErrorMode) -> np.ndarray:
    """Map metric values to errors: `1 - value` for accuracies/recalls, identity for losses.

    Both maps are their own inverse, so the same call turns a predicted error back into a value.
    """
    values = np.asarray(values, dtype=float)
    if mode == "1-value":
        return 1.0 - values
    if mode == "value":
        return values.copy()
    raise UserError(f"unknown error mode '{mode}': use one of {', '.join(ERROR_MODES)}")


def add_compute(df: pd.DataFrame, column: str = C.GFLOPS_TOTAL) -> pd.DataFrame:
    """Return `df` with a compute column; `gflops_total` is derived when absent.

    C = forward GFLOPs per sample x samples seen, the compute axis of the paper. Other compute
    columns (e.g. GMACs, FLOPs) must already be in the table.
    """
    if column in df.columns:
        return df
    if column == C.GFLOPS_TOTAL and {C.GFLOPS_PER_SAMPLE, C.SAMPLES_SEEN} <= set(df.columns):
        out = df.copy()
        out[column] = out[C.GFLOPS_PER_SAMPLE].astype(float) * out[C.SAMPLES_SEEN].astype(float)
        return out
    raise UserError(f"compute column '{column}' is not in the table (columns: "
                    f"{', '.join(map(str, df.columns))}): choose one with --compute COL")


def add_error(df: pd.DataFrame, mode: ErrorMode | None = None, value: str = C.VALUE,
              column: str = "error") -> tuple[pd.DataFrame, ErrorMode]:
    """Return `df` with an error column and the transform used (inferred from `metric`)."""
    if value not in df.columns:
        raise UserError(f"value column '{value}' is not in the table: the table needs one row "
                        "per evaluation with the measured value in a 'value' column")
    if mode is None:
        if C.METRIC not in df.columns:
            raise UserError("the table has no 'metric' column to infer the error from: "
                            "pass --error 1-value or --error value")
        mode = error_mode_for(df[C.METRIC])
    check_value_domain(df, mode, value)
    out = df.copy()
    out[column] = to_error(out[value], mode)
    return out, mode


def check_value_domain(df: pd.DataFrame, mode: ErrorMode, value: str = C.VALUE) -> None:
    """Refuse values that have no meaning as the chosen error: `1 - value` needs a fraction in
    [0, 1] (a percentage would give a negative "error" and a fit of nonsense), a loss
    (`--error value`) must not be negative. Checked per row so the message can count them."""
    values = pd.to_numeric(df[value], errors="coerce").to_numpy(float)
    name = _metric_name(df, value)
    missing = ~np.isfinite(values)
    if missing.any():
        raise UserError(f"{name} has {int(missing.sum())} NaN, infinite or non-numeric "
                        f"value(s) in column '{value}': fix or drop those rows, or exclude "
                        "them with --where")
    if mode == "1-value":
        outside = (values < 0) | (values > 1)
        if outside.any():
            hint = ("is it in percent? divide the column by 100"
                    if values.max() > 1 and values.max() <= 100 and values.min() >= 0
                    else "fix or drop those rows")
            raise UserError(f"{name} has {int(outside.sum())} value(s) outside [0, 1] (min "
                            f"{values.min():g}, max {values.max():g}) but --error 1-value "
                            f"needs a fraction: {hint}, exclude them with --where "
                            f"'{value}<=1', or pass --error value if it is a loss")
    elif mode == "value":
        negative = values < 0
        if negative.any():
            raise UserError(f"{name} has {int(negative.sum())} negative value(s) (min "
                            f"{values.min():g}) but --error value needs a loss >= 0: pass "
                            "--error 1-value if it is an accuracy, or fix or drop those rows")


def _metric_name(df: pd.DataFrame, value: str) -> str:
    """How to name the values in a message: the metric(s) they measure, else the column."""
    if C.METRIC in df.columns:
        metrics = sorted(map(str, pd.unique(df[C.METRIC])))
        if 0 < len(metrics) <= 3:
            return f"metric {', '.join(metrics)}"
    return f"column '{value}'"

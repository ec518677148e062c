"""The paper's compute / samples-seen limits and its failed-large-run rule (`limits.Limits`)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from vlscale.analysis.limits import FAILED_RUN_COMPUTE, FAILED_RUN_ERROR, Limits
from vlscale.errors import UserError

CELLS = pd.DataFrame({
    "gflops_total": [1e5, 1e6, 1e9, 1e11, 2e11, 2e11, 1e12, 2e12],
    "samples_seen": [1e6, 1e6, 1e8, 1e9, 3e9, 3e9, 1e10, 2e10],
    "error": [0.99, 0.95, 0.6, 0.75, 0.7, 0.69, 0.3, 0.25],
})


def _kept(limits: Limits) -> list[int]:
    return limits.apply(CELLS, error_mode="1-value").index.tolist()


def test_each_limit_is_inclusive_like_the_papers():
    assert _kept(Limits()) == list(range(8))
    assert _kept(Limits(max_compute=1e12)) == [0, 1, 2, 3, 4, 5, 6]  # C <= 1e12 keeps 1e12
    assert _kept(Limits(min_compute=1e6)) == [1, 2, 3, 4, 5, 6, 7]  # C >= 1e6 keeps 1e6
    assert _kept(Limits(max_samples_seen=1e10)) == [0, 1, 2, 3, 4, 5, 6]


def test_failed_large_runs_are_above_1e11_with_error_at_least_0_7():
    """The paper keeps E < 0.7 where C > 1e11: C = 1e11 itself is kept whatever its error,
    E = 0.7 above it is dropped, E = 0.69 kept."""
    assert (FAILED_RUN_COMPUTE, FAILED_RUN_ERROR) == (1e11, 0.7)
    assert _kept(Limits(drop_failed_large_runs=True)) == [0, 1, 2, 3, 5, 6, 7]


def test_the_fig1_selection_combines_them():
    fig1 = Limits(max_compute=1e12, min_compute=1e6, max_samples_seen=1e10,
                  drop_failed_large_runs=True)
    assert _kept(fig1) == [1, 2, 3, 5, 6]
    assert fig1.describe() == ("C >= 1e+06, C <= 1e+12, samples_seen <= 1e+10, without failed "
                               "large runs (C > 1e+11 with E >= 0.7)")


@pytest.mark.parametrize("limits, message", [
    (dict(max_compute=1e3), "leave none of the 8 cells"),
    (dict(min_compute=1e9, max_compute=1e6), "--min-compute 1e+09 is above --max-compute"),
    (dict(max_samples_seen=-1.0), "--max-samples-seen must be a positive number"),
])
def test_bad_or_empty_limits_are_user_errors(limits, message):
    with pytest.raises(UserError, match=re.escape(message)):
        Limits(**limits).apply(CELLS)


def test_failed_run_rule_needs_an_accuracy_error_and_columns():
    with pytest.raises(UserError, match="does not apply to a loss"):
        Limits(drop_failed_large_runs=True).apply(CELLS, error_mode="value")
    with pytest.raises(UserError, match="need column\\(s\\) samples_seen"):
        Limits(max_samples_seen=1e9).apply(CELLS.drop(columns=["samples_seen"]))

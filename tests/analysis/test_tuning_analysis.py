"""The tuning analysis on synthetic tuning sweeps whose optimum is known exactly.

The loss is a separable parabola in log settings, loss = a + b (ln lr - ln lr*(N))^2 +
c (ln B - ln B*(N))^2 with lr*(N) = k N^e, on geometric grids (ratio 2). On a uniform grid in
ln(setting), Akima's node slopes are the mean of the neighbouring secants (their weights are
equal), which is the exact derivative of a parabola, and its end secants extend linearly, as a
parabola's do: the interpolation *is* the parabola. The only error of the located optimum is then
`isoflop_minimum`'s argmin over 2001 points, at most half a grid step in ln (plus a float64 tie
at a midpoint, ~1e-8 in ln), and the tolerances on the law below follow from that bound through
the least-squares weights.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vlscale.analysis import (
    best_settings,
    fit_power_law,
    optimum_laws,
    settings_warnings,
    validate_largest,
)
from vlscale.analysis.allocation import isoflop_minimum
from vlscale.errors import UserError

pytestmark = pytest.mark.timeout(120)
SIZES = {"s1": 1.0, "s2": 4.0, "s3": 16.0, "s4": 64.0}
LR_GRID = 1e-4 * 2.0 ** np.arange(10)
BATCH_GRID = 16 * 2 ** np.arange(7)
LAWS = {"clip": {"lr": (1.3e-2, -0.4), "global_batch": (64.0, 0.3)},
        "mammut": {"lr": (7e-3, -0.25), "global_batch": (40.0, 0.35)}}
ARGMIN_POINTS = 2001
"""`isoflop_minimum`'s default grid."""
TIE = 1e-8
"""ln error of a float64 near-tie between two argmin grid points (values differ ~1e-16)."""


def optimum(procedure: str, setting: str, size: float) -> float:
    k, e = LAWS[procedure][setting]
    return k * size ** e


def tuning_table(*, lr_grid=LR_GRID, batch_grid=BATCH_GRID, sizes=SIZES, move_largest=1.0,
                 budgets=(8192.0,), metric="loss", sources=None) -> pd.DataFrame:
    """One finished run per procedure x size x budget x lr x batch, as `load_runs` writes
    them; `move_largest` multiplies the largest size's lr optimum; `sources` gives each
    procedure's `settings_source` text."""
    largest = max(sizes.values())
    rows = []
    for procedure in LAWS:
        for arch, size in sizes.items():
            lr_star = optimum(procedure, "lr", size) * (move_largest if size == largest else 1)
            batch_star = optimum(procedure, "global_batch", size)
            for budget in budgets:
                for lr in lr_grid:
                    for batch in batch_grid:
                        loss = (2.0 + 0.3 * (np.log(lr) - np.log(lr_star)) ** 2
                                + 0.1 * (np.log(batch) - np.log(batch_star)) ** 2)
                        rows.append({
                            "procedure": procedure, "model_type": procedure, "arch": arch,
                            "gflops_per_sample": size, "run_samples_seen": budget,
                            "samples_seen": budget, "lr": float(lr),
                            "global_batch": float(batch), "warmup_samples": 1000.0,
                            "beta2": 0.95, "downstream_dataset": "heldout", "metric": metric,
                            "value": loss if metric == "loss" else 1 / loss,
                            "is_final": True, "status": "finished",
                            "run_id": f"{procedure}-{arch}-{budget}-{lr:g}-{batch}",
                            "settings_source": (sources or {}).get(procedure, "")})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return tuning_table()


def nearest(grid: np.ndarray, value: float) -> float:
    return float(grid[np.argmin(np.abs(np.log(grid) - np.log(value)))])


def test_best_settings_pick_the_grid_point_nearest_the_optimum(table):
    best = best_settings(table, task="heldout", metric="loss")
    assert len(best) == 8 and list(best.columns[:6]) == [
        "procedure", "model_type", "arch", "size", "budget", "lr"]
    for row in best.itertuples():
        assert row.lr == nearest(LR_GRID, optimum(row.procedure, "lr", row.size))
        assert row.global_batch == nearest(BATCH_GRID.astype(float),
                                           optimum(row.procedure, "global_batch", row.size))
        assert row.trials == len(LR_GRID) * len(BATCH_GRID)
        assert row.edge == () and row.budget == 8192.0 and row.beta2 == 0.95
        assert row.value == pytest.approx(table[(table.procedure == row.procedure)
                                                & (table.arch == row.arch)].value.min(), rel=0)


def test_an_optimum_outside_the_grid_is_flagged_at_the_edge():
    shifted = LR_GRID[:7]  # up to 6.4e-3: clip's s1 (1.3e-2) and s2 (7.5e-3) optima lie above
    best = best_settings(tuning_table(lr_grid=shifted), task="heldout", metric="loss")
    edges = {(r.procedure, r.arch): r.edge for r in best.itertuples()}
    assert edges[("clip", "s1")] == ("lr",) and edges[("clip", "s2")] == ("lr",)
    assert edges[("clip", "s3")] == () and edges[("mammut", "s4")] == ()
    # Judged against the searched space when given: a wider space makes the same best inner.
    wide = best_settings(tuning_table(lr_grid=shifted), task="heldout", metric="loss",
                         space={"lr": LR_GRID, "global_batch": BATCH_GRID})
    assert all(r.edge == () for r in wide.itertuples())


def test_an_accuracy_is_maximised_and_an_unknown_metric_refused():
    accuracy = tuning_table(metric="acc1")
    best = best_settings(accuracy, task="heldout", metric="acc1")
    assert (best.lr.to_numpy() == best_settings(tuning_table(), task="heldout",
                                                metric="loss").lr.to_numpy()).all()
    with pytest.raises(UserError, match="cannot tell whether metric 'quality'"):
        best_settings(tuning_table(metric="quality"), task="heldout", metric="quality")


def _bound(x: np.ndarray, weights: np.ndarray, delta: float) -> tuple[float, float]:
    """Largest change of (ln coef, exponent) of a weighted line through points each off by at
    most `delta` in ln y: the fit is linear in ln y, so it is delta x sum |hat weights|."""
    w = weights / weights.sum()
    centre = (w * x).sum()
    sxx = (w * (x - centre) ** 2).sum()
    slope = w * (x - centre) / sxx
    intercept = w - centre * slope
    return delta * np.abs(intercept).sum(), delta * np.abs(slope).sum()


def test_optimum_laws_recover_the_planted_laws_within_the_argmin_resolution(table):
    laws = optimum_laws(table, task="heldout", metric="loss", n_bootstrap=50)
    assert {(law.procedure, law.setting) for law in laws} == {
        (p, s) for p in LAWS for s in ("lr", "global_batch")}
    for law in laws:
        grid = LR_GRID if law.setting == "lr" else BATCH_GRID
        delta = np.log(grid[-1] / grid[0]) / (2 * (ARGMIN_POINTS - 1)) + TIE
        sizes = np.array(law.sizes)
        truth = np.array([optimum(law.procedure, law.setting, s) for s in sizes])
        assert np.abs(np.log(law.optima) - np.log(truth)).max() <= delta
        assert law.weighted and np.all(np.array(law.optimum_log_std) > 0)
        ln_coef_tol, exponent_tol = _bound(np.log(sizes),
                                           1 / np.array(law.optimum_log_std) ** 2, delta)
        k, e = LAWS[law.procedure][law.setting]
        assert abs(np.log(law.coef) - np.log(k)) <= ln_coef_tol
        assert abs(law.exponent - e) <= exponent_tol
        # The resamples refit (nearly) the same points: their spread can be rounding alone.
        for value, (low, high) in ((law.coef, law.coef_interval),
                                   (law.exponent, law.exponent_interval)):
            slack = 64 * np.finfo(float).eps * abs(value)
            assert low - slack <= value <= high + slack
        assert law.predict(sizes) == pytest.approx(law.coef * sizes ** law.exponent, rel=1e-12)
        # The weighted fit is Porian's: the same numbers as fit_power_law with the spreads.
        weighted = fit_power_law(sizes, np.array(law.optima), np.array(law.optimum_log_std))
        assert law.exponent == pytest.approx(weighted.params["c"], rel=1e-12)


def test_a_size_with_two_values_takes_the_discrete_best_and_the_fit_turns_unweighted(table):
    two = table[~((table.arch == "s2") & ~table.lr.isin(LR_GRID[4:6]))]
    laws = {(law.procedure, law.setting): law
            for law in optimum_laws(two, task="heldout", metric="loss", n_bootstrap=30)}
    lr = laws[("clip", "lr")]
    assert not lr.weighted and "s2 searched fewer than 3 values of lr" in lr.note
    assert lr.optima[1] == nearest(LR_GRID[4:6], optimum("clip", "lr", 4.0))
    assert np.isnan(lr.optimum_log_std[1])
    plain = fit_power_law(np.array(lr.sizes), np.array(lr.optima))
    assert lr.exponent == pytest.approx(plain.params["c"], rel=1e-12)
    assert laws[("clip", "global_batch")].weighted  # batch still has 7 values at s2


def test_each_budget_gets_its_own_best_settings_and_laws():
    two = tuning_table(budgets=(4096.0, 8192.0))
    best = best_settings(two, task="heldout", metric="loss")
    assert len(best) == 16 and sorted(set(best.budget)) == [4096.0, 8192.0]
    assert (best.trials == len(LR_GRID) * len(BATCH_GRID)).all()
    laws = optimum_laws(two, task="heldout", metric="loss", settings=("lr",), n_bootstrap=0)
    assert sorted((law.procedure, law.budget) for law in laws) == [
        (p, b) for p in LAWS for b in (4096.0, 8192.0)]


def test_a_setting_searched_at_one_value_gets_no_law(table):
    laws = optimum_laws(table, task="heldout", metric="loss", settings=("beta2", "lr"),
                        n_bootstrap=0)
    assert {law.setting for law in laws} == {"lr"}
    assert not any(law.weighted for law in laws)  # no bootstrap, no spread: unweighted
    with pytest.raises(UserError, match="unknown setting"):
        optimum_laws(table, task="heldout", metric="loss", settings=("momentum",))


def test_a_size_that_kept_one_value_is_left_out_of_that_settings_law(table):
    fixed = table[(table.arch != "s4") | (table.lr == LR_GRID[3])]
    (lr,) = [law for law in optimum_laws(fixed, task="heldout", metric="loss",
                                         settings=("lr",), n_bootstrap=0)
             if law.procedure == "clip"]
    assert lr.sizes == (1.0, 4.0, 16.0) and lr.archs == ("s1", "s2", "s3")
    checks = validate_largest(fixed, task="heldout", metric="loss", settings=("lr",),
                              n_bootstrap=0)
    assert {c.held_out_arch for c in checks} == {"s3"}


def test_the_law_predicts_the_held_out_largest_size_within_one_step(table):
    checks = validate_largest(table, task="heldout", metric="loss", n_bootstrap=30)
    assert len(checks) == 4 and all(not c.skipped for c in checks)
    for check in checks:
        assert check.held_out_arch == "s4" and check.step_ratio == pytest.approx(2.0, rel=1e-12)
        assert check.within_one_step, check


def test_a_largest_optimum_moved_4x_is_more_than_one_step_off():
    moved = tuning_table(move_largest=4.0)
    checks = {(c.procedure, c.setting): c
              for c in validate_largest(moved, task="heldout", metric="loss", n_bootstrap=30)}
    for procedure in LAWS:
        lr = checks[(procedure, "lr")]
        assert lr.tuned == nearest(LR_GRID, 4 * optimum(procedure, "lr", 64.0))
        assert not lr.within_one_step
        assert checks[(procedure, "global_batch")].within_one_step


def test_fewer_than_three_sizes_cannot_be_validated():
    small = tuning_table(sizes={"s1": 1.0, "s2": 4.0})
    checks = validate_largest(small, task="heldout", metric="loss", settings=("lr", "beta2"),
                              n_bootstrap=0)
    reasons = {(c.procedure, c.setting): c.skipped for c in checks}
    assert reasons[("clip", "lr")].startswith("only 2 tuned size(s)")
    assert reasons[("clip", "beta2")] == "beta2 was not searched (one value per size)"
    assert checks[0].record() == {"procedure": "clip", "budget": 8192.0, "setting": "lr",
                                  "skipped": reasons[("clip", "lr")]}


def test_the_akima_argmin_is_exact_on_a_parabola_up_to_the_grid():
    """The premise of the tolerances above, checked directly at an optimum between nodes."""
    grid = LR_GRID
    delta = np.log(grid[-1] / grid[0]) / (2 * (ARGMIN_POINTS - 1)) + TIE
    for star in (1.3e-2, 2.9e-3, 1.17e-3):
        found, _ = isoflop_minimum(grid, 2 + 0.3 * (np.log(grid) - np.log(star)) ** 2)
        assert abs(np.log(found) - np.log(star)) <= delta


@pytest.mark.parametrize("change, message", [
    (lambda t: t.assign(metric="acc5"), "no rows for task 'heldout' and metric 'loss'"),
    (lambda t: t.assign(status="stopped"), r"no finished run .*\(runs: 560 stopped\)"),
    (lambda t: t.drop(columns=["beta2"]), "lacks column\\(s\\) beta2"),
    (lambda t: t.assign(value=-1.0), "negative value"),
])
def test_bad_tables_are_one_line_errors(table, change, message):
    with pytest.raises(UserError, match=message) as error:
        best_settings(change(table), task="heldout", metric="loss")
    assert "\n" not in str(error.value)


# --- settings_warnings (a grid's provenance) ----------------------------------------------------

def grid(sources: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame([{"procedure": p, "arch": a, "settings_source": text}
                         for p, text in sources.items() for a in ("cpu-w32-l1", "cpu-w64-l2")])


def test_settings_from_the_same_kind_of_source_give_no_warning():
    assert settings_warnings(grid({"clip": "", "mammut": ""})) == []
    same = "lr=tuned:tune-cpu@8192;global_batch=tuned:tune-cpu@8192"
    other = "lr=tuned:tune-b@8192;global_batch=tuned:tune-b@8192"
    assert settings_warnings(grid({"clip": same, "mammut": other})) == []
    assert settings_warnings(pd.DataFrame({"procedure": ["clip"], "arch": ["a"]})) == []


def test_procedures_tuned_differently_are_named():
    lines = settings_warnings(grid({"clip": "lr=tuned:tune-cpu@8192", "mammut": ""}))
    assert lines == ["lr: clip tuned (tune-cpu), mammut manual: the comparison may measure the "
                     "tuning, not the procedure; tune both"]


def test_a_setting_tuned_at_the_edge_is_named_per_size():
    table = grid({"clip": "lr=tuned:t@1", "mammut": "lr=tuned:t@1"})
    table.loc[0, "settings_source"] = "lr=tuned:t@1!edge;global_batch=manual"
    assert settings_warnings(table) == [
        "clip cpu-w32-l1: lr was tuned at the edge of the searched range; the optimum may lie "
        "outside it"]


def test_an_unreadable_source_is_a_one_line_error():
    with pytest.raises(UserError, match="unreadable settings_source.*momentum=tuned"):
        settings_warnings(grid({"clip": "momentum=tuned", "mammut": ""}))

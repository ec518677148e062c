"""The paper's main figure (Nezhurina et al. 2025, fig1: CLIP vs MaMMUT on ImageNet, DataComp,
cosine) from its published table, pinned to what the paper's own code gives on that table.

Targets: the paper's `scripts/fig1.sh` pipeline (`filter_data`, `pareto_frontier_bins`, the
3200-start `curve_fit`), run literally on `lscomp_overview_best_per_cell.csv` outside this
project: CLIP 24 frontier points, a = 58.76, ln b = 18.414, c = -0.2273, d = 0.1116; MaMMUT 26
points, a = 125.06, ln b = 19.287, c = -0.2556, d = 0.1013.

Ties: the table's accuracies are rounded to 3 decimals, and three of MaMMUT's bins hold two
cells with exactly the lowest error. The paper's code leaves the pick to numpy's unstable
`argsort` (numpy 2.4, AVX2 here): it took the higher-compute cell at E = 0.628 (ViT-S-32 128M
over ViT-S-14 64M) but the lower-compute one at E = 0.979 and 0.953 (ViT-S-16 over ViT-S-14, at
1.28M and 3.07M samples). No order-free rule reproduces that; `pareto_bin` takes the higher
compute in every tie, so its MaMMUT frontier is the paper code's with those two cells swapped
for ViT-S-14 at 1.28M and 3.07M (still 26 points; CLIP has no tie and matches exactly). The
swap moves MaMMUT's c by 6e-4 and d by 5e-4 (lowest-compute-wins everywhere, numpy's stable
sort, would move d by 2.4e-3).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from vlscale.analysis import add_compute, add_error, best_per_cell, fit_curve, select_frontier
from vlscale.analysis.limits import Limits
from vlscale.analysis.table import load_table, parse_where, select
from vlscale.cli import main

SELECTION = ["downstream_dataset=imagenet1k", "metric=acc1", "pretrain_dataset=datacomp_1b",
             "lr_scheduler=cosine", "model_type=clip,mammut"]
FIG1 = Limits(max_compute=1e12, min_compute=1e6, max_samples_seen=1e10,
              drop_failed_large_runs=True)
FIG1_OPTIONS = ["--max-compute", "1e12", "--max-samples-seen", "1e10", "--min-compute", "1e6",
                "--drop-failed-large-runs"]

M = 1_000_000
CLIP_FRONTIER = {  # (arch, samples seen): identical to the paper code's 24 points
    ("ViT-S-32", 1_280_000), ("ViT-S-16", 1_280_000), ("ViT-S-32", 3_072_000),
    ("ViT-S-32", 6_400_000), ("ViT-S-32", 12_800_000), ("ViT-M-32", 12_800_000),
    ("ViT-S-32", 30_720_000), ("ViT-S-32", 64 * M), ("ViT-M-32", 64 * M),
    ("ViT-S-32", 128 * M), ("ViT-S-16", 128 * M), ("ViT-S-32", 307_200_000),
    ("ViT-S-32", 640 * M), ("ViT-S-14", 307_200_000), ("ViT-M-32", 640 * M),
    ("ViT-B-32", 1280 * M), ("ViT-L-32", 640 * M), ("ViT-B-16-text-plus", 640 * M),
    ("ViT-L-32", 1280 * M), ("ViT-L-16", 640 * M), ("ViT-L-32", 3072 * M),
    ("ViT-L-14", 1280 * M), ("ViT-L-16", 3072 * M), ("ViT-L-14", 3072 * M)}
MAMMUT_FRONTIER = {  # the paper code's 26 points with its two lower-compute tie picks swapped
    ("ViT-S-32", 1_280_000), ("ViT-S-14", 1_280_000), ("ViT-S-32", 3_072_000),
    ("ViT-S-14", 3_072_000), ("ViT-S-32", 6_400_000), ("ViT-S-32", 12_800_000),
    ("ViT-S-16", 12_800_000), ("ViT-S-14", 12_800_000), ("ViT-S-32", 30_720_000),
    ("ViT-S-14", 30_720_000), ("ViT-S-32", 64 * M), ("ViT-S-32", 128 * M),
    ("ViT-S-16", 128 * M), ("ViT-S-14", 128 * M), ("ViT-M-16", 128 * M),
    ("ViT-S-14", 307_200_000), ("ViT-M-16", 307_200_000), ("ViT-B-32", 640 * M),
    ("ViT-B-16", 307_200_000), ("ViT-B-14", 640 * M), ("ViT-B-16", 640 * M),
    ("ViT-B-14", 1280 * M), ("ViT-L-14", 640 * M), ("ViT-L-14", 1280 * M),
    ("ViT-L-16", 3072 * M), ("ViT-L-14", 3072 * M)}
PAPER_CODE_TIE_PICKS = {("ViT-S-16", 1_280_000), ("ViT-S-16", 3_072_000)}
"""MaMMUT cells the paper's code picked (lower compute) where `pareto_bin` takes ViT-S-14."""

PAPER = {"clip": dict(a=58.76, ln_b=18.414, c=-0.2273, d=0.1116, at=2.158e12, points=141),
         "mammut": dict(a=125.06, ln_b=19.287, c=-0.2556, d=0.1013, at=2.593e12, points=145)}
"""The paper code's coefficients; `at`: L-14 at 12.8B samples (GFLOPs); `points`: cells left
by the fig1 filter (the paper's code keeps the same numbers of rows)."""


def _accuracy(params: dict, at: float) -> float:
    return 1.0 - (params["a"] * (at + np.exp(params["ln_b"])) ** params["c"] + params["d"])


@pytest.fixture(scope="module")
def cells(anchors_dir):
    """Per model type, the fig1 cells: the selection, best per cell, compute, error, limits."""
    table = select(load_table(anchors_dir / "lscomp_overview_best_per_cell.csv"),
                   parse_where(SELECTION))
    table, mode = add_error(add_compute(best_per_cell(table)), None)
    table = FIG1.apply(table, error_mode=mode)
    return {str(k): g for k, g in table.groupby("model_type")}


def _pairs(rows) -> set[tuple[str, int]]:
    return {(str(a), int(s)) for a, s in zip(rows["arch"], rows["samples_seen"])}


@pytest.mark.parametrize("model_type, expected", [("clip", CLIP_FRONTIER),
                                                  ("mammut", MAMMUT_FRONTIER)])
def test_fig1_frontier_points(cells, model_type, expected):
    rows = cells[model_type]
    assert len(rows) == PAPER[model_type]["points"]
    frontier = select_frontier(rows["gflops_total"].to_numpy(), rows["error"].to_numpy(),
                               "pareto_bin")
    chosen = rows.iloc[frontier.index]
    assert len(chosen) == len(expected) == (24 if model_type == "clip" else 26)
    assert _pairs(chosen) == expected
    # the pinned cells' computes are the table's own (gflops_per_sample x samples_seen)
    np.testing.assert_allclose(frontier.x, chosen["gflops_per_sample"] * chosen["samples_seen"],
                               rtol=1e-12)
    if model_type == "mammut":
        assert not PAPER_CODE_TIE_PICKS & expected
        swapped = {("ViT-S-14", 1_280_000), ("ViT-S-14", 3_072_000)}
        paper_code = (expected - swapped) | PAPER_CODE_TIE_PICKS
        tied = rows[rows.apply(lambda r: (r["arch"], int(r["samples_seen"]))
                               in swapped | PAPER_CODE_TIE_PICKS, axis=1)]
        # each swapped pair has exactly equal errors: only the tie rule separates the two
        assert sorted(tied["error"].round(6)) == [0.953, 0.953, 0.979, 0.979]
        assert len(paper_code) == 26


@pytest.mark.parametrize("model_type", ["clip", "mammut"])
def test_fig1_coefficients_match_the_paper_code(cells, model_type):
    """Tolerances: CLIP has the paper code's exact frontier, and the engine matches its 3200-start
    curve_fit to 4-5 digits on the same points (a to 1e-3 relative, c and d to 1e-4). MaMMUT's
    two tie picks differ (module docstring), which moves c by 6e-4 and d by 5e-4: |dc| <= 0.002,
    |dd| <= 0.003. Either way the predicted ImageNet accuracy of L-14 at 12.8B samples (beyond
    the fitted range) is within 0.2 points of the paper code's."""
    rows = cells[model_type]
    fit = fit_curve(rows["gflops_total"].to_numpy(), rows["error"].to_numpy(), "saturating4",
                    "pareto_bin")
    target = PAPER[model_type]
    params = dict(fit.params, ln_b=float(np.log(fit.params["b"])))
    print(model_type, {k: round(v, 5) for k, v in params.items()})
    exact = model_type == "clip"
    assert params["c"] == pytest.approx(target["c"], abs=1e-4 if exact else 0.002)
    assert params["d"] == pytest.approx(target["d"], abs=1e-4 if exact else 0.003)
    if exact:
        assert params["a"] == pytest.approx(target["a"], rel=1e-3)
        assert params["ln_b"] == pytest.approx(target["ln_b"], abs=1e-3)
    at = target["at"]
    assert 1.0 - float(fit.predict(at)[0]) == pytest.approx(_accuracy(target, at), abs=0.002)


def test_fig1_through_the_cli_with_range_filters(anchors_dir, tmp_path, capsys):
    """`vlscale fit` with the limits as --where range clauses (rows) plus the failed-run rule
    gives the same frontiers and fits as the --max-compute / ... options."""
    output = tmp_path / "fit.json"
    where = [arg for clause in SELECTION + ["gflops_total<=1e12", "gflops_total>=1e6",
                                            "samples_seen<=1e10"]
             for arg in ("--where", clause)]
    code = main(["fit", str(anchors_dir / "lscomp_overview_best_per_cell.csv"), *where,
                 "--drop-failed-large-runs", "--group", "model_type",
                 "--predict-at", "2.158e12", "2.593e12", "--json", str(output)])
    assert code == 0, capsys.readouterr().err
    fits = {fit["group"]: fit for fit in json.loads(output.read_text())["fits"]}
    assert fits["clip"]["n_points"] == 24 and fits["mammut"]["n_points"] == 26
    for name, fit in fits.items():
        target = PAPER[name]
        assert fit["params"]["c"] == pytest.approx(target["c"], abs=0.002)
        assert fit["params"]["d"] == pytest.approx(target["d"], abs=0.003)
        value = {p["x"]: p["value"] for p in fit["predictions"]}[target["at"]]
        assert value == pytest.approx(_accuracy(target, target["at"]), abs=0.002)


def test_fig1_limit_options_select_the_papers_cells(anchors_dir, tmp_path, capsys):
    """The limit options leave the 141 CLIP cells the paper's filter leaves (more without them).
    The failed-run rule drops nothing here: this table holds the best run per cell, and no
    cell above 1e11 GFLOPs has E >= 0.7 (the rule matters on per-run tables, as the paper's)."""
    output = tmp_path / "fit.json"
    where = [arg for clause in SELECTION[:-1] + ["model_type=clip"]
             for arg in ("--where", clause)]
    args = ["fit", str(anchors_dir / "lscomp_overview_best_per_cell.csv"), *where,
            "--frontier", "none", "--json", str(output)]

    def n_points(options: list[str]) -> int:
        assert main(args + options) == 0
        return json.loads(output.read_text())["fits"][0]["n_points"]

    assert n_points(FIG1_OPTIONS) == n_points(FIG1_OPTIONS[:-1]) == PAPER["clip"]["points"]
    assert n_points([]) > PAPER["clip"]["points"]
    capsys.readouterr()

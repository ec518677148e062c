"""The analysis reproduces published scaling-law results from the studies' own data tables."""

import json

import numpy as np
import pandas as pd
import pytest

from vlscale.analysis import fit_chinchilla, fit_law, fit_power_law, isoflop_minimum
from vlscale.analysis.optimize import Problem, polish
from vlscale.cli import main

# --- Cherti et al. 2023 ----------------------------------------------------------------------

CHERTI_TARGETS = {  # published target name -> (downstream_dataset, metric column)
    "imagenet1k": ("imagenet1k", "acc1"),
    "imagenet_robustness": ("imagenet_robustness", "acc1"),
    "mscoco_captions image retrieval (1-R@5)": ("mscoco_captions", "image_retrieval_recall@5"),
    "flickr30k image retrieval (1-R@5)": ("flickr30k", "image_retrieval_recall@5"),
}


def test_cherti_binned_log_log_fits(anchors_dir):
    """OpenCLIP = the 29 LAION runs (80M/400M/2B, H-14 and g-14 included): 5 bins of log10 C,
    min log10 E per bin at the bin centre, a line; OpenAI = the 3 CLIP-WIT models, plain line.
    "imagenet_robustness" is its own row of the results table (acc1)."""
    results = pd.read_csv(anchors_dir / "cherti2023_zeroshot_results.csv")
    published = pd.read_csv(anchors_dir / "cherti2023_published_fits.csv")
    assert len(published) == 8
    for row in published.itertuples():
        dataset, metric = CHERTI_TARGETS[row.target]
        rows = results[results.downstream_dataset == dataset].copy()
        rows["error"] = 1.0 - rows[metric]
        openai = row.group.startswith("OpenAI")
        rows = rows[(rows.upstream_dataset == "CLIP-WIT") == openai]
        assert len(rows) == (3 if openai else 29)
        fit = fit_law(rows, "gmacs_total", "error", "loglinear",
                      "none" if openai else "binned_min", n_bins=5)
        coef, exponent = fit.params["a"], fit.params["c"]
        print(f"{row.target} / {row.group}: {coef:.2f} C^{exponent:.2f} "
              f"(published {row.coef} C^{row.exponent})")
        assert round(coef, 2) == pytest.approx(row.coef, abs=1e-9)
        assert round(exponent, 2) == pytest.approx(row.exponent, abs=1e-9)


# --- Porian et al. 2024 ----------------------------------------------------------------------

PORIAN_KEYS = ["source_file", "dataset", "hparams", "warmup", "decay", "param_count",
               "loss_split"]


def test_porian_weighted_compute_optimal_exponents(anchors_dir):
    pairs = pd.read_csv(anchors_dir / "porian2024_optimal_pairs.csv").dropna()
    fits = pd.read_csv(anchors_dir / "porian2024_fit_results.csv")
    weighted = fits[fits.fit_kind == "weighted"].set_index(PORIAN_KEYS)
    assert len(weighted) == 15
    for key, rows in pairs.groupby(PORIAN_KEYS):
        for target, std in (("n", "n_star_std_log"), ("t", "t_star_std_log")):
            fit = fit_power_law(rows.flops.to_numpy(), rows[f"{target}_star"].to_numpy(),
                                rows[std].to_numpy())
            reference = weighted.loc[key]
            assert fit.params["c"] == pytest.approx(reference[f"{target}_exponent"], abs=1e-4)
            assert fit.params["a"] == pytest.approx(reference[f"{target}_coef"], rel=1e-4)


def test_porian_isoflop_minima(anchors_dir):
    """Argmin of the Akima interpolation of loss vs log N matches their N* within their own
    bootstrap standard deviation at every budget."""
    points = pd.read_csv(anchors_dir / "porian2024_isoflop_points.csv")
    pairs = pd.read_csv(anchors_dir / "porian2024_optimal_pairs.csv").dropna()
    optimum = pairs.set_index(PORIAN_KEYS + ["flops"])
    gaps, scaled = [], []
    for key, rows in points.groupby(PORIAN_KEYS + ["flops"]):
        if key not in optimum.index:
            continue
        size, _ = isoflop_minimum(rows.n_params.to_numpy(), rows.loss.to_numpy())
        gap = abs(np.log(size) - np.log(optimum.loc[key, "n_star"]))
        gaps.append(gap)
        scaled.append(gap / optimum.loc[key, "n_star_std_log"])
    print(f"{len(gaps)} budgets: median |dlog N*| = {np.median(gaps):.4f}, "
          f"max in their std units = {np.max(scaled):.2f}")
    assert len(gaps) == len(pairs)
    assert np.median(gaps) < 0.02 and np.max(scaled) < 1.0


# --- Chinchilla (Besiroglu et al. 2024 replication) ------------------------------------------

def _chinchilla_table(anchors_dir) -> pd.DataFrame:
    data = pd.read_csv(anchors_dir / "epoch_chinchilla_svg_extracted_data.csv")
    return pd.DataFrame({"n": data["Model Size"],
                         "d": data["Training FLOP"] / (6 * data["Model Size"]),
                         "loss": data["loss"]})


@pytest.fixture(scope="module")
def chinchilla_fit(anchors_dir):
    return fit_chinchilla(_chinchilla_table(anchors_dir), "n", "d", "loss", drop_highest=5)


def test_chinchilla_approach_3(chinchilla_fit):
    """Replication: E = 1.82, A = 482.01, B = 2085.43, alpha = 0.3478, beta = 0.3658.
    Measured here: E 1.817, A 477.8, B 2143, alpha 0.3473, beta 0.3672 -- the same objective
    value as a plain scipy L-BFGS-B loop over the full 4500-start grid (checked offline);
    the remaining gap (B +3%) is the replication's optimiser/stopping, not the objective."""
    fit = chinchilla_fit
    print("Chinchilla approach 3:", {k: round(v, 4) for k, v in fit.params.items()})
    assert fit.n_points == 240
    assert fit.params["E"] == pytest.approx(1.82, abs=0.01)
    assert fit.params["alpha"] == pytest.approx(0.3478, abs=0.002)
    assert fit.params["beta"] == pytest.approx(0.3658, abs=0.003)
    assert fit.params["A"] == pytest.approx(482.01, rel=0.02)
    assert fit.params["B"] == pytest.approx(2085.43, rel=0.04)


def test_chinchilla_fit_is_no_worse_than_plain_lbfgsb_starts(anchors_dir, chinchilla_fit):
    """Every 50th start of the grid straight through scipy's L-BFGS-B (no batched phase, no
    racing): none ends lower than the fit."""
    kept = _chinchilla_table(anchors_dir).sort_values("loss", kind="stable").iloc[:-5]
    problem = Problem(chinchilla_fit.law, kept[["n", "d"]].to_numpy(), kept["loss"].to_numpy(),
                      "huber")
    best = min(polish(problem, start)[1]
               for start in chinchilla_fit.law.start_grid(None, None)[::50])
    assert chinchilla_fit.objective <= best * (1 + 1e-6)


# --- Nezhurina et al. 2025 -------------------------------------------------------------------

def test_nezhurina_clip_vs_mammut_through_the_cli(anchors_dir, tmp_path, capsys):
    output = tmp_path / "fit.json"
    code = main(["fit", str(anchors_dir / "lscomp_overview_best_per_cell.csv"),
                 "--where", "downstream_dataset=imagenet1k", "--where", "metric=acc1",
                 "--where", "pretrain_dataset=datacomp_1b", "--where", "lr_scheduler=cosine",
                 "--where", "model_type=clip,mammut", "--group", "model_type",
                 "--frontier", "pareto_bin", "--law", "saturating4",
                 "--compute", "gflops_total", "--predict-at", "2.158e12", "2.593e12",
                 "--bootstrap", "200", "--json", str(output)])
    assert code == 0
    text = capsys.readouterr().out
    with capsys.disabled():
        print("\n" + text)
    result = json.loads(output.read_text())
    fits = {fit["group"]: fit for fit in result["fits"]}
    clip, mammut = fits["clip"], fits["mammut"]
    for name, fit in fits.items():
        print(name, fit["params"], "n_points", fit["n_points"], "rmse", fit["rmse"])
    assert mammut["params"]["c"] < clip["params"]["c"]  # MaMMUT scales more steeply
    comparison = result["comparison"]
    assert len(comparison["crossovers"]) == 1  # the curves cross once in the range
    lo, hi = comparison["search_range"]
    assert lo < comparison["crossover_x"] < hi
    predicted = {name: {p["x"]: p["value"] for p in fit["predictions"]}
                 for name, fit in fits.items()}
    # measured L-14 at 12.8B samples: CLIP 78.05%, MaMMUT 80.34% (fitted up to 3B samples)
    assert predicted["clip"][2.158e12] == pytest.approx(0.7805, abs=0.02)
    assert predicted["mammut"][2.593e12] == pytest.approx(0.8034, abs=0.02)

"""Benchmark: a full CLIP-vs-MaMMUT comparison against the straightforward fitting loop.

The work (Nezhurina et al. 2025 table, ImageNet acc1, DataComp, cosine): for each of the two
procedures, a saturating4 fit from the paper's 3200-start grid plus 1000 bootstrap resamples,
then the comparison. The straightforward method runs scipy `curve_fit` (bounded, trust region
reflective) from every start of the grid, for the full-data fit and again for every resample (as
the paper's code does, with a 24-process pool).

Measured in the same run: vlscale's whole comparison; the loop on both full-data fits (all 3200
starts); the loop on a few resamples over a strided subset of the starts, extrapolated per start
to the full grid and to all resamples. Both sides run with one BLAS thread. The fits are checked
to agree: vlscale's objective must not be above the loop's on the measured fits. A second
baseline gives the loop vlscale's own warm starts on resamples, to separate what batching buys
from what warm-starting buys. Takes ~3-5 minutes, nearly all of it in the baseline loops.

    python bench/fit_speed.py [--anchors DIR] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit
from threadpoolctl import threadpool_limits

from vlscale.analysis import Saturating4, compare, fit_curve, select_frontier
from vlscale.analysis.bootstrap import resample_points

ANCHORS = Path(__file__).resolve().parents[2] / "shared" / "anchors"
PROCEDURES = ("clip", "mammut")


def load(anchors: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    table = pd.read_csv(anchors / "lscomp_overview_best_per_cell.csv")
    table = table[(table.downstream_dataset == "imagenet1k") & (table.metric == "acc1")
                  & (table.pretrain_dataset == "datacomp_1b") & (table.lr_scheduler == "cosine")]
    return {name: (rows.gflops_total.to_numpy(float), 1.0 - rows.value.to_numpy(float))
            for name, rows in table.groupby("model_type") if name in PROCEDURES}


def loop_fit(x: np.ndarray, y: np.ndarray, starts: np.ndarray) -> tuple[float, float]:
    """The straightforward method: bounded curve_fit from each start; (seconds, best SSE)."""
    law = Saturating4()

    def model(c, a, b, e, d):
        return a * (c + b) ** e + d

    best = np.inf
    began = time.perf_counter()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", OptimizeWarning)
        for start in starts:
            try:
                params, _ = curve_fit(model, x, y, p0=start, bounds=(law.lower, law.upper),
                                      maxfev=1_000_000)
            except (RuntimeError, ValueError):
                continue
            best = min(best, float(np.sum((model(x, *params) - y) ** 2)))
    return time.perf_counter() - began, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchors", type=Path, default=ANCHORS)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--baseline-resamples", type=int, default=1,
                        help="resamples per procedure timed with the loop (default 1)")
    parser.add_argument("--baseline-stride", type=int, default=8,
                        help="on resamples, the loop runs every N-th start (default 8)")
    parser.add_argument("--warm-resamples", type=int, default=20,
                        help="resamples per procedure timed with the warm-started loop")
    args = parser.parse_args()
    data = load(args.anchors)
    grid = Saturating4().start_grid(None, None)

    began = time.perf_counter()
    fits = [fit_curve(x, y, "saturating4", "pareto_bin", n_bootstrap=args.resamples, seed=0,
                      label=name) for name, (x, y) in data.items()]
    comparison = compare(*fits)
    ours = time.perf_counter() - began
    print(f"vlscale: 2 procedures x (3200-start fit + {args.resamples} bootstrap resamples) + "
          f"comparison: {ours:.2f} s wall")
    print(f"  crossover {comparison.crossover_x:.4g} GFLOPs, CI {comparison.crossover_ci}")

    full_seconds, per_start, per_warm = 0.0, [], []
    with threadpool_limits(limits=1, user_api="blas"):
        for fit in fits:
            frontier = select_frontier(fit.all_x, fit.all_y, "pareto_bin")
            seconds, best = loop_fit(frontier.x, frontier.y, grid)
            full_seconds += seconds
            print(f"loop, full-data fit {fit.label}: {len(grid)} starts in {seconds:.1f} s; "
                  f"SSE loop {best:.10g} vs vlscale {fit.objective:.10g}")
            assert fit.objective <= best * (1 + 1e-6), "vlscale's fit is worse than the loop's"
            counts = resample_points(fit.n_points, args.resamples, np.random.default_rng(0))
            for row in range(args.baseline_resamples):
                repeat = counts[row]
                x, y = np.repeat(fit.x, repeat), np.repeat(fit.y, repeat)
                starts = grid[::args.baseline_stride]
                seconds, best = loop_fit(x, y, starts)
                per_start.append(seconds / len(starts))
                ours_sse = fit.bootstrap.objective[row]
                print(f"loop, {fit.label} resample {row}: {len(starts)} starts in {seconds:.1f} s;"
                      f" SSE loop {best:.10g} vs vlscale (warm start) {ours_sse:.10g}")
            warm_seconds = 0.0
            for row in range(args.warm_resamples):
                repeat = counts[row]
                warm_seconds += loop_fit(np.repeat(fit.x, repeat), np.repeat(fit.y, repeat),
                                         fit.minima)[0]
            per_warm.append(warm_seconds / args.warm_resamples)
    per_resample = float(np.mean(per_start)) * len(grid)
    baseline = full_seconds + len(fits) * args.resamples * per_resample
    print(f"loop, measured: full-data fits {full_seconds:.1f} s; one resample "
          f"{per_resample:.1f} s (extrapolated from {len(per_start)} resample(s) x "
          f"{len(grid[::args.baseline_stride])} starts to {len(grid)} starts)")
    print(f"loop, total for the same work (extrapolated to {args.resamples} resamples x 2): "
          f"{baseline:.0f} s = {baseline / 3600:.1f} h single-process")
    print(f"speed-up: {baseline / ours:.0f}x (vlscale {ours:.2f} s)")
    warm = full_seconds + args.resamples * float(np.sum(per_warm))
    print(f"loop with vlscale's warm starts on resamples ({len(fits[0].minima)} starts each, "
          f"{args.warm_resamples} resamples timed per procedure): {warm:.0f} s -> vlscale is "
          f"{warm / ours:.0f}x faster even then")


if __name__ == "__main__":
    main()

"""Which cells to train next: those expected to narrow the prediction interval at the target
compute the most per unit of compute they cost.

A heuristic, stated plainly. Candidates per procedure: the next samples-seen value of each
measured architecture (the next value of the slice's samples-seen ladder, else twice its largest),
the holes below it, and the grid's declared cells that have no finished run (sweeps only; a new
architecture needs its GFLOPs per sample, which only the grid knows). For each candidate we
pretend it was trained and landed exactly on the fitted law (the law's own prediction), refit
with bootstrap, and measure the width of the central 68% bootstrap interval of the prediction at
the target compute (about two standard deviations; the 95% width is dominated by the few
resamples whose fit degenerates and changed by 2x between 100 and 400 resamples). To make
the before/after difference mostly signal rather than resampling noise, both use a Poisson
bootstrap with the same counts for every existing point (the candidate gets its own counts), and
every refit starts from the full fit's two best minima. The score is (width before - width after) /
(the candidate's compute). A pseudo-point on the law cannot move the fit, only tighten it; real
results will differ, and a candidate that leaves the frontier shows no gain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vlscale.analysis import columns as C
from vlscale.analysis.bootstrap import percentile_interval, refit
from vlscale.analysis.fit import METHODS, LawFit
from vlscale.analysis.frontier import select_frontier
from vlscale.analysis.optimize import Problem

MAX_CANDIDATES = 16
"""Per procedure; each costs one batched refit of the bootstrap (~0.2 s for 200 resamples)."""
WIDTH_LEVEL = 0.68
WARM_STARTS = 2


@dataclass(frozen=True)
class Candidate:
    group: str
    arch: str
    samples_seen: float
    gflops_per_sample: float
    source: str
    """"extend" (next samples seen), "fill" (a hole below it) or the grid status ("missing",
    "failed", "stale", "running")."""

    @property
    def compute(self) -> float:
        return self.gflops_per_sample * self.samples_seen


@dataclass(frozen=True)
class Suggestion:
    candidate: Candidate
    width_before: float
    width_after: float

    @property
    def reduction(self) -> float:
        return self.width_before - self.width_after

    @property
    def per_compute(self) -> float:
        """Interval width removed per GFLOP of training compute."""
        return self.reduction / self.candidate.compute


def candidates(label: str, cells: pd.DataFrame, ladder: np.ndarray,
               declared: pd.DataFrame | None = None) -> list[Candidate]:
    """Candidate cells for one procedure; `cells` has its measured cells (arch, samples_seen,
    gflops_per_sample), `ladder` the slice's samples-seen values, `declared` the grid's cells of
    this procedure with a `status` column."""
    measured = {(str(a), float(s)) for a, s in zip(cells[C.ARCH], cells[C.SAMPLES_SEEN])}
    gflops = cells.groupby(C.ARCH)[C.GFLOPS_PER_SAMPLE].median()
    largest = cells.groupby(C.ARCH)[C.SAMPLES_SEEN].max()
    ladder = np.unique(np.asarray(ladder, float))
    extend, fill, grid = [], [], []
    for arch, top in largest.items():
        above = ladder[ladder > top]
        extend.append(Candidate(label, str(arch), float(above[0] if len(above) else 2 * top),
                                float(gflops[arch]), "extend"))
        fill += [Candidate(label, str(arch), float(s), float(gflops[arch]), "fill")
                 for s in ladder[ladder < top] if (str(arch), float(s)) not in measured]
    if declared is not None:
        for row in declared.itertuples(index=False):
            row = row._asdict()
            key = (str(row[C.ARCH]), float(row[C.SAMPLES_SEEN]))
            if row["status"] != "finished" and key not in measured \
                    and np.isfinite(row[C.GFLOPS_PER_SAMPLE]):
                grid.append(Candidate(label, *key, float(row[C.GFLOPS_PER_SAMPLE]),
                                      str(row["status"])))
    unique: dict[tuple[str, float], Candidate] = {}  # a declared cell keeps its grid status
    for candidate in grid + extend + sorted(fill, key=lambda c: -c.compute):
        unique.setdefault((candidate.arch, candidate.samples_seen), candidate)
    return list(unique.values())[:MAX_CANDIDATES]


def _width(fit: LawFit, x: np.ndarray, y: np.ndarray, counts: np.ndarray,
           target: float) -> float:
    chosen = select_frontier(x, y, fit.frontier_method)
    problem = Problem(fit.law, chosen.x, chosen.y, METHODS[fit.method])
    params, _ = refit(problem, counts[:, chosen.index].astype(float), fit.minima[:WARM_STARTS])
    with np.errstate(all="ignore"):
        predicted = fit.law.value(np.array([target]), params)[:, 0]
    low, high = percentile_interval(predicted[np.isfinite(predicted)], WIDTH_LEVEL)
    return float(high - low)


def suggest(fit: LawFit, options: list[Candidate], target: float, *, n_resamples: int = 200,
            seed: int = 0) -> list[Suggestion]:
    """Score each candidate for `fit` (see the module docstring); best first, gains only."""
    if fit.frontier_index is None or not options or n_resamples < 1:
        return []  # a synthetic frontier (binned_min) has no points to add one to
    rng = np.random.default_rng(seed)
    counts = rng.poisson(1.0, size=(n_resamples, len(fit.all_x)))
    extra = np.random.default_rng([seed, 1]).poisson(1.0, size=(n_resamples, 1))
    before = _width(fit, fit.all_x, fit.all_y, counts, target)
    with_extra = np.hstack([counts, extra])
    scored = []
    for candidate in options:
        x = np.append(fit.all_x, candidate.compute)
        y = np.append(fit.all_y, fit.predict(candidate.compute))
        after = _width(fit, x, y, with_extra, target)
        if np.isfinite(after) and after < before:
            scored.append(Suggestion(candidate, before, after))
    return sorted(scored, key=lambda s: -s.per_compute)

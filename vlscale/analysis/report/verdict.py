"""The plain-language verdict of one comparison, derived from the bootstrap, never assumed.

"Scales better" is made operational as: reaches a lower error at the largest compute that both
procedures measured, according to the fitted laws (each law uses every frontier point, so this is
the trend of the whole curve, not one run). How sure we are is the share of paired bootstrap
resamples (resample i of one law with resample i of the other; the procedures' data are
independent) in which the same procedure is ahead there, worded on the calibrated likelihood scale
of the IPCC uncertainty guidance (Mastrandrea et al. 2010): >= 99% virtually certain, >= 95%
extremely likely, >= 90% very likely, >= 66% likely, below that "about as likely as not", which
is reported as insufficient evidence. "Conclusive" additionally requires the two-sided
`confidence` interval of the error difference to exclude zero. The extrapolation to the target
compute, the compute multipliers, the crossover and the exponents are stated alongside: they
describe *how* the procedures differ, the headline only *whether* we can tell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlscale.analysis.bootstrap import percentile_interval
from vlscale.analysis.compare import Comparison
from vlscale.analysis.fit import LawFit

LIKELIHOOD_SCALE: tuple[tuple[float, str], ...] = (
    (0.99, "virtually certain"), (0.95, "extremely likely"), (0.90, "very likely"),
    (0.66, "likely"))
AS_LIKELY_AS_NOT = "about as likely as not"
MIN_WINNER_PROBABILITY = LIKELIHOOD_SCALE[-1][0]


@dataclass(frozen=True)
class Ahead:
    """Which of two fitted laws is lower at compute `x`, and how often across resamples."""

    x: float
    leader: str
    """The label with the lower point-fit error at x (ties: the first)."""
    probability: float | None
    """Share of paired resamples in which `leader` is lower, ties counting half (None without
    a bootstrap)."""
    gap: float
    """Point-fit error of the other procedure minus the leader's (>= 0)."""
    gap_ci: tuple[float, float] | None
    resamples: int


@dataclass(frozen=True)
class Verdict:
    """The answer for one pair of procedures on one task, metric and slice."""

    context: str
    """The slice, e.g. "pretrain_dataset=datacomp_1b, lr_scheduler=cosine" ("" if none)."""
    task: str
    metric: str
    a: str
    b: str
    winner: str | None
    """The procedure that scales better, or None when the evidence is insufficient."""
    probability: float | None
    """Share of resamples in which the procedure ahead at `at` is ahead (None: no bootstrap)."""
    likelihood: str
    conclusive: bool
    at: float
    """Compute of the verdict: the largest compute both procedures measured."""
    headline: str
    """The answer in one sentence."""
    text: str
    """The headline followed by multipliers, extrapolation, crossover, exponents, caveats."""

    def __str__(self) -> str:
        return self.text


def likelihood(probability: float | None) -> str:
    if probability is None or not np.isfinite(probability):
        return "unknown (no bootstrap)"
    for threshold, words in LIKELIHOOD_SCALE:
        if probability >= threshold:
            return words
    return AS_LIKELY_AS_NOT


def ahead_at(fit_a: LawFit, fit_b: LawFit, x: float, confidence: float) -> Ahead:
    """Which law is lower at `x`, with the paired-bootstrap share and the gap's interval."""
    point_a, point_b = float(fit_a.predict(x)[0]), float(fit_b.predict(x)[0])
    leader_is_a = point_a <= point_b
    leader = fit_a.label if leader_is_a else fit_b.label
    gap = abs(point_b - point_a)
    samples_a, samples_b = fit_a.predict_samples(x), fit_b.predict_samples(x)
    if samples_a is None or samples_b is None:
        return Ahead(float(x), leader, None, gap, None, 0)
    count = min(len(samples_a), len(samples_b))
    other_minus_leader = (samples_b[:count, 0] - samples_a[:count, 0]) * (1 if leader_is_a else -1)
    finite = other_minus_leader[np.isfinite(other_minus_leader)]
    if len(finite) == 0:
        return Ahead(float(x), leader, None, gap, None, 0)
    low, high = percentile_interval(finite, confidence)
    share = float(np.mean(finite > 0) + 0.5 * np.mean(finite == 0))  # a tie counts half
    return Ahead(float(x), leader, share, gap, (float(low), float(high)), len(finite))


def _g(value: float | None) -> str:
    if value is None or not np.isfinite(value):
        return "unbounded" if value is not None and np.isinf(value) else "n/a"
    return f"{value:.3g}"


def _ci(pair: tuple[float, float] | None) -> str:
    """An interval; a NaN upper bound above a finite lower one is the percentile of infinite
    samples (a multiplier for a law that never gets there), i.e. unbounded."""
    if pair is None:
        return ""
    high = pair[1]
    if high is not None and np.isnan(high) and np.isfinite(pair[0]):
        high = np.inf
    return f" [{_g(pair[0])}, {_g(high)}]"


def _times(multiplier: float, ci: tuple[float, float] | None) -> str:
    if np.isinf(multiplier):
        return f"an unbounded multiple{_ci(ci)} of"
    return f"{_g(multiplier)}x{_ci(ci)}"


def decide(fit_a: LawFit, fit_b: LawFit, at: float, target: float,
           loser_vs_winner: Comparison, *, task: str, metric: str, context: str,
           confidence: float, heldout_rmse: float | None = None) -> Verdict:
    """The verdict for A vs B. `loser_vs_winner` is `compare(behind, ahead, at=[at, target])`
    with the procedure ahead at `at` (by the point fits) as B."""
    now, later = ahead_at(fit_a, fit_b, at, confidence), ahead_at(fit_a, fit_b, target, confidence)
    other = fit_b.label if now.leader == fit_a.label else fit_a.label
    on = f"{task} {metric}".strip()
    level = likelihood(now.probability)
    where = f"at {_g(at)} GFLOPs, the largest compute both measured"
    percent = f"{now.probability:.0%}" if now.probability is not None else ""
    conclusive = bool(now.gap_ci is not None and now.gap_ci[0] > 0)
    winner = now.leader if (now.probability or 0) >= MIN_WINNER_PROBABILITY else None
    interval = (f"the {confidence:.0%} interval of the error difference {other} - {now.leader} "
                f"is{_ci(now.gap_ci)}")
    if now.probability is None:
        winner, headline = None, (
            f"Insufficient evidence to tell whether {fit_a.label} or {fit_b.label} scales better "
            f"on {on}: no bootstrap intervals (use --bootstrap N); the point fits alone put "
            f"{now.leader} ahead {where}.")
    elif winner is None:
        headline = (f"Insufficient evidence to tell whether {fit_a.label} or {fit_b.label} "
                    f"scales better on {on}: {where}, {now.leader} has the lower error in only "
                    f"{percent} of {now.resamples} bootstrap resamples ({level}), and {interval}.")
    elif conclusive:
        headline = (f"{winner} scales better than {other} on {on}: {where}, its error is lower "
                    f"in {percent} of {now.resamples} bootstrap resamples ({level}), and "
                    f"{interval}.")
    else:
        headline = (f"{winner} likely scales better than {other} on {on}: {where}, its error "
                    f"is lower in {percent} of {now.resamples} bootstrap resamples ({level}), "
                    f"but {interval}, which includes 0: not conclusive.")
    sentences = [headline]
    now_multiplier, later_multiplier = loser_vs_winner.multiplier_at[:2]
    sentences.append(f"To match {now.leader}'s error there, {other} needs "
                     f"{_times(now_multiplier.multiplier, now_multiplier.ci)} the compute.")
    later_other = fit_b.label if later.leader == fit_a.label else fit_a.label
    extrapolated = (f"Extrapolated to {_g(target)} GFLOPs ({_g(target / at)}x): "
                    f"{later.leader} ahead")
    if later.probability is not None:
        extrapolated += (f" in {later.probability:.0%} of resamples "
                         f"({likelihood(later.probability)})")
    if later.leader == now.leader:
        extrapolated += (f"; {other} would need "
                         f"{_times(later_multiplier.multiplier, later_multiplier.ci)} the compute.")
    else:
        extrapolated += f" (the order flips: {later_other} falls behind)."
    sentences.append(extrapolated)
    sentences.append(_crossover_sentence(loser_vs_winner, {fit_a.label: fit_a, fit_b.label: fit_b}))
    sentences.append(
        f"Exponents: c({other}) - c({now.leader}) = "
        f"{_g(loser_vs_winner.exponent_difference)}{_ci(loser_vs_winner.exponent_difference_ci)}"
        f" (more negative improves faster); floors d differ by "
        f"{_g(loser_vs_winner.floor_difference)}{_ci(loser_vs_winner.floor_difference_ci)}.")
    if heldout_rmse is not None and np.isfinite(heldout_rmse) and heldout_rmse > now.gap:
        sentences.append(f"Caution: the laws predict their held-out largest cells with RMSE up "
                         f"to {_g(heldout_rmse)}, more than the gap {_g(now.gap)} between the "
                         "procedures: the fits may not extrapolate well.")
    return Verdict(context, task, metric, fit_a.label, fit_b.label, winner, now.probability,
                   level, conclusive and winner is not None, float(at), headline,
                   " ".join(sentences))


def _crossover_sentence(comparison: Comparison, fits: dict[str, LawFit]) -> str:
    probability = comparison.crossover_probability
    share = ("" if probability is None
             else f" (a crossover occurs in {probability:.0%} of resamples)")
    low, high = comparison.search_range
    if comparison.crossover_x is None:
        return f"The laws do not cross between {_g(low)} and {_g(high)} GFLOPs{share}."
    beyond = min(fits, key=lambda label: float(fits[label].predict(high)[0]))
    others = [label for label in fits if label != beyond]
    crossings = comparison.crossovers
    earlier = ("" if len(crossings) == 1 else
               f" (they also cross at {', '.join(_g(x) for x in crossings[:-1])})")
    return (f"The laws cross at {_g(comparison.crossover_x)} GFLOPs"
            f"{_ci(comparison.crossover_ci)}{share}{earlier}; beyond it {beyond} is ahead, "
            f"below it {others[0] if others else beyond}.")

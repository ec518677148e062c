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

Shares are printed as percentages rounded *down* to 0.1% (`shown_probability`), and the word is
chosen from that printed number: the scale's thresholds are multiples of 0.1%, so the printed
number, its word and the winner rule always agree (0.895 is "89.5% (likely)", never "90%
(likely)"), and the printed share never exceeds the measured one. The crossover sentence names
every crossing in the search range and who is ahead on each stretch between them. An interval
end that is infinite (a multiplier for a law that never reaches the other's error) is written
"unbounded".
"""

from __future__ import annotations

import math
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
    """The answer in one sentence, with its evidence."""
    summary: str
    """The answer at a glance: who scales better, how sure, at what compute (the report's
    opening line)."""
    text: str
    """The headline followed by multipliers, extrapolation, crossover, exponents, caveats."""

    def __str__(self) -> str:
        return self.text


NOISE_MARGIN = 2 * math.sqrt(2)
"""Two runs of one cell differ by sqrt(2) x the noise std on average; within two of those
standard deviations (~95% for a normal difference) a gap is indistinguishable from chance."""
HELDOUT_NOISE_MARGIN = 2.0
"""A law's prediction of a held-out cell is "within the noise" when its RMSE is at most two
standard deviations of that cell's own run-to-run noise (~95% of reruns land that close)."""


def shown_probability(probability: float) -> float:
    """`probability` rounded down to 0.1%, the precision it is printed with (the 1e-9 absorbs
    float error in shares such as 190/200, which are exact fractions)."""
    return float(np.floor(probability * 1000.0 + 1e-9) / 1000.0)


def percent(probability: float) -> str:
    """The share as printed: rounded down to 0.1%, e.g. 0.8995 -> "89.9%"."""
    return f"{100.0 * shown_probability(probability):.1f}%"


def likelihood(probability: float | None) -> str:
    """The calibrated word for the share *as printed* (`shown_probability`)."""
    if probability is None or not np.isfinite(probability):
        return "unknown (no bootstrap)"
    shown = shown_probability(probability)
    for threshold, words in LIKELIHOOD_SCALE:
        if shown >= threshold:
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
    # a tie counts half; one division of integers, so e.g. 190 of 200 is exactly 0.95
    share = (2 * int(np.sum(finite > 0)) + int(np.sum(finite == 0))) / (2 * len(finite))
    return Ahead(float(x), leader, share, gap, (float(low), float(high)), len(finite))


def _g(value: float | None) -> str:
    if value is None or not np.isfinite(value):
        return "unbounded" if value is not None and np.isinf(value) else "n/a"
    return f"{value:.3g}"


def _ci(pair: tuple[float, float] | None) -> str:
    """An interval; an infinite end is "unbounded" (see `bootstrap.percentile_interval`)."""
    if pair is None:
        return ""
    return f" [{_g(pair[0])}, {_g(pair[1])}]"


def _times(multiplier: float, ci: tuple[float, float] | None) -> str:
    if np.isinf(multiplier):
        return f"an unbounded multiple{_ci(ci)} of"
    return f"{_g(multiplier)}x{_ci(ci)}"


def decide(fit_a: LawFit, fit_b: LawFit, at: float, target: float,
           loser_vs_winner: Comparison, *, task: str, metric: str, context: str,
           confidence: float, heldout_rmse: float | None = None,
           noise: float | None = None) -> Verdict:
    """The verdict for A vs B. `loser_vs_winner` is `compare(behind, ahead, at=[at, target])`
    with the procedure ahead at `at` (by the point fits) as B.

    `noise`: the run-to-run noise (std of a cell's result between seeds, `analysis.noise`) when
    the grid measured it. A gap within `NOISE_MARGIN` x noise is never conclusive, whatever the
    bootstrap says: the bootstrap resamples the fitted points but cannot see that every point
    would move if the grid were rerun with other seeds."""
    now, later = ahead_at(fit_a, fit_b, at, confidence), ahead_at(fit_a, fit_b, target, confidence)
    other = fit_b.label if now.leader == fit_a.label else fit_a.label
    on = f"{task} {metric}".strip()
    level = likelihood(now.probability)
    where = f"at {_g(at)} GFLOPs, the largest compute both measured"
    shown = None if now.probability is None else shown_probability(now.probability)
    share = "" if now.probability is None else (
        f"{percent(now.probability)} of {now.resamples} bootstrap resamples")
    conclusive = bool(now.gap_ci is not None and now.gap_ci[0] > 0)
    noise_std: float = math.nan if noise is None else noise
    known_noise = bool(np.isfinite(noise_std))
    within_noise = known_noise and now.gap <= NOISE_MARGIN * noise_std
    winner = now.leader if (shown or 0.0) >= MIN_WINNER_PROBABILITY else None
    interval = (f"the {confidence:.0%} interval of the error difference {other} - {now.leader} "
                f"is{_ci(now.gap_ci)}")
    if now.probability is None:
        winner, headline = None, (
            f"Insufficient evidence to tell whether {fit_a.label} or {fit_b.label} scales better "
            f"on {on}: no bootstrap intervals (use --bootstrap N); the point fits alone put "
            f"{now.leader} ahead {where}.")
        summary = (f"Insufficient evidence on {on}: without a bootstrap there is no telling how "
                   f"sure the point fits' order ({now.leader} ahead at {_g(at)} GFLOPs) is.")
    elif winner is None:
        headline = (f"Insufficient evidence to tell whether {fit_a.label} or {fit_b.label} "
                    f"scales better on {on}: {where}, {now.leader} has the lower error in only "
                    f"{share} ({level}), and {interval}.")
        summary = (f"Insufficient evidence on {on}: at {_g(at)} GFLOPs {now.leader} is ahead in "
                   f"only {share} ({level}), below the {MIN_WINNER_PROBABILITY:.0%} a verdict "
                   "needs.")
    elif conclusive and within_noise:
        headline = (f"{winner} scales better than {other} on {on} ({level}, but not "
                    f"conclusive): {where}, its error is lower in {share} and {interval}, but "
                    f"the gap {_g(now.gap)} is within the run-to-run noise (rerunning a cell "
                    f"with another seed moves it by {_g(noise_std)} std, so two cells differ by "
                    f"up to {_g(NOISE_MARGIN * noise_std)} by chance).")
        summary = (f"{winner} scales better than {other} on {on}: {level} ({share}) at "
                   f"{_g(at)} GFLOPs, the largest compute both measured, but not conclusive "
                   f"(the gap is within the run-to-run noise).")
        conclusive = False
    elif conclusive:
        headline = (f"{winner} scales better than {other} on {on} ({level}): {where}, its error "
                    f"is lower in {share}, and {interval}.")
        summary = (f"{winner} scales better than {other} on {on}: {level} ({share}) at "
                   f"{_g(at)} GFLOPs, the largest compute both measured.")
    else:
        headline = (f"{winner} scales better than {other} on {on} ({level}, but not "
                    f"conclusive): {where}, its error is lower in {share}, but {interval}, "
                    "which includes 0.")
        summary = (f"{winner} scales better than {other} on {on}: {level} ({share}) at "
                   f"{_g(at)} GFLOPs, the largest compute both measured, but not conclusive "
                   f"(the {confidence:.0%} interval of the gap includes 0).")
    sentences = [headline]
    now_multiplier, later_multiplier = loser_vs_winner.multiplier_at[:2]
    sentences.append(f"To match {now.leader}'s error there, {other} needs "
                     f"{_times(now_multiplier.multiplier, now_multiplier.ci)} the compute.")
    later_other = fit_b.label if later.leader == fit_a.label else fit_a.label
    extrapolated = (f"Extrapolated to {_g(target)} GFLOPs ({_g(target / at)}x): "
                    f"{later.leader} ahead")
    if later.probability is not None:
        extrapolated += (f" in {percent(later.probability)} of resamples "
                         f"({likelihood(later.probability)})")
    if later.leader == now.leader:
        extrapolated += (f"; {other} would need "
                         f"{_times(later_multiplier.multiplier, later_multiplier.ci)} the compute.")
    else:
        extrapolated += f" (the order flips: {later_other} falls behind)."
    sentences.append(extrapolated)
    sentences.append(crossover_sentence(loser_vs_winner, {fit_a.label: fit_a,
                                                          fit_b.label: fit_b}))
    sentences.append(
        f"Exponents: c({other}) - c({now.leader}) = "
        f"{_g(loser_vs_winner.exponent_difference)}{_ci(loser_vs_winner.exponent_difference_ci)}"
        f" (more negative improves faster); floors d differ by "
        f"{_g(loser_vs_winner.floor_difference)}{_ci(loser_vs_winner.floor_difference_ci)}.")
    if known_noise and heldout_rmse is not None and np.isfinite(heldout_rmse):
        sentences.append(
            f"Held-out check: the laws predict their held-out largest cells with RMSE up to "
            f"{_g(heldout_rmse)}; rerunning a cell with another seed moves it by {_g(noise_std)} "
            f"(std): the prediction is "
            f"{'within' if heldout_rmse <= HELDOUT_NOISE_MARGIN * noise_std else 'outside'} the "
            "run-to-run noise.")
    if heldout_rmse is not None and np.isfinite(heldout_rmse) and heldout_rmse > now.gap:
        sentences.append(f"Caution: the laws predict their held-out largest cells with RMSE up "
                         f"to {_g(heldout_rmse)}, more than the gap {_g(now.gap)} between the "
                         "procedures: the fits may not extrapolate well.")
    return Verdict(context, task, metric, fit_a.label, fit_b.label, winner, now.probability,
                   level, conclusive and winner is not None, float(at), headline, summary,
                   " ".join(sentences))


def leaders(fits: dict[str, LawFit], bounds: list[float]) -> list[str | None]:
    """Who is lower on each stretch between consecutive `bounds` (judged at its geometric
    middle, where no crossing is); None where the laws give exactly the same error."""
    names = list(fits)
    result = []
    for low, high in zip(bounds[:-1], bounds[1:]):
        middle = float(np.sqrt(low * high))
        values = [float(fits[name].predict(middle)[0]) for name in names]
        result.append(None if values[0] == values[1] else names[int(np.argmin(values))])
    return result


def crossover_sentence(comparison: Comparison, fits: dict[str, LawFit]) -> str:
    """Where the laws cross in the search range and who is ahead on each stretch, e.g. "The
    laws cross twice between L and H GFLOPs, first at X1 [ci], then at X2: A is ahead below X1,
    B from X1 to X2, A above X2." The interval and share belong to the first crossing (the
    one `compare` matches in every resample pair)."""
    probability = comparison.crossover_probability
    low, high = comparison.search_range
    crossings = list(comparison.crossovers)
    ahead = leaders(fits, [low] + crossings + [high])
    span = f"between {_g(low)} and {_g(high)} GFLOPs"
    if not crossings:
        share = ("" if probability is None
                 else f" (a crossover occurs in {percent(probability)} of resamples)")
        if ahead[0] is None:
            return f"The laws coincide {span}{share}."
        return f"The laws do not cross {span}: {ahead[0]} is ahead throughout{share}."
    share = ("" if probability is None else
             f" (in {percent(probability)} of resamples the laws cross this way)")
    first = f"{_g(crossings[0])} GFLOPs{_ci(comparison.crossover_ci)}{share}"
    if len(crossings) == 1:
        return (f"The laws cross once {span}, at {first}: {ahead[0]} is ahead below it, "
                f"{ahead[1]} above it.")
    count = "twice" if len(crossings) == 2 else f"{len(crossings)} times"
    later = ", ".join(_g(x) for x in crossings[1:])
    stretches = [f"{ahead[0]} is ahead below {_g(crossings[0])}"]
    stretches += [f"{ahead[i]} from {_g(crossings[i - 1])} to {_g(crossings[i])}"
                  for i in range(1, len(crossings))]
    stretches.append(f"{ahead[-1]} above {_g(crossings[-1])}")
    return (f"The laws cross {count} {span}, first at {first}, then at {later} GFLOPs: "
            f"{', '.join(stretches)}.")

"""The verdict's sentences follow from the numbers: crossings (0, 1, 2) and who leads between
them, the likelihood word at every threshold of the scale, consistent rounding, unbounded ends.

The fits are built by hand (known parameters, chosen bootstrap samples), so every expected
word can be derived here independently of the fitting engine."""

from __future__ import annotations

import numpy as np
import pytest

from vlscale.analysis import compare
from vlscale.analysis.bootstrap import BootstrapResult
from vlscale.analysis.fit import LawFit
from vlscale.analysis.laws import LAWS
from vlscale.analysis.report.verdict import (
    HELDOUT_NOISE_MARGIN,
    LIKELIHOOD_SCALE,
    NOISE_MARGIN,
    crossover_sentence,
    decide,
    likelihood,
    percent,
    shown_probability,
)

LAW = LAWS["saturating4"]
X = np.logspace(4, 9, 12)


def _fit(params, label: str, samples: np.ndarray | None = None) -> LawFit:
    params = np.asarray(params, float)
    y = LAW.value(X, params)
    boot = None if samples is None else BootstrapResult(samples, np.zeros(len(samples)),
                                                        "frontier", 0, 0.95)
    return LawFit(LAW, params, LAW.public_params(params), X, y, X, y, np.arange(len(X)),
                  "none", "least_squares", 0.0, 0.0, params[None], boot, label)


def _leaders_on_a_dense_grid(fit_a: LawFit, fit_b: LawFit, low: float, high: float):
    """Independent reference: the sequence of leaders along the range (runs collapsed)."""
    grid = np.logspace(np.log10(low), np.log10(high), 200_001)
    lower_a = fit_a.predict(grid) < fit_b.predict(grid)
    names = np.where(lower_a, fit_a.label, fit_b.label)
    return [name for i, name in enumerate(names) if i == 0 or name != names[i - 1]]


# E = a C^c + d: A flatter with a higher floor than B (one crossing); with A's floor 0.11,
# below B's 0.15, A comes back far out (two crossings, at about 4.8e6 and 1.9e11).
ONE = ([3.4, 0.0, -0.15, 0.20], [8.8, 0.0, -0.22, 0.15])
TWO = ([3.4, 0.0, -0.15, 0.11], [8.8, 0.0, -0.22, 0.15])
NONE = ([10.0, 0.0, -0.1, 0.10], [10.0, 0.0, -0.1, 0.05])


@pytest.mark.parametrize("pair, count", [(NONE, 0), (ONE, 1), (TWO, 2)])
def test_crossover_sentence_names_each_crossing_once_and_who_leads_between(pair, count):
    fit_a, fit_b = _fit(pair[0], "A"), _fit(pair[1], "B")
    comparison = compare(fit_a, fit_b)
    assert len(comparison.crossovers) == count
    sentence = crossover_sentence(comparison, {"A": fit_a, "B": fit_b})
    print(sentence)
    low, high = comparison.search_range
    leaders = _leaders_on_a_dense_grid(fit_a, fit_b, low, high)
    assert len(leaders) == count + 1
    named = [f"{x:.3g}" for x in comparison.crossovers]
    if count == 0:
        assert sentence == (f"The laws do not cross between {low:.3g} and {high:.3g} GFLOPs: "
                            f"{leaders[0]} is ahead throughout.")
    elif count == 1:
        assert sentence == (f"The laws cross once between {low:.3g} and {high:.3g} GFLOPs, at "
                            f"{named[0]} GFLOPs: {leaders[0]} is ahead below it, {leaders[1]} "
                            "above it.")
    else:
        assert sentence == (
            f"The laws cross twice between {low:.3g} and {high:.3g} GFLOPs, first at "
            f"{named[0]} GFLOPs, then at {named[1]} GFLOPs: {leaders[0]} is ahead below "
            f"{named[0]}, {leaders[1]} from {named[0]} to {named[1]}, {leaders[2]} above "
            f"{named[1]}.")
        # the old text named the first crossing twice and said "below it B" here
        assert leaders == ["A", "B", "A"]


def _probability_pair(k: int, n: int, **options):
    """B ahead of A at C = X.max() by the point fits, and in exactly k of n resample pairs
    (the others move B's floor up past A): the paired share is k / n, no ties. B's error
    there (0.332) is below A's floor (0.35): A never matches it, its multiplier is infinite."""
    a = np.array([3.4, 0.0, -0.15, 0.35])
    b = np.array([3.4, 0.0, -0.15, 0.18])
    samples_b = np.tile(b, (n, 1))
    samples_b[k:, 3] = 0.40
    samples_b[:k, 3] = np.linspace(0.15, 0.19, k)  # spread: the gap interval is not a point
    fit_a = _fit(a, "A", np.tile(a, (n, 1)))
    fit_b = _fit(b, "B", samples_b)
    at = float(X.max())
    comparison = compare(fit_a, fit_b, at=[at, 10 * at])
    return decide(fit_a, fit_b, at, 10 * at, comparison, task="imagenet1k", metric="acc1",
                  context="", confidence=0.95, **options)


BOUNDARIES = [t for t, _ in LIKELIHOOD_SCALE]


@pytest.mark.parametrize("k, n", [(int(round(t * 1000)) + d, 1000)
                                  for t in BOUNDARIES for d in (-1, 0)]
                         + [(895, 1000), (1799, 2000), (1000, 1000), (500, 1000)])
def test_printed_share_word_and_winner_agree_at_every_threshold(k, n):
    verdict = _probability_pair(k, n)
    assert verdict.probability == k / n
    shown = np.floor(1000 * k / n) / 10  # rounded down to 0.1%, computed independently
    expected = next((w for t, w in LIKELIHOOD_SCALE if shown >= 100 * t - 1e-9),
                    "about as likely as not")
    assert verdict.likelihood == expected == likelihood(k / n)
    printed = f"{shown:.1f}% of {n} bootstrap resamples"
    assert printed in verdict.headline and printed in verdict.summary, verdict.headline
    assert f"({expected}" in verdict.headline and expected in verdict.summary
    assert (verdict.winner == "B") == (shown >= 66.0)
    if verdict.winner:
        assert verdict.headline.startswith("B scales better than A on imagenet1k acc1 (")
        assert " likely scales" not in verdict.headline  # no second, uncalibrated word
    else:
        assert verdict.headline.startswith("Insufficient evidence")
        assert verdict.summary.startswith("Insufficient evidence")


def test_rounding_never_promotes_a_share_to_the_next_word():
    assert percent(0.895) == "89.5%" and likelihood(0.895) == "likely"
    assert percent(0.8999) == "89.9%" and likelihood(0.8999) == "likely"
    assert percent(0.9) == "90.0%" and likelihood(0.9) == "very likely"
    assert shown_probability(190 / 200) == 0.95 and likelihood(190 / 200) == "extremely likely"
    # a share a float step below an exact threshold (0.945 + 0.005 in floating point)
    assert likelihood(0.945 + 0.005) == likelihood(0.95)


def test_conclusive_and_not_conclusive_headlines():
    """96% ahead but the 95% interval of the gap includes 0: the word is "extremely likely",
    and the headline says it is not conclusive instead of adding "likely"."""
    unsure = _probability_pair(960, 1000)
    assert not unsure.conclusive and unsure.likelihood == "extremely likely"
    assert "(extremely likely, but not conclusive)" in unsure.headline
    assert "which includes 0" in unsure.headline and "not conclusive" in unsure.summary
    sure = _probability_pair(1000, 1000)
    assert sure.conclusive and "(virtually certain):" in sure.headline
    assert "not conclusive" not in sure.text


def test_unbounded_interval_ends_are_written_out():
    """B's floor is below A's, so A never reaches B's error far out: the multiplier and its
    interval are infinite, written "unbounded" in the text (never "-" or "n/a")."""
    verdict = _probability_pair(1000, 1000)
    comparison = compare(_fit([3.4, 0.0, -0.15, 0.35], "A"), _fit([3.4, 0.0, -0.15, 0.18], "B"))
    assert np.isinf(comparison.multiplier_at[0].multiplier)
    assert "needs an unbounded multiple" in verdict.text
    assert "[unbounded, unbounded]" in verdict.text and "n/a" not in verdict.text


def test_a_gap_within_the_run_to_run_noise_is_never_conclusive():
    """Every resample puts B ahead (virtually certain), but a gap that seeds alone could make
    is not conclusive; with a smaller noise the same numbers are."""
    plain = _probability_pair(1000, 1000)
    gap = float(_fit([3.4, 0.0, -0.15, 0.35], "A").predict(X.max())[0]
                - _fit([3.4, 0.0, -0.15, 0.18], "B").predict(X.max())[0])
    assert plain.conclusive
    noisy = _probability_pair(1000, 1000, noise=1.01 * gap / NOISE_MARGIN)
    assert not noisy.conclusive and noisy.winner == "B"
    assert "(virtually certain, but not conclusive)" in noisy.headline
    assert "within the run-to-run noise" in noisy.headline and "run-to-run noise" in noisy.summary
    quiet = _probability_pair(1000, 1000, noise=0.99 * gap / NOISE_MARGIN)
    assert quiet.conclusive and "not conclusive" not in quiet.text


@pytest.mark.parametrize("factor, word", [(0.99, "within"), (1.01, "outside")])
def test_heldout_error_is_judged_against_the_noise(factor, word):
    noise = 0.01
    verdict = _probability_pair(1000, 1000, noise=noise,
                                heldout_rmse=factor * HELDOUT_NOISE_MARGIN * noise)
    assert f"the prediction is {word} the run-to-run noise" in verdict.text
    assert "Held-out check" not in _probability_pair(1000, 1000, heldout_rmse=0.01).text

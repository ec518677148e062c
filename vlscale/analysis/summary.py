"""Fit results as plain records (for JSON) and as a terminal table.

Records use only JSON types, so any JSON reader accepts them: an infinite number (an unbounded
interval end, e.g. the multiplier of a law that never reaches the other's error) is the string
"inf" (or "-inf"), and NaN (undefined: no value) is null. The terminal table writes them as
"unbounded" and "n/a".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vlscale.analysis.axes import ErrorMode, to_error
from vlscale.analysis.compare import Comparison
from vlscale.analysis.fit import LawFit
from vlscale.analysis.holdout import HoldoutResult

INF, NEG_INF = "inf", "-inf"
"""How JSON records write an infinite number (JSON has no infinity)."""


def from_json_number(value) -> float | None:
    """A number as `clean` wrote it, back to a float (None stays None)."""
    if value == INF:
        return math.inf
    if value == NEG_INF:
        return -math.inf
    return None if value is None else float(value)


def clean(value):
    """Recursively convert numpy scalars/arrays to Python; +-inf -> "inf" / "-inf", NaN ->
    None (see the module docstring)."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        if math.isinf(value):
            return INF if value > 0 else NEG_INF
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _interval(pair) -> list[float] | None:
    return None if pair is None else [float(pair[0]), float(pair[1])]


def fit_record(fit: LawFit, predict_at: Sequence[float], error_mode: ErrorMode,
               heldout: HoldoutResult | None = None) -> dict:
    """One group's fit: law, parameters (with intervals), frontier, rmse, predictions, held-out.

    Prediction "y" is in the fitted error space; with `1-value` errors, "value" gives the metric.
    """
    at = np.asarray(predict_at, dtype=float)
    predicted = fit.predict(at) if len(at) else np.empty(0)
    band = fit.predict_interval(at) if len(at) else None
    predictions = []
    for i, x in enumerate(at):
        ci = None if band is None else [band[0][i], band[1][i]]
        entry = {"x": x, "y": predicted[i], "ci": ci}
        if error_mode == "1-value":
            entry["value"] = float(to_error(predicted[i], error_mode))
            entry["value_ci"] = None if ci is None else sorted(to_error(ci, error_mode).tolist())
        predictions.append(entry)
    intervals = fit.param_intervals()
    record = {
        "group": fit.label, "law": fit.law.name, "formula": fit.law.formula,
        "params": fit.params,
        "params_ci": None if intervals is None else {k: list(v) for k, v in intervals.items()},
        "n_points": fit.n_points, "frontier": fit.frontier.tolist(), "rmse": fit.rmse,
        "predictions": predictions, "heldout": [], "heldout_threshold": None,
        "heldout_rmse": None,
        "bootstrap": None if fit.bootstrap is None else {
            "resamples": fit.bootstrap.n_resamples, "over": fit.bootstrap.over,
            "seed": fit.bootstrap.seed, "confidence": fit.bootstrap.confidence},
    }
    if heldout is not None:
        record["heldout"] = [{"x": x, "y": y, "predicted": p, "error": p - y}
                             for x, y, p in zip(heldout.x, heldout.y, heldout.predicted)]
        record["heldout_threshold"] = heldout.threshold
        record["heldout_rmse"] = heldout.rmse
    return clean(record)


def comparison_record(comparison: Comparison) -> dict:
    """The comparison of the two groups (A minus B)."""
    return clean({
        "a": comparison.label_a, "b": comparison.label_b,
        "crossover_x": comparison.crossover_x, "crossover_ci": _interval(comparison.crossover_ci),
        "crossover_probability": comparison.crossover_probability,
        "crossovers": list(comparison.crossovers),
        "search_range": list(comparison.search_range),
        "multiplier_at": [{"x": m.x, "multiplier": m.multiplier, "ci": _interval(m.ci)}
                          for m in comparison.multiplier_at],
        "exponent_difference": comparison.exponent_difference,
        "exponent_difference_ci": _interval(comparison.exponent_difference_ci),
        "floor_difference": comparison.floor_difference,
        "floor_difference_ci": _interval(comparison.floor_difference_ci),
        "confidence": comparison.confidence,
    })


def _number(value) -> str:
    """A record's number for the terminal: "unbounded" for an infinite one, "n/a" for none."""
    if value in (INF, NEG_INF):
        return "unbounded" if value == INF else "-unbounded"
    return "n/a" if value is None else f"{value:.4g}"


def _ci(pair) -> str:
    return "" if pair is None else f" [{_number(pair[0])}, {_number(pair[1])}]"


def format_text(records: Sequence[dict], comparison: dict | None = None) -> str:
    """A human-readable table of the fits, their predictions and the comparison."""
    names = list(records[0]["params"]) if records else []
    header = f"{'group':<16}{'law':<13}{'points':>7}" + "".join(f"{n:>13}" for n in names)
    lines = [header + f"{'rmse':>11}"]
    for record in records:
        values = "".join(f"{_number(record['params'][n]):>13}" for n in names)
        lines.append(f"{str(record['group'])[:15]:<16}{record['law']:<13}"
                     f"{record['n_points']:>7}{values}{_number(record['rmse']):>11}")
    for record in records:
        for p in record["predictions"]:
            value = f"  (value {_number(p['value'])}{_ci(p.get('value_ci'))})" if "value" in p else ""
            lines.append(f"{record['group']}: predicted error at {_number(p['x'])} = "
                         f"{_number(p['y'])}{_ci(p['ci'])}{value}")
        if record["heldout_threshold"] is not None:
            lines.append(f"{record['group']}: {len(record['heldout'])} held-out point(s) above "
                         f"{_number(record['heldout_threshold'])}, rmse "
                         f"{_number(record['heldout_rmse'])}")
    if comparison:
        crossings = ", ".join(_number(x) for x in comparison["crossovers"]) or "none"
        probability = comparison["crossover_probability"]
        span = (f"[{_number(comparison['search_range'][0])}, "
                f"{_number(comparison['search_range'][1])}]")
        first = ("no crossover in " + span if comparison["crossover_x"] is None else
                 f"crossover at {_number(comparison['crossover_x'])}"
                 f"{_ci(comparison['crossover_ci'])}")
        lines.append(f"{comparison['a']} vs {comparison['b']}: {first}"
                     + ("" if probability is None else f", P(crossover) = {probability:.2f}")
                     + ("" if comparison["crossover_x"] is None
                        else f"; all crossings in {span}: {crossings}"))
        lines.append(f"exponent difference (c_{comparison['a']} - c_{comparison['b']}) = "
                     f"{_number(comparison['exponent_difference'])}"
                     f"{_ci(comparison['exponent_difference_ci'])}; floor difference = "
                     f"{_number(comparison['floor_difference'])}"
                     f"{_ci(comparison['floor_difference_ci'])}")
        for m in comparison["multiplier_at"]:
            times = (f"an unbounded multiple{_ci(m['ci'])} of" if m["multiplier"] == INF
                     else f"{_number(m['multiplier'])}x{_ci(m['ci'])}")
            lines.append(f"compute multiplier at {_number(m['x'])}: {comparison['a']} needs "
                         f"{times} the compute of {comparison['b']} for the same error")
    return "\n".join(lines)

"""The analysis of a tuning sweep: the best settings per size, and laws for how they move.

Why: Porian et al. 2024 showed that a scaling law over cells whose learning rate, batch and
beta2 were not tuned per size measures the tuning, not the procedure. A *tuning sweep* is a
normal sweep whose cells are, per procedure x architecture x budget (the run's samples seen),
the points of a search space over `SETTINGS`. From its table this module gives

- `best_settings`: per procedure, size and budget the finished run with the lowest error, with
  the settings whose best value sits at the edge of the searched values (the optimum may lie
  outside what was searched);
- `optimum_laws`: Porian-style power laws setting* = k size^e, with per size the optimum
  located as in their IsoFLOP analysis (`allocation.isoflop_optima`: argmin over log(setting) of
  the Akima interpolation of the error, each value of the setting at its best combination of the
  others, a bootstrap std of ln setting*), fitted by the weighted least squares in log space of
  `allocation.fit_isoflop` / `fit_power_law`;
- `validate_largest`: the law fitted without the largest size must predict that size's tuned
  value within one step of the searched values;
- `settings_warnings`: for a grid's report, whether the compared procedures' settings came from
  the same kind of source (`vlscale.provenance`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vlscale import provenance
from vlscale.analysis import columns as C
from vlscale.analysis.allocation import (
    MIN_ISOFLOP_POINTS,
    fit_isoflop,
    fit_power_law,
    isoflop_optima,
)
from vlscale.analysis.axes import ErrorMode, check_value_domain, higher_is_better, to_error
from vlscale.analysis.runs import PROCEDURE, RUN_SAMPLES_SEEN, SETTINGS_SOURCE, STATUS
from vlscale.errors import UserError

SETTINGS: tuple[str, ...] = provenance.SETTINGS
"""The searched settings (TrainSpec field names = table columns)."""
INTEGER_SETTINGS = frozenset({"global_batch", "warmup_samples"})
ERROR = "error"
CONFIDENCE = 0.95
"""Interval level of the laws' coefficient and exponent."""
STEP_SLACK = 1e-9
"""Relative slack on "within one step": ln(step) of searched values written as decimal text
and parsed back is exact only to a few float64 ulps; 1e-9 is far above that and far below any
real difference of the test."""


@dataclass(frozen=True)
class OptimumLaw:
    """setting* = coef x size^exponent for one procedure, budget and setting.

    `weighted`: fitted with weights 1/std^2 of ln setting* (Porian's weighted fit); False when a
    size had fewer than 3 distinct values of the setting (its optimum is the discrete best, with
    no spread) or an undefined spread, and `note` says which."""

    procedure: str
    budget: float
    setting: str
    coef: float
    exponent: float
    coef_interval: tuple[float, float] | None
    exponent_interval: tuple[float, float] | None
    weighted: bool
    sizes: tuple[float, ...]
    optima: tuple[float, ...]
    optimum_log_std: tuple[float, ...] = ()
    """Bootstrap std of ln setting* per size (NaN where it is the discrete best)."""
    archs: tuple[str, ...] = ()
    note: str = ""

    def predict(self, size: float | np.ndarray) -> np.ndarray:
        """The law's optimum of the setting at `size` (same units as the size axis)."""
        return self.coef * np.asarray(size, dtype=float) ** self.exponent


@dataclass(frozen=True)
class Validation:
    """The law fitted without the largest tuned size, against that size's tuned value; or, with
    `skipped` set, why it could not be done."""

    procedure: str
    budget: float
    setting: str
    held_out_arch: str = ""
    held_out_size: float = float("nan")
    predicted: float = float("nan")
    tuned: float = float("nan")
    step_ratio: float = float("nan")
    within_one_step: bool = False
    skipped: str = ""

    def record(self) -> dict:
        """The `best_settings.json` entry."""
        head = {"procedure": self.procedure, "budget": self.budget, "setting": self.setting}
        if self.skipped:
            return head | {"skipped": self.skipped}
        return head | {"held_out_arch": self.held_out_arch, "predicted": self.predicted,
                       "tuned": self.tuned, "step_ratio": self.step_ratio,
                       "within_one_step": self.within_one_step}


# --- the rows of a tuning sweep ----------------------------------------------------------------

def tuning_rows(table: pd.DataFrame, *, task: str, metric: str,
                size: str = C.GFLOPS_PER_SAMPLE) -> pd.DataFrame:
    """The final evaluations of `task`/`metric` of finished runs, with an
    `error` column (lower is better: the value of a loss, 1 - value of an accuracy).

    Every refusal is one line saying what is missing and how to fix it."""
    needed = [PROCEDURE, C.ARCH, size, RUN_SAMPLES_SEEN, C.DOWNSTREAM_DATASET, C.METRIC,
              C.VALUE, C.IS_FINAL, STATUS, *SETTINGS]
    missing = [name for name in needed if name not in table.columns]
    if missing:
        raise UserError(f"the tuning table lacks column(s) {', '.join(missing)}: pass the "
                        "table of a tuning sweep (vlscale.analysis.load_runs)")
    rows = table[(table[C.DOWNSTREAM_DATASET].astype(str) == task)
                 & (table[C.METRIC].astype(str) == metric)]
    if rows.empty:
        pairs = sorted({f"{t}/{m}" for t, m in zip(table[C.DOWNSTREAM_DATASET],
                                                   table[C.METRIC])})
        raise UserError(f"no rows for task '{task}' and metric '{metric}' (the table has: "
                        f"{', '.join(pairs[:12]) or 'no rows'}): choose one of those")
    final = rows[rows[C.IS_FINAL].astype(bool)]
    rows = final[final[STATUS].astype(str) == "finished"]
    if rows.empty:
        counts = final[STATUS].astype(str).value_counts()
        states = ", ".join(f"{n} {s}" for s, n in counts.items()) or "none"
        raise UserError(f"no finished run evaluated {task}/{metric} at its end (runs: "
                        f"{states}): wait for the tuning sweep to finish, or resume it")
    mode: ErrorMode = "1-value" if higher_is_better(metric) else "value"
    check_value_domain(rows, mode)
    rows = rows.copy()
    rows[ERROR] = to_error(rows[C.VALUE], mode)
    for name in (size, RUN_SAMPLES_SEEN, *SETTINGS):
        rows[name] = pd.to_numeric(rows[name], errors="coerce").astype(float)
    bad = rows[[size, RUN_SAMPLES_SEEN]].isna().any(axis=1) | (rows[size] <= 0)
    if bad.any():
        raise UserError(f"{int(bad.sum())} row(s) have no positive '{size}' or no "
                        f"'{RUN_SAMPLES_SEEN}': fix or drop those rows")
    return rows


def _searched(rows: pd.DataFrame, setting: str,
              space: Mapping[str, Sequence[float]] | None) -> np.ndarray:
    """The searched values of `setting`: the space's when given, else those the rows hold."""
    if space is not None and setting in space:
        return np.unique(np.asarray(space[setting], dtype=float))
    values = rows[setting].to_numpy(float)
    return np.unique(values[np.isfinite(values)])


def _model_type(rows: pd.DataFrame) -> str:
    if C.MODEL_TYPE not in rows.columns:
        return ""
    return ",".join(sorted(map(str, pd.unique(rows[C.MODEL_TYPE]))))


def _trials(rows: pd.DataFrame) -> int:
    return int(rows[C.RUN_ID].nunique()) if C.RUN_ID in rows.columns else len(rows)


def best_settings(table: pd.DataFrame, *, task: str, metric: str,
                  space: Mapping[str, Sequence[float]] | None = None,
                  size: str = C.GFLOPS_PER_SAMPLE) -> pd.DataFrame:
    """Per procedure, architecture and budget (`run_samples_seen`): the finished run with the
    lowest error on `task`/`metric`, its settings, how many finished trials it was chosen from,
    and `edge`: the settings (searched at more than one value) whose best value is the smallest
    or largest searched one, where the optimum may lie outside the space.

    `space` ({setting: values}) is the searched space; without it the values the group's runs
    hold count as searched. Columns: procedure, model_type, arch, size, budget, lr,
    global_batch, warmup_samples, beta2, value, error, trials, edge."""
    rows = tuning_rows(table, task=task, metric=metric, size=size)
    records = []
    for (procedure, arch, budget), group in rows.groupby([PROCEDURE, C.ARCH, RUN_SAMPLES_SEEN],
                                                         sort=True):
        best = group.sort_values(ERROR, kind="stable").iloc[0]
        edge = []
        for setting in SETTINGS:
            searched = _searched(group, setting, space)
            if len(searched) > 1 and np.isfinite(best[setting]) and (
                    best[setting] <= searched[0] or best[setting] >= searched[-1]):
                edge.append(setting)
        records.append({PROCEDURE: str(procedure), C.MODEL_TYPE: _model_type(group),
                        C.ARCH: str(arch), "size": float(best[size]), "budget": float(budget),
                        **{s: float(best[s]) for s in SETTINGS}, C.VALUE: float(best[C.VALUE]),
                        ERROR: float(best[ERROR]), "trials": _trials(group),
                        "edge": tuple(edge)})
    return pd.DataFrame(records).sort_values([PROCEDURE, "budget", "size"], kind="stable",
                                             ignore_index=True)


# --- the optimum laws --------------------------------------------------------------------------

def _optima(rows: pd.DataFrame, setting: str, size: str, n_bootstrap: int,
            seed: int) -> pd.DataFrame:
    """Per architecture of one procedure and budget that searched `setting` (2 or more values;
    a size that kept one value was not tuned for it and says nothing of its optimum): the
    optimum (Akima argmin with a bootstrap std when >= 3 distinct values were searched, else the
    discrete best, std NaN). Columns: arch, size, optimum, log_std, n_values, discrete."""
    records = []
    for arch, group in rows.groupby(C.ARCH, sort=True):
        group = group[np.isfinite(group[setting]) & (group[setting] > 0)]
        n_values = group[setting].nunique()
        if n_values < 2:
            continue
        discrete = float(group.sort_values(ERROR, kind="stable")[setting].iloc[0])
        if n_values >= MIN_ISOFLOP_POINTS:
            found = isoflop_optima(group, size, setting, ERROR, n_bootstrap=n_bootstrap,
                                   seed=seed).iloc[0]
            optimum, spread = float(found["size_opt"]), float(found["size_log_std"])
        else:
            optimum, spread = discrete, float("nan")
        records.append({C.ARCH: str(arch), "size": float(group[size].iloc[0]),
                        "optimum": optimum, "log_std": spread, "n_values": int(n_values),
                        "discrete": discrete})
    frame = pd.DataFrame(records, columns=[C.ARCH, "size", "optimum", "log_std", "n_values",
                                           "discrete"])
    return frame.sort_values("size", kind="stable", ignore_index=True)


def _fit(optima: pd.DataFrame, procedure: str, budget: float, setting: str, n_bootstrap: int,
         seed: int) -> OptimumLaw:
    """The power law through `optima` (>= 2 sizes): weighted when every size has a positive,
    finite spread of its optimum, else unweighted (the discrete optima carry no spread)."""
    spread = optima["log_std"].to_numpy(float)
    weighted = bool(np.all(np.isfinite(spread) & (spread > 0)))
    options: dict[str, Any] = {"n_bootstrap": n_bootstrap, "seed": seed,
                               "confidence": CONFIDENCE, "label": f"{procedure} {setting}"}
    if weighted:
        fit = fit_isoflop(optima.rename(columns={"size": "budget", "optimum": "size_opt",
                                                 "log_std": "size_log_std"}), **options)
        note = ""
    else:
        fit = fit_power_law(optima["size"].to_numpy(float), optima["optimum"].to_numpy(float),
                            **options)
        few = optima[optima["n_values"] < MIN_ISOFLOP_POINTS][C.ARCH].tolist()
        note = ("unweighted: " + (f"{', '.join(few)} searched fewer than {MIN_ISOFLOP_POINTS} "
                                  f"values of {setting} (discrete best, no spread)" if few else
                                  "the bootstrap gave no spread of some optimum"))
    intervals = fit.param_intervals() or {}
    interval = {k: (float(v[0]), float(v[1])) for k, v in intervals.items()}
    return OptimumLaw(procedure, float(budget), setting, float(fit.params["a"]),
                      float(fit.params["c"]), interval.get("a"), interval.get("c"), weighted,
                      tuple(optima["size"].astype(float)), tuple(optima["optimum"].astype(float)),
                      tuple(spread.astype(float)), tuple(optima[C.ARCH].astype(str)), note)


def _groups(rows: pd.DataFrame, settings: Sequence[str], exclude_archs: Sequence[str]):
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise UserError(f"unknown setting(s) {', '.join(unknown)}: use {', '.join(SETTINGS)}")
    rows = rows[~rows[C.ARCH].astype(str).isin(list(exclude_archs))]
    for (procedure, budget), group in rows.groupby([PROCEDURE, RUN_SAMPLES_SEEN], sort=True):
        for setting in settings:
            yield str(procedure), float(budget), setting, group


def optimum_laws(table: pd.DataFrame, *, task: str, metric: str,
                 settings: Sequence[str] = ("lr", "global_batch"),
                 size: str = C.GFLOPS_PER_SAMPLE, n_bootstrap: int = 200, seed: int = 0,
                 exclude_archs: Sequence[str] = ()) -> list[OptimumLaw]:
    """Per procedure, budget and setting (searched at more than one value, at 2 or more sizes):
    the power law of the optimal setting against `size`.

    `n_bootstrap` resamples give both the spread of each size's optimum (the weights) and the
    95% intervals of coefficient and exponent. `exclude_archs` leaves sizes out (what
    `validate_largest` does with the largest)."""
    rows = tuning_rows(table, task=task, metric=metric, size=size)
    laws = []
    for procedure, budget, setting, group in _groups(rows, settings, exclude_archs):
        optima = _optima(group, setting, size, n_bootstrap, seed)
        if len(optima) >= 2:  # a line needs two sizes
            laws.append(_fit(optima, procedure, budget, setting, n_bootstrap, seed))
    return laws


def _step_ratio(searched: np.ndarray, tuned: float) -> float:
    """The ratio between `tuned` and its nearest searched neighbour (in log distance)."""
    others = searched[(searched > 0) & (searched != tuned)]
    if len(others) == 0:
        return float("nan")
    nearest = others[np.argmin(np.abs(np.log(others) - np.log(tuned)))]
    return float(max(nearest, tuned) / min(nearest, tuned))


def validate_largest(table: pd.DataFrame, *, task: str, metric: str,
                     space: Mapping[str, Sequence[float]] | None = None,
                     settings: Sequence[str] = ("lr", "global_batch"),
                     size: str = C.GFLOPS_PER_SAMPLE, n_bootstrap: int = 200,
                     seed: int = 0) -> list[Validation]:
    """Per procedure, budget and setting with >= 3 tuned sizes: fit the optimum law without the
    largest size and predict its optimum; it is `within_one_step` when |ln predicted - ln tuned|
    <= ln(step_ratio), the step between the tuned (discrete best) value and its nearest searched
    neighbour. A law that misses by more would have picked another grid point: it cannot stand
    in for tuning at larger sizes. Fewer sizes give an entry saying why it was skipped."""
    rows = tuning_rows(table, task=task, metric=metric, size=size)
    results = []
    for procedure, budget, setting, group in _groups(rows, settings, ()):
        optima = _optima(group, setting, size, n_bootstrap, seed)
        if optima.empty:
            reason = f"{setting} was not searched (one value per size)"
        elif len(optima) < 3:
            reason = (f"only {len(optima)} tuned size(s): holding out the largest needs 3 or "
                      "more (2 to fit, 1 to predict)")
        else:
            reason = ""
        if reason:
            results.append(Validation(procedure, budget, setting, skipped=reason))
            continue
        held = optima.iloc[-1]
        law = _fit(optima.iloc[:-1], procedure, budget, setting, 0, seed)
        predicted = float(law.predict(held["size"]))
        tuned = float(held["discrete"])
        searched = _searched(group[group[C.ARCH] == held[C.ARCH]], setting, space)
        step = _step_ratio(searched, tuned)
        within = bool(abs(np.log(predicted) - np.log(tuned))
                      <= np.log(step) * (1 + STEP_SLACK))
        results.append(Validation(procedure, budget, setting, str(held[C.ARCH]),
                                  float(held["size"]), predicted, tuned, step, within))
    return results


# --- provenance of a grid's settings -----------------------------------------------------------

Sources = dict[str, provenance.SettingSource]


def _sources(table: pd.DataFrame, group: str) -> dict[tuple[str, str], list[Sources]]:
    """The parsed sources of each (group, arch): one per distinct settings_source text."""
    if group not in table.columns:
        raise UserError(f"column '{group}' is not in the table: pass the column that names "
                        "the compared procedures")
    runs = table.assign(**{C.ARCH: table[C.ARCH] if C.ARCH in table.columns else ""})
    runs = runs[[group, C.ARCH, SETTINGS_SOURCE]].astype(str).drop_duplicates()
    runs = runs.rename(columns={group: PROCEDURE})
    parsed: dict[tuple[str, str], list[Sources]] = {}
    for procedure, arch, text in runs[[PROCEDURE, C.ARCH, SETTINGS_SOURCE]].itertuples(
            index=False):
        try:
            parsed.setdefault((procedure, arch), []).append(provenance.parse_sources(text))
        except ValueError as error:
            raise UserError(f"unreadable {SETTINGS_SOURCE} in the table: {error}; the run's "
                            "train.settings_source param must be written by "
                            "vlscale.provenance.format_sources") from None
    return dict(sorted(parsed.items()))


def _describe(sources: list[provenance.SettingSource]) -> str:
    """"tuned (tune-cpu)", "manual", "law (tune-cpu), tuned (tune-cpu)": kinds with the
    sweeps they came from (a detail's budget after "@" left out)."""
    kinds: dict[str, set[str]] = {}
    for source in sources:
        kinds.setdefault(source.kind, set()).add(source.detail.partition("@")[0])
    parts = []
    for kind in sorted(kinds):
        details = sorted(d for d in kinds[kind] if d)
        parts.append(kind + (f" ({', '.join(details)})" if details else ""))
    return ", ".join(parts)


def settings_warnings(table: pd.DataFrame, group: str = PROCEDURE) -> list[str]:
    """Lines for a grid's report about where its per-size settings came from: one per setting
    whose procedures were not set the same way (tuned for one, by hand for another: a gap
    between their laws may then be the tuning's), one per procedure and architecture with a
    setting tuned at the edge of its searched range. None when every procedure's settings come
    from the same kind of source. A table without `settings_source` was set by hand throughout.
    `group` names the compared procedures (the report's --group).
    """
    if SETTINGS_SOURCE not in table.columns or table.empty:
        return []
    cells = _sources(table, group)
    lines = []
    procedures = sorted({procedure for procedure, _ in cells})
    for setting in SETTINGS:
        by_procedure = {p: [parsed[setting] for (procedure, _), texts in cells.items()
                            if procedure == p for parsed in texts] for p in procedures}
        kinds = {p: frozenset(s.kind for s in sources) for p, sources in by_procedure.items()}
        if len(set(kinds.values())) > 1:
            described = ", ".join(f"{p} {_describe(by_procedure[p])}" for p in procedures)
            fix = "tune both" if len(procedures) == 2 else "tune them all the same way"
            lines.append(f"{setting}: {described}: the comparison may measure the tuning, not "
                         f"the procedure; {fix}")
    for (procedure, arch), texts in cells.items():
        edges = [name for name in SETTINGS if any(parsed[name].edge for parsed in texts)]
        if edges:
            verb = "was" if len(edges) == 1 else "were"
            lines.append(f"{procedure} {arch}: {', '.join(edges)} {verb} tuned at the edge of "
                         "the searched range; the optimum may lie outside it")
    return lines

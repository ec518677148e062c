"""The tuning report: which settings won per size, and how the optimum moves with size.

`write_tuning_report(source, out_dir, task=..., metric=...)` writes `best_settings.json` (the
platform reads it to set a grid's per-size settings: keep its keys), `tuning.html`
(self-contained, figures inlined) and the figures as PNG and PDF: per procedure and budget the
error against the learning rate per size, and per setting the optimum against size with the
fitted law and the held-out largest size. Everything is built in a hidden staging folder beside
`out_dir` and moved in only when complete, so a failed run leaves the previous report whole.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vlscale.analysis import columns as C
from vlscale.analysis.plots import COLORS, figure_paths
from vlscale.analysis.report.build import _slug
from vlscale.analysis.report.html import STYLE, _figure, _n, _table
from vlscale.analysis.runs import PROCEDURE, RUN_SAMPLES_SEEN, STATUS, SweepResults, read_source
from vlscale.analysis.summary import clean
from vlscale.analysis.tuning import (
    ERROR,
    INTEGER_SETTINGS,
    SETTINGS,
    OptimumLaw,
    Validation,
    best_settings,
    optimum_laws,
    tuning_rows,
    validate_largest,
)
from vlscale.errors import UserError
from vlscale.outputs import check_output_dir, staged_folder

LAW_SETTINGS: tuple[str, ...] = ("lr", "global_batch")
"""The settings whose optimum laws the report fits and draws (Porian et al.'s two)."""
JSON_NAME, HTML_NAME = "best_settings.json", "tuning.html"


@dataclass(frozen=True)
class TuningReport:
    out_dir: Path
    html: Path
    json: Path
    figures: tuple[Path, ...]
    warnings: tuple[str, ...]


def _space(rows: pd.DataFrame, space: Mapping[str, Sequence[float]] | None) -> dict[str, list]:
    """The searched space: the given one, else every value the trials hold, per setting."""
    out: dict[str, list] = {}
    for setting in SETTINGS:
        if space is not None and setting in space:
            values = sorted({float(v) for v in space[setting]})
        else:
            column = rows[setting].to_numpy(float)
            values = sorted({float(v) for v in column[np.isfinite(column)]})
        out[setting] = [int(v) if setting in INTEGER_SETTINGS else v for v in values]
    return out


def _setting_value(setting: str, value: float):
    if not np.isfinite(value):
        return None
    return int(round(value)) if setting in INTEGER_SETTINGS else float(value)


def _warnings(all_rows: pd.DataFrame, best: pd.DataFrame, runs: pd.DataFrame | None) -> list[str]:
    """Edges, stopped trials (from the sweep's runs when known, else from the evaluations of
    `all_rows`), and procedures searched over different values."""
    lines = []
    for row in best.itertuples():
        if row.edge:
            verb = "was" if len(row.edge) == 1 else "were"
            lines.append(f"{row.procedure} {row.arch} at budget {_n(row.budget)}: "
                         f"{', '.join(row.edge)} {verb} best at the edge of the searched range; "
                         "the optimum may lie outside it: widen the space there")
    trials = runs if runs is not None and STATUS in runs.columns else all_rows
    if C.RUN_ID in trials.columns:
        trials = trials.drop_duplicates(C.RUN_ID)
    for procedure, group in trials.groupby(PROCEDURE, sort=True):
        stopped = int((group[STATUS].astype(str) == "stopped").sum())
        if stopped:
            lines.append(f"{procedure}: {stopped} of {len(group)} trial(s) were stopped early "
                         "(ASHA) and do not count as finished")
    for setting in SETTINGS:
        searched = {str(p): tuple(sorted(set(pd.to_numeric(g[setting]).dropna())))
                    for p, g in all_rows.groupby(PROCEDURE, sort=True)}
        if len(set(searched.values())) > 1:
            described = "; ".join(f"{p} {len(v)} value(s) {', '.join(_n(x) for x in v)}"
                                  for p, v in searched.items())
            lines.append(f"{setting}: the procedures were tuned over different values "
                         f"({described}); compare them on the same space")
    return lines


def _law_record(law: OptimumLaw) -> dict:
    return {"procedure": law.procedure, "budget": law.budget, "setting": law.setting,
            "coef": law.coef, "exponent": law.exponent,
            "coef_interval": list(law.coef_interval) if law.coef_interval else None,
            "exponent_interval": list(law.exponent_interval) if law.exponent_interval else None,
            "weighted": law.weighted, "sizes": list(law.sizes)}


def _best_record(row) -> dict:
    return {"procedure": row[PROCEDURE], "model_type": row[C.MODEL_TYPE], "arch": row[C.ARCH],
            "size": row["size"], "budget": row["budget"],
            "settings": {s: _setting_value(s, row[s]) for s in SETTINGS},
            "value": row[C.VALUE], "edge": list(row["edge"]), "trials": int(row["trials"])}


# --- figures -----------------------------------------------------------------------------------

def _axes() -> tuple[Figure, Axes]:
    figure = Figure(figsize=(6.5, 4.6), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save(figure: Figure, path: Path) -> list[Path]:
    paths = figure_paths(path)
    for target in paths:
        figure.savefig(target, dpi=150)
    return paths


def _error_curves(rows: pd.DataFrame, best: pd.DataFrame, out: Path, metric: str,
                  size: str) -> dict[str, list[Path]]:
    """Per procedure and budget: the error against lr per size (each lr at its best other
    settings), the chosen (best) trial starred."""
    paths: dict[str, list[Path]] = {}
    for (procedure, budget), group in rows.groupby([PROCEDURE, RUN_SAMPLES_SEEN], sort=True):
        figure, axes = _axes()
        for i, (arch, part) in enumerate(group.groupby(C.ARCH, sort=False)):
            color = COLORS[i % len(COLORS)]
            curve = part.sort_values(ERROR).drop_duplicates("lr").sort_values("lr")
            axes.plot(curve["lr"], curve[ERROR], marker="o", color=color, lw=1.4,
                      label=f"{arch} ({_n(float(part[size].iloc[0]))})")
            chosen = best[(best[PROCEDURE] == procedure) & (best[C.ARCH] == arch)
                          & (best["budget"] == budget)]
            axes.scatter(chosen["lr"], chosen[ERROR], marker="*", s=220, color=color,
                         edgecolors="black", linewidths=0.7, zorder=3)
        axes.set_xscale("log")
        axes.set_xlabel("learning rate")
        axes.set_ylabel(f"{metric} (error)")
        axes.set_title(f"{procedure}, budget {_n(float(budget))} samples: error vs lr "
                       "(star: best trial)")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=7, title=size, title_fontsize=7)
        paths.setdefault(str(procedure), []).extend(
            _save(figure, out / f"tuning_lr_{_slug(str(procedure), f'{budget:g}')}"))
    return paths


def _optimum_figures(laws: list[OptimumLaw], validations: list[Validation], out: Path,
                     size: str) -> list[Path]:
    """Per setting: each size's optimum (bars: +-1 bootstrap std of ln) with the fitted law; the
    held-out largest size's prediction (from the law without it) as a hollow marker."""
    paths = []
    for setting in LAW_SETTINGS:
        chosen = [law for law in laws if law.setting == setting]
        if not chosen:
            continue
        figure, axes = _axes()
        for i, law in enumerate(chosen):
            color = COLORS[i % len(COLORS)]
            sizes, optima = np.array(law.sizes), np.array(law.optima)
            spread = np.nan_to_num(np.array(law.optimum_log_std), nan=0.0)
            axes.errorbar(sizes, optima, yerr=[optima - optima * np.exp(-spread),
                                               optima * np.exp(spread) - optima],
                          fmt="o", color=color, capsize=3)
            grid = np.geomspace(sizes.min(), sizes.max(), 50)
            axes.plot(grid, law.predict(grid), color=color, lw=1.5,
                      label=f"{law.procedure} @{_n(law.budget)}: {law.coef:.3g} "
                            f"N^{law.exponent:.3f}{'' if law.weighted else ' (unweighted)'}")
            for check in validations:
                if (check.procedure, check.budget, check.setting) == (
                        law.procedure, law.budget, setting) and not check.skipped:
                    axes.scatter([check.held_out_size], [check.predicted], s=70,
                                 facecolors="none", edgecolors=color, linewidths=1.5,
                                 label=f"{law.procedure}: {check.held_out_arch} predicted "
                                       "without it")
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel(size)
        axes.set_ylabel(f"optimal {setting}")
        axes.set_title(f"Optimal {setting} vs size")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=6.5)
        paths += _save(figure, out / f"tuning_optimal_{setting}")
    return paths


# --- the page ----------------------------------------------------------------------------------

def _render(document: dict, out: Path, curves: dict[str, list[str]],
            optima: list[str]) -> str:
    header = ["procedure", "arch", "size", "budget", *SETTINGS, "value", "trials", "edge"]
    best = [[html.escape(b["procedure"]), html.escape(b["arch"]), _n(b["size"]),
             _n(b["budget"]), *(_n(b["settings"][s]) for s in SETTINGS), _n(b["value"]),
             str(b["trials"]), html.escape(", ".join(b["edge"]) or "-")]
            for b in document["best"]]
    laws = [[html.escape(law["procedure"]), _n(law["budget"]), html.escape(law["setting"]),
             _n(law["coef"]) + _interval(law["coef_interval"]),
             _n(law["exponent"]) + _interval(law["exponent_interval"]),
             "weighted" if law["weighted"] else "unweighted",
             ", ".join(_n(s) for s in law["sizes"])] for law in document["laws"]]
    checks = []
    for check in document["validation"]:
        head = [html.escape(check["procedure"]), _n(check["budget"]),
                html.escape(check["setting"])]
        if "skipped" in check:
            checks.append(head + ["-", "-", "-", "-", "skipped: " + html.escape(check["skipped"])])
        else:
            checks.append(head + [html.escape(check["held_out_arch"]), _n(check["predicted"]),
                                  _n(check["tuned"]), _n(check["step_ratio"]),
                                  "within one step" if check["within_one_step"]
                                  else "<b>more than one step off</b>"])
    warnings = "".join(f"<div class='verdict none'>{html.escape(w)}</div>"
                       for w in document["warnings"]) or "<p>No warnings.</p>"
    body = [f"<h1>Tuning: {html.escape(document['task'])} {html.escape(document['metric'])}</h1>",
            f"<p class=muted>sweep {html.escape(document['sweep'] or '-')}; size axis "
            f"{html.escape(document['size_axis'])}; budget = samples seen of the run; lower "
            "error is better. Every number on this page is in best_settings.json.</p>",
            "<h2>Warnings</h2>", warnings,
            "<h2>Best settings</h2>", _table(header, best, left=2),
            *(_figure(out, [n for n in names if n.startswith(f"tuning_lr_{_slug(p, budget)}.")],
                      f"{p}, budget {budget} samples: error vs lr")
              for p, names in sorted(curves.items())
              for budget in sorted({f"{b['budget']:g}" for b in document["best"]
                                    if b["procedure"] == p})),
            "<h2>Optimum laws setting* = coef size<sup>exponent</sup></h2>",
            _table(["procedure", "budget", "setting", "coef", "exponent", "fit", "sizes"],
                   laws) if laws else "<p>No law: too few tuned sizes or searched values.</p>",
            "<h2>Held-out largest size</h2>",
            _table(["procedure", "budget", "setting", "held out", "predicted", "tuned", "step",
                    "result"], checks),
            *(_figure(out, [n for n in optima if n.startswith(f"tuning_optimal_{s}.")],
                      f"optimal {s} vs size") for s in LAW_SETTINGS)]
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            f"<title>Tuning {html.escape(document['task'])}</title><style>{STYLE}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")


def _interval(pair) -> str:
    return f" <span class=muted>[{_n(pair[0])}, {_n(pair[1])}]</span>" if pair else ""


def write_tuning_report(source: pd.DataFrame | SweepResults | str | Path, out_dir: str | Path,
                        *, task: str, metric: str,
                        space: Mapping[str, Sequence[float]] | None = None,
                        sweep_id: str | None = None, n_bootstrap: int = 200, seed: int = 0,
                        progress: Callable[[str], None] | None = None,
                        size: str = C.GFLOPS_PER_SAMPLE) -> TuningReport:
    """Write the tuning report of `source` (a table, `SweepResults`, a table file or a sweep id)
    to `out_dir`: `best_settings.json`, `tuning.html` and the figures. `space` is the searched
    space ({setting: values}; default: the values the trials hold). Raises `UserError` (one
    line) when the table holds no finished trial of `task`/`metric`."""
    say = progress or (lambda _: None)
    if n_bootstrap < 0:
        raise UserError(f"n_bootstrap must be >= 0, not {n_bootstrap}")
    out = check_output_dir(out_dir, "out_dir")
    results = read_source(source)
    table = results.table
    best = best_settings(table, task=task, metric=metric, space=space, size=size)
    rows = tuning_rows(table, task=task, metric=metric, size=size)
    # every evaluation of the task, whatever the run's state (an ASHA-stopped trial has no
    # final one): the trials' states and the values each procedure searched
    every = table[(table[C.DOWNSTREAM_DATASET].astype(str) == task)
                  & (table[C.METRIC].astype(str) == metric)]
    say(f"{len(best)} tuned size(s) x budget(s) from {len(rows)} finished trial(s); fitting the "
        f"optimum laws with {n_bootstrap} bootstrap resamples")
    laws = optimum_laws(table, task=task, metric=metric, settings=LAW_SETTINGS, size=size,
                        n_bootstrap=n_bootstrap, seed=seed)
    validations = validate_largest(table, task=task, metric=metric, space=space,
                                   settings=LAW_SETTINGS, size=size, n_bootstrap=n_bootstrap,
                                   seed=seed)
    warnings = _warnings(every, best, results.runs) + [
        f"{c.procedure} {c.setting} at budget {_n(c.budget)}: the law fitted without "
        f"{c.held_out_arch} predicts {_n(c.predicted)} there, tuned {_n(c.tuned)} (more than "
        f"one step of {_n(c.step_ratio)} off): tune larger sizes rather than extrapolate it"
        for c in validations if not c.skipped and not c.within_one_step]
    for line in warnings:
        say(f"warning: {line}")
    document = clean({
        "sweep": sweep_id if sweep_id is not None else results.sweep_id, "task": task,
        "metric": metric, "size_axis": size, "space": _space(rows, space),
        "best": [_best_record(row) for _, row in best.iterrows()],
        "laws": [_law_record(law) for law in laws],
        "validation": [check.record() for check in validations]})
    with staged_folder(out, "the tuning report") as staging:
        curves = _error_curves(rows, best, staging, metric, size)
        optima = _optimum_figures(laws, validations, staging, size)
        (staging / JSON_NAME).write_text(json.dumps(document, indent=1) + "\n")
        (staging / HTML_NAME).write_text(_render(
            document | {"warnings": warnings}, staging,
            {p: [f.name for f in files] for p, files in curves.items()},
            [f.name for f in optima]))
    return TuningReport(out, out / HTML_NAME, out / JSON_NAME,
                        tuple(out / f.name for files in curves.values() for f in files)
                        + tuple(out / f.name for f in optima), tuple(warnings))


__all__ = ["TuningReport", "write_tuning_report"]

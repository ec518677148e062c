"""Scaling-law analysis: pure functions over pandas DataFrames (never imports Ray or torch).

results table -> `best_per_cell` -> `fit_law` (frontier, multi-start fit, bootstrap) ->
`validate_holdout` / `compare` / compute-optimal allocation -> `plot_fits`.
Column names: `vlscale.analysis.columns`.
"""

from vlscale.analysis.allocation import (
    fit_isoflop,
    fit_power_law,
    frontier_allocation,
    isoflop_minimum,
    isoflop_optima,
)
from vlscale.analysis.axes import add_compute, add_error, error_mode_for, higher_is_better, to_error
from vlscale.analysis.bootstrap import BootstrapResult, bootstrap, percentile_interval
from vlscale.analysis.cells import best_per_cell, curve_points
from vlscale.analysis.chinchilla import ChinchillaFit, fit_chinchilla
from vlscale.analysis.compare import Comparison, MultiplierAt, compare, crossovers
from vlscale.analysis.fit import LawFit, fit_curve, fit_law
from vlscale.analysis.frontier import (
    Frontier,
    binned_minimum,
    pareto_bin,
    pareto_naive,
    select_frontier,
)
from vlscale.analysis.holdout import HoldoutResult, holdout, validate_holdout
from vlscale.analysis.laws import (
    LAWS,
    ChinchillaLaw,
    Law,
    LogLinear,
    PowerLaw,
    Saturating3,
    Saturating4,
    get_law,
)
from vlscale.analysis.limits import Limits
from vlscale.analysis.plots import plot_fits
from vlscale.analysis.table import Condition, load_table, parse_where, select

__all__ = [
    "LAWS", "BootstrapResult", "ChinchillaFit", "ChinchillaLaw", "Comparison", "Condition",
    "Frontier", "HoldoutResult", "Law", "LawFit", "Limits", "LogLinear", "MultiplierAt",
    "PowerLaw", "Saturating3", "Saturating4", "add_compute", "add_error", "best_per_cell",
    "binned_minimum", "bootstrap", "compare", "crossovers", "curve_points", "error_mode_for",
    "fit_chinchilla", "fit_curve", "fit_isoflop", "fit_law", "fit_power_law",
    "frontier_allocation", "get_law", "higher_is_better", "holdout", "isoflop_minimum",
    "isoflop_optima", "load_table", "parse_where", "pareto_bin", "pareto_naive",
    "percentile_interval", "plot_fits", "select", "select_frontier", "to_error",
    "validate_holdout",
]

# Results from the tracking server and the comparison report (MLflow is imported only when a
# store is read).
from vlscale.analysis.report import ReportResult, Verdict, write_report  # noqa: E402
from vlscale.analysis.runs import (  # noqa: E402
    SweepResults,
    list_sweeps,
    load_results,
    load_runs,
    read_source,
)

__all__ += ["ReportResult", "SweepResults", "Verdict", "list_sweeps", "load_results",
            "load_runs", "read_source", "write_report"]

# The task, metric and frontier a sweep declared for its report (stored on its parent run).
from vlscale.analysis.declared import (  # noqa: E402
    DeclaredReport,
    ReportChoice,
    choose_report,
    declared_report,
    report_defaults,
)

__all__ += ["DeclaredReport", "ReportChoice", "choose_report", "declared_report",
            "report_defaults"]

# Tuning sweeps: the best settings per size and the laws of their optimum (Porian et al. 2024).
from vlscale.analysis.report.tuning import TuningReport, write_tuning_report  # noqa: E402
from vlscale.analysis.tuning import (  # noqa: E402
    OptimumLaw,
    Validation,
    best_settings,
    optimum_laws,
    settings_warnings,
    validate_largest,
)

__all__ += ["OptimumLaw", "TuningReport", "Validation", "best_settings", "optimum_laws",
            "settings_warnings", "validate_largest", "write_tuning_report"]

"""The two-input law L(N, D) = E + A / N^alpha + B / D^beta, fitted as in Chinchilla's approach 3.

Method (Hoffmann et al. 2022, replicated by Besiroglu et al. 2024): minimise the Huber loss
(delta = 1e-3) of ln L residuals over a grid of initial values, keep the lowest objective. The
small delta makes the fit close to a least-absolute-deviation fit in log space, robust to the
outlying runs of such tables. Here the grid is advanced in one batch (`optimize`) and the best
candidates are finished with L-BFGS-B, the replication's optimiser.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vlscale.analysis.bootstrap import BootstrapResult, Progress, bootstrap, named_intervals
from vlscale.analysis.laws import ChinchillaLaw
from vlscale.analysis.optimize import Problem, multistart
from vlscale.errors import UserError


@dataclass(frozen=True, eq=False)
class ChinchillaFit:
    """A fitted L(N, D); `params` = {A, B, E, alpha, beta}."""

    law: ChinchillaLaw
    param_vector: np.ndarray
    params: dict[str, float]
    objective: float
    n_points: int
    n_dropped: int
    delta: float
    minima: np.ndarray
    bootstrap: BootstrapResult | None = None

    def predict(self, n: np.ndarray | float, d: np.ndarray | float) -> np.ndarray:
        """Loss of a model with n parameters trained on d tokens (or samples)."""
        inputs = np.column_stack(np.broadcast_arrays(np.atleast_1d(np.asarray(n, float)),
                                                     np.atleast_1d(np.asarray(d, float))))
        return self.law.value(inputs, self.param_vector)

    def param_intervals(self, confidence: float | None = None
                        ) -> dict[str, tuple[float, float]] | None:
        """Percentile interval of each parameter; None without a bootstrap."""
        return named_intervals(self.law, self.bootstrap, confidence)

    def optimal_allocation(self, compute: np.ndarray | float,
                           flops_per_param_token: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
        """Loss-minimising (N, D) for compute C = k N D (k = 6 FLOPs per parameter and token).

        Setting dL/dN = 0 along N D = C / k gives N* = G (C/k)^(beta/(alpha+beta)) and
        D* = (C/k) / N*, with G = (alpha A / (beta B))^(1/(alpha+beta)).
        """
        p = self.params
        scaled = np.asarray(compute, dtype=float) / flops_per_param_token
        total = p["alpha"] + p["beta"]
        gain = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1.0 / total)
        size = gain * scaled ** (p["beta"] / total)
        return size, scaled / size


def fit_chinchilla(df: pd.DataFrame, n: str, d: str, loss: str, delta: float = 1e-3,
                   drop_highest: int = 0, *, starts: np.ndarray | None = None,
                   n_bootstrap: int = 0, seed: int = 0, confidence: float = 0.95,
                   progress: Progress | None = None) -> ChinchillaFit:
    """Fit L(N, D) to the columns `n` (parameters), `d` (tokens/samples) and `loss` of `df`.

    `drop_highest` removes that many highest-loss rows first (the replication drops 5 as
    outliers). Default starts: the replication's 4500-value grid.
    """
    for column in (n, d, loss):
        if column not in df.columns:
            raise UserError(f"column '{column}' is not in the table (columns: "
                            f"{', '.join(map(str, df.columns))})")
    table = df[[n, d, loss]].astype(float)
    if not np.isfinite(table.to_numpy()).all() or (table.to_numpy() <= 0).any():
        raise UserError(f"'{n}', '{d}' and '{loss}' must be finite and positive in every row")
    if drop_highest:
        table = table.sort_values(loss, kind="stable").iloc[:len(table) - drop_highest]
    law = ChinchillaLaw()
    if len(table) < len(law.param_names):
        raise UserError(f"only {len(table)} rows, fewer than the 5 parameters of L(N, D)")
    inputs = table[[n, d]].to_numpy()
    problem = Problem(law, inputs, table[loss].to_numpy(), loss="huber", delta=delta)
    grid = law.start_grid(inputs, problem.y) if starts is None else np.atleast_2d(starts)
    result = multistart(problem, grid)
    samples = None
    if n_bootstrap:
        samples = bootstrap(problem, result.minima, n_bootstrap, seed=seed,
                            confidence=confidence, progress=progress)
    return ChinchillaFit(law, result.params, law.public_params(result.params), result.objective,
                         len(table), drop_highest, delta, result.minima, samples)

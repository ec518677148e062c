"""Multi-start fitting engine: every start (and every bootstrap resample) advances in one array.

The published method fits each of several thousand initial values with its own scipy call and
needs a 24-process pool for it. Here all starts form one (starts x points) problem and take
Levenberg-Marquardt steps together: a step is a batched (P x P) solve, so thousands of starts cost
a few dozen numpy operations. scipy (`least_squares`, or L-BFGS-B for the Huber objective) then
polishes only the few best distinct candidates, so the answer is a proper bounded optimum.

Two objectives:
- "squared": sum of w * r^2, residuals on the linear scale (bounded least squares);
- "huber": sum of w * huber_delta(r), residuals of ln E (the Chinchilla "approach 3" objective),
  stepped by iteratively re-weighted least squares (weights min(1, delta / |r|)), which majorises
  the Huber loss, so every accepted step lowers the true objective.
Rows may carry their own weights: a bootstrap resample is the original points weighted by how
often each was drawn, which lets all resamples share one batch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares, minimize

from vlscale.analysis.laws import Law

try:  # present wherever scikit-learn is; only a speed-up, so optional
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

_TINY = 1e-300


def single_threaded_blas(function: Callable) -> Callable:
    """Run `function` with one BLAS thread. Its linear algebra is thousands of tiny (P x P)
    problems, where BLAS threads only add synchronisation: measured on 2 busy cores, a
    bootstrapped comparison ran 1.7x and an L-BFGS-B polish 10-60x faster single-threaded."""
    if threadpool_limits is None:  # pragma: no cover
        return function

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return function(*args, **kwargs)
    return wrapper


@dataclass(frozen=True, eq=False)
class Problem:
    """What to minimise: a law, its data points, and how residuals are measured."""

    law: Law
    x: np.ndarray
    y: np.ndarray
    loss: str = "squared"
    delta: float = 1e-3

    @property
    def log_space(self) -> bool:
        return self.loss == "huber"

    def residuals(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Residuals (S, n) and their Jacobian (S, n, P) for a stack of parameter vectors."""
        with np.errstate(all="ignore"):
            if self.log_space:
                log_value, jacobian = self.law.log_value_and_jacobian(self.x, params)
                return log_value - np.log(self.y), jacobian
            value, jacobian = self.law.value_and_jacobian(self.x, params)
            return value - self.y, jacobian

    def objective(self, residuals: np.ndarray, weights: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            if self.loss == "squared":
                return (weights * residuals * residuals).sum(-1)
            size = np.abs(residuals)
            huber = np.where(size <= self.delta, 0.5 * residuals * residuals,
                             self.delta * (size - 0.5 * self.delta))
            return (weights * huber).sum(-1)

    def step_weights(self, residuals: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Weights of the least-squares model of the objective at the current residuals."""
        if self.loss == "squared":
            return weights
        return weights * np.minimum(1.0, self.delta / np.maximum(np.abs(residuals), _TINY))


@single_threaded_blas
def levenberg_marquardt(problem: Problem, starts: np.ndarray, weights: np.ndarray | None = None,
                        max_iter: int = 200, rtol: float = 1e-10,
                        race: tuple[tuple[int, int], ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Run projected Levenberg-Marquardt from every row of `starts` at once.

    Damping is Marquardt's (lambda * diag(J^T W J)), which makes steps invariant to the very
    different scales of the parameters (b ~ 1e8 next to c ~ -0.2); bounds are kept by projecting
    each step. A row stops when a step improves its objective by less than `rtol` (relative) or
    no damping yields an improvement. `race`: stages `(iteration, n_keep)` after which only the
    `n_keep` rows of lowest objective keep going (the others keep their current values): with
    thousands of starts most fall into the same few basins early, and the leaders are the ones
    whose minima matter. Returns parameters (S, P) and objectives (S,) (inf where the law cannot
    be evaluated).
    """
    law = problem.law
    params = np.clip(np.array(starts, dtype=float, ndmin=2), law.lower, law.upper)
    n_starts, n_params = params.shape
    row_weights = np.broadcast_to(np.ones(len(problem.y)) if weights is None else
                                  np.asarray(weights, float), (n_starts, len(problem.y)))
    residuals, jacobian = problem.residuals(params)
    cost = problem.objective(residuals, row_weights)
    finite = np.isfinite(cost) & np.isfinite(jacobian).all(axis=(1, 2))
    cost = np.where(finite, cost, np.inf)
    damping = np.full(n_starts, 1e-3)
    active = finite.copy()
    identity = np.eye(n_params)
    for iteration in range(max_iter):
        for stage, keep in race:
            if iteration == stage and active.sum() > keep:
                active &= cost <= np.partition(cost, keep - 1)[keep - 1]
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        r, jac, w = residuals[rows], jacobian[rows], row_weights[rows]
        weighted = jac * problem.step_weights(r, w)[..., None]
        normal = np.matmul(weighted.transpose(0, 2, 1), jac)
        gradient = (weighted * r[..., None]).sum(axis=1)
        diagonal = np.einsum("spp->sp", normal)
        diagonal = np.where(diagonal > 0, diagonal, 1.0)  # no influence: no step either
        system = normal + (damping[rows, None] * diagonal)[:, :, None] * identity
        try:
            step = np.linalg.solve(system, -gradient[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = np.stack([np.linalg.lstsq(m, -g, rcond=None)[0]
                             for m, g in zip(system, gradient)])
        trial = np.clip(params[rows] + step, law.lower, law.upper)
        trial_r, trial_jac = problem.residuals(trial)
        trial_cost = problem.objective(trial_r, w)
        ok = (np.isfinite(trial_cost) & (trial_cost < cost[rows])
              & np.isfinite(trial_jac).all(axis=(1, 2)))
        gain = np.where(ok, cost[rows] - trial_cost, 0.0)
        # A small gain only means convergence when the step was (nearly) undamped.
        done = ((ok & (gain <= rtol * cost[rows] + _TINY) & (damping[rows] <= 1e-2))
                | (~ok & (damping[rows] > 1e12)))
        accepted = rows[ok]
        params[accepted] = trial[ok]
        cost[accepted] = trial_cost[ok]
        residuals[accepted] = trial_r[ok]
        jacobian[accepted] = trial_jac[ok]
        damping[rows] = np.where(ok, np.maximum(damping[rows] / 3.0, 1e-12), damping[rows] * 4.0)
        active[rows[done]] = False
    return params, cost


@single_threaded_blas
def polish(problem: Problem, start: np.ndarray,
           weights: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Refine one candidate with scipy: bounded `least_squares` (trust region reflective) for the
    squared objective, L-BFGS-B for the Huber objective."""
    law = problem.law
    w = np.ones(len(problem.y)) if weights is None else np.asarray(weights, float)
    start = np.clip(np.asarray(start, float), law.lower, law.upper)
    if problem.loss == "squared":
        root_w = np.sqrt(w)

        def fun(p):
            return root_w * problem.residuals(p[None])[0][0]

        def jac(p):
            return root_w[:, None] * problem.residuals(p[None])[1][0]

        with np.errstate(all="ignore"):
            result = least_squares(fun, start, jac=jac, bounds=(law.lower, law.upper),
                                   method="trf", x_scale="jac")
        params = result.x
    else:
        def fun_and_grad(p):
            r, j = problem.residuals(p[None])
            objective = problem.objective(r, w[None])[0]
            slope = w * np.clip(r[0], -problem.delta, problem.delta)
            return objective, slope @ j[0]

        bounds = [(None if np.isinf(lo) else lo, None if np.isinf(hi) else hi)
                  for lo, hi in zip(law.lower, law.upper)]
        with np.errstate(all="ignore"):
            result = minimize(fun_and_grad, start, jac=True, method="L-BFGS-B", bounds=bounds)
        params = result.x
    cost = problem.objective(problem.residuals(params[None])[0], w[None])[0]
    return params, float(cost) if np.isfinite(cost) else np.inf


def distinct_best(params: np.ndarray, cost: np.ndarray, k: int,
                  rtol: float = 1e-3) -> np.ndarray:
    """Indices of the `k` lowest-cost rows whose parameters differ from each other (relative
    `rtol`): the distinct local minima worth polishing or reusing as warm starts."""
    chosen: list[int] = []
    for i in np.argsort(cost):
        if not np.isfinite(cost[i]) or len(chosen) == k:
            break
        scale = np.abs(params[i]) + 1e-12
        if all(np.max(np.abs(params[i] - params[j]) / scale) > rtol for j in chosen):
            chosen.append(int(i))
    return np.asarray(chosen, dtype=int)


@dataclass(frozen=True, eq=False)
class MultistartResult:
    """The best parameters, its objective, and the distinct local minima found (best first)."""

    params: np.ndarray
    objective: float
    minima: np.ndarray


def multistart(problem: Problem, starts: np.ndarray, weights: np.ndarray | None = None,
               n_polish: int = 3, n_minima: int = 8) -> MultistartResult:
    """Fit from every start, polish the best distinct candidates, keep the lowest objective.

    Starts race (see `levenberg_marquardt`): after 10 steps the best tenth (at least 256) go on,
    after 30 the best fiftieth (at least 64).
    """
    n_starts = len(starts)
    params, cost = levenberg_marquardt(
        problem, starts, weights,
        race=((10, max(256, n_starts // 10)), (30, max(64, n_starts // 50))))
    candidates = distinct_best(params, cost, max(n_polish, n_minima))
    if candidates.size == 0:
        return MultistartResult(np.full(params.shape[1], np.nan), np.inf, params[:0])
    polished = [polish(problem, params[i], weights) for i in candidates[:n_polish]]
    pool = np.vstack([params[candidates]] + [p for p, _ in polished])
    pool_cost = np.concatenate([cost[candidates], [c for _, c in polished]])
    order = distinct_best(pool, pool_cost, n_minima)
    best = order[0]
    return MultistartResult(pool[best], float(pool_cost[best]), pool[order])

"""Scaling-law functional forms, vectorised over many parameter vectors at once.

Every law evaluates `params` of shape (P,) or (S, P) against inputs `x` of shape (n,) (or (n, 2)
for the two-input law), returning (n,) or (S, n): the fitting engine advances thousands of starts
or bootstrap resamples together, so a law must never loop over parameter vectors.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod

import numpy as np

from vlscale.errors import UserError

_INF = np.inf


def _split(params: np.ndarray) -> list[np.ndarray]:
    """Parameters as columns that broadcast against x: (..., P) -> P arrays of shape (..., 1)."""
    params = np.asarray(params, dtype=float)
    return [params[..., i, None] for i in range(params.shape[-1])]


def _grid(*axes: np.ndarray) -> np.ndarray:
    return np.array(list(itertools.product(*axes)), dtype=float)


class Law(ABC):
    """A parametric error law E(x; params) with box bounds on its parameters."""

    name: str
    param_names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    formula: str

    @abstractmethod
    def value(self, x: np.ndarray, params: np.ndarray) -> np.ndarray:
        """E(x) for each parameter vector."""

    @abstractmethod
    def value_and_jacobian(self, x: np.ndarray,
                           params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """E (S, n) and dE/dparams (S, n, P)."""

    def log_value_and_jacobian(self, x: np.ndarray,
                               params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ln E and its Jacobian, for fits on log residuals."""
        value, jacobian = self.value_and_jacobian(x, params)
        return np.log(value), jacobian / value[..., None]

    @abstractmethod
    def start_grid(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Default initial values (S, P) for a multi-start fit to the points (x, y)."""

    def public_params(self, params: np.ndarray) -> dict[str, float]:
        """The parameters as reported (named, in natural units)."""
        return {name: float(v) for name, v in zip(self.param_names, np.asarray(params, float))}

    def public_samples(self, samples: np.ndarray) -> dict[str, np.ndarray]:
        """`public_params` for a stack (B, P) of parameter vectors (bootstrap samples)."""
        return {name: samples[:, i] for i, name in enumerate(self.param_names)}


class ComputeLaw(Law):
    """A law of one compute axis, reported as E = a (C + b)^c + d with absent terms = 0."""

    def public_params(self, params: np.ndarray) -> dict[str, float]:
        named = super().public_params(params)
        return {name: named.get(name, 0.0) for name in ("a", "b", "c", "d")}

    def public_samples(self, samples: np.ndarray) -> dict[str, np.ndarray]:
        named = super().public_samples(samples)
        zeros = np.zeros(len(samples))
        return {name: named.get(name, zeros) for name in ("a", "b", "c", "d")}

    def exponent(self, params: np.ndarray) -> np.ndarray:
        """The power-law exponent c (more negative = steeper improvement with compute)."""
        return np.asarray(params, float)[..., self.param_names.index("c")]

    def floor(self, params: np.ndarray) -> np.ndarray:
        """The irreducible error d that the law tends to (0 for laws without a floor)."""
        params = np.asarray(params, float)
        if "d" in self.param_names:
            return params[..., self.param_names.index("d")]
        return np.zeros(params.shape[:-1])

    def inverse(self, y: np.ndarray, params: np.ndarray) -> np.ndarray:
        """The compute at which the law reaches error y; inf where y is at or below the floor."""
        named = self.public_samples(np.atleast_2d(np.asarray(params, float)))
        a, b, c, d = (named[k][:, None] for k in ("a", "b", "c", "d"))
        y = np.asarray(y, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = (y - d) / a
            compute = np.where(ratio > 0, ratio ** (1.0 / c) - b, _INF)
        compute = np.where((a > 0) & (c < 0), compute, _INF)
        return compute if np.ndim(params) > 1 else compute[0]



def _saturating_power(x, a, b, c, n_params: int):
    """(C + b)^c and a Jacobian whose columns for a, b, c are filled (the rest left to fill)."""
    base = np.asarray(x, float) + b
    log_base = np.log(base)
    power = np.exp(c * log_base)
    jacobian = np.empty(power.shape + (n_params,))
    jacobian[..., 0] = power
    jacobian[..., 1] = a * c * power / base
    jacobian[..., 2] = a * power * log_base
    return power, jacobian

class Saturating4(ComputeLaw):
    """E = a (C + b)^c + d, a, b, d >= 0, c <= 0: a power law that bends towards a floor d, with
    an offset b that lets the curve flatten at small compute (Nezhurina et al. 2025)."""

    name = "saturating4"
    param_names = ("a", "b", "c", "d")
    lower = np.array([0.0, 0.0, -_INF, 0.0])
    upper = np.array([_INF, _INF, 0.0, _INF])
    formula = "E = a (C + b)^c + d"

    def value(self, x, params):
        a, b, c, d = _split(params)
        return a * (np.asarray(x, float) + b) ** c + d

    def value_and_jacobian(self, x, params):
        a, b, c, d = _split(params)
        power, jacobian = _saturating_power(x, a, b, c, n_params=4)
        jacobian[..., 3] = 1.0
        return a * power + d, jacobian

    def start_grid(self, x, y):
        """The paper's 3200-start grid (`ScalingFunction.initial_guess_param_grid`)."""
        return _grid(np.arange(0, 100, 5), np.arange(0, 100, 5), np.arange(-0.2, 0, 0.05),
                     np.arange(0, 0.001, 0.0005))


class Saturating3(ComputeLaw):
    """E = a (C + b)^c: the saturating form without a floor."""

    name = "saturating3"
    param_names = ("a", "b", "c")
    lower = np.array([0.0, 0.0, -_INF])
    upper = np.array([_INF, _INF, 0.0])
    formula = "E = a (C + b)^c"

    def value(self, x, params):
        a, b, c = _split(params)
        return a * (np.asarray(x, float) + b) ** c

    def value_and_jacobian(self, x, params):
        a, b, c = _split(params)
        power, jacobian = _saturating_power(x, a, b, c, n_params=3)
        return a * power, jacobian

    def start_grid(self, x, y):
        return _grid(np.arange(0, 100, 5), np.arange(0, 100, 5), np.arange(-0.2, 0, 0.05))


def _power_value(x: np.ndarray, params: np.ndarray) -> np.ndarray:
    """a C^c, shared by `PowerLaw` and `LogLinear` (same curve, different fitting)."""
    a, c = _split(params)
    return a * np.asarray(x, float) ** c


def _power_value_and_jacobian(x: np.ndarray,
                              params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, c = _split(params)
    log_x = np.log(np.asarray(x, float))
    power = np.exp(c * log_x)
    jacobian = np.empty(power.shape + (2,))
    jacobian[..., 0] = power
    jacobian[..., 1] = a * power * log_x
    return a * power, jacobian


class PowerLaw(ComputeLaw):
    """E = a C^c (a >= 0, c <= 0), fitted on the linear error scale."""

    name = "power"
    param_names = ("a", "c")
    lower = np.array([0.0, -_INF])
    upper = np.array([_INF, 0.0])
    formula = "E = a C^c"

    def value(self, x, params):
        return _power_value(x, params)

    def value_and_jacobian(self, x, params):
        return _power_value_and_jacobian(x, params)

    def start_grid(self, x, y):
        """Around the log-log line (a good start), scaled up and down."""
        a, c = LogLinear().closed_form(x, y)
        return _grid(a * np.array([0.25, 1.0, 4.0]), np.minimum(c + np.array([-0.1, 0, 0.1]), 0))


class LogLinear(ComputeLaw):
    """ln E = ln a + c ln C: a straight line in log-log space, fitted in closed form.

    Unbounded, so it also serves positive exponents (compute-optimal size vs compute).
    """

    name = "loglinear"
    param_names = ("a", "c")
    lower = np.array([-_INF, -_INF])
    upper = np.array([_INF, _INF])
    formula = "ln E = ln a + c ln C"

    def value(self, x, params):
        return _power_value(x, params)

    def value_and_jacobian(self, x, params):
        return _power_value_and_jacobian(x, params)

    def start_grid(self, x, y):
        return np.atleast_2d(self.closed_form(x, y))

    def closed_form(self, x: np.ndarray, y: np.ndarray,
                    weights: np.ndarray | None = None) -> np.ndarray:
        """Weighted least squares of ln y on ln x; weights (n,) or (B, n) give (P,) or (B, P)."""
        log_x, log_y = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
        w = np.ones_like(log_x) if weights is None else np.asarray(weights, float)
        sw, sx, sy = w.sum(-1), (w * log_x).sum(-1), (w * log_y).sum(-1)
        sxx, sxy = (w * log_x * log_x).sum(-1), (w * log_x * log_y).sum(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = (sw * sxy - sx * sy) / (sw * sxx - sx * sx)
            intercept = (sy - slope * sx) / sw
        return np.stack([np.exp(intercept), slope], axis=-1)


class ChinchillaLaw(Law):
    """L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022), for x = (N, D) columns.

    Fitted in the log-parametrisation of the Chinchilla replication (a = ln A, b = ln B,
    e = ln E), where ln L = logsumexp(a - alpha ln N, b - beta ln D, e): the three scales differ
    by orders of magnitude and the log form keeps them positive and comparably scaled.
    """

    name = "chinchilla"
    param_names = ("a", "b", "e", "alpha", "beta")
    lower = np.full(5, -_INF)
    upper = np.full(5, _INF)
    formula = "L = E + A / N^alpha + B / D^beta"

    def log_value_and_jacobian(self, x, params):
        a, b, e, alpha, beta = _split(params)
        log_n, log_d = np.log(np.asarray(x, float)).T
        size_term, data_term = a - alpha * log_n, b - beta * log_d
        top = np.maximum(np.maximum(size_term, data_term), e)
        size_share, data_share = np.exp(size_term - top), np.exp(data_term - top)
        floor_share = np.exp(e - top)
        total = size_share + data_share + floor_share
        jacobian = np.empty(total.shape + (5,))
        jacobian[..., 0] = size_share / total
        jacobian[..., 1] = data_share / total
        jacobian[..., 2] = floor_share / total
        jacobian[..., 3] = -jacobian[..., 0] * log_n
        jacobian[..., 4] = -jacobian[..., 1] * log_d
        return top + np.log(total), jacobian

    def value(self, x, params):
        return np.exp(self.log_value_and_jacobian(x, params)[0])

    def value_and_jacobian(self, x, params):
        log_value, log_jacobian = self.log_value_and_jacobian(x, params)
        value = np.exp(log_value)
        return value, log_jacobian * value[..., None]

    def start_grid(self, x, y):
        """The replication's 4500-start grid (Besiroglu et al. 2024)."""
        return _grid(np.arange(0, 30, 5), np.arange(0, 30, 5), np.arange(-1, 1.5, 0.5),
                     np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5))

    def public_params(self, params):
        a, b, e, alpha, beta = np.asarray(params, float)
        return {"A": float(np.exp(a)), "B": float(np.exp(b)), "E": float(np.exp(e)),
                "alpha": float(alpha), "beta": float(beta)}

    def public_samples(self, samples):
        return {"A": np.exp(samples[:, 0]), "B": np.exp(samples[:, 1]),
                "E": np.exp(samples[:, 2]), "alpha": samples[:, 3], "beta": samples[:, 4]}


LAWS: dict[str, Law] = {law.name: law for law in
                        (Saturating4(), Saturating3(), PowerLaw(), LogLinear())}
"""The laws of one compute axis, by name (`ChinchillaLaw` has its own entry point)."""


def get_law(law: str | Law) -> Law:
    """A law instance from its name (or the instance itself)."""
    if isinstance(law, Law):
        return law
    if law not in LAWS:
        raise UserError(f"unknown law '{law}': use one of {', '.join(LAWS)}")
    return LAWS[law]

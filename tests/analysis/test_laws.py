import numpy as np
import pytest

from vlscale.analysis import LAWS, ChinchillaLaw, LogLinear, Saturating4, get_law
from vlscale.errors import UserError

X = np.logspace(6, 12, 9)
PARAMS = {
    "saturating4": np.array([60.0, 1e8, -0.22, 0.1]),
    "saturating3": np.array([60.0, 1e8, -0.22]),
    "power": np.array([5.0, -0.1]),
    "loglinear": np.array([5.0, -0.1]),
}


@pytest.mark.parametrize("name", list(LAWS))
def test_shapes_broadcast_over_parameter_stacks(name):
    law = LAWS[name]
    single = PARAMS[name]
    stack = np.stack([single, single * 1.01, single * 0.99])
    assert law.value(X, single).shape == (len(X),)
    value, jacobian = law.value_and_jacobian(X, stack)
    assert value.shape == (3, len(X)) and jacobian.shape == (3, len(X), len(single))
    np.testing.assert_allclose(value[0], law.value(X, single))


@pytest.mark.parametrize("name", list(LAWS))
def test_jacobian_matches_finite_differences(name):
    law = LAWS[name]
    params = PARAMS[name]
    _, jacobian = law.value_and_jacobian(X, params[None])
    for i in range(len(params)):
        step = 1e-6 * max(abs(params[i]), 1e-3)
        up, down = params.copy(), params.copy()
        up[i] += step
        down[i] -= step
        numeric = (law.value(X, up) - law.value(X, down)) / (2 * step)
        np.testing.assert_allclose(jacobian[0, :, i], numeric, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("name", ["saturating4", "saturating3", "power"])
def test_saturating_family_is_decreasing_within_bounds_and_inverts(name):
    law = LAWS[name]
    params = PARAMS[name]
    assert np.all(params >= law.lower) and np.all(params <= law.upper)
    values = law.value(X, params)
    assert np.all(np.diff(values) < 0)
    np.testing.assert_allclose(law.inverse(values, params), X, rtol=1e-8)
    assert np.all(values > law.floor(params))


def test_saturating4_shape_floor_exponent_and_unreachable_inverse():
    law = Saturating4()
    params = PARAMS["saturating4"]
    assert law.floor(params) == 0.1 and law.exponent(params) == -0.22
    # at C = 0 the offset b sets the start: a b^c + d; far out the law tends to d
    assert law.value(np.array([0.0]), params)[0] == pytest.approx(60 * 1e8 ** -0.22 + 0.1)
    assert law.value(np.array([1e40]), params)[0] == pytest.approx(0.1, abs=1e-6)
    assert np.isinf(law.inverse(np.array([0.05]), params))  # below the floor: never reached
    assert law.public_params(params) == {"a": 60.0, "b": 1e8, "c": -0.22, "d": 0.1}
    assert LAWS["power"].public_params(PARAMS["power"]) == {"a": 5.0, "b": 0.0, "c": -0.1,
                                                             "d": 0.0}


def test_loglinear_closed_form_recovers_a_line_and_handles_weight_stacks():
    law = LogLinear()
    y = 3.0 * X ** 0.4
    np.testing.assert_allclose(law.closed_form(X, y), [3.0, 0.4])
    weights = np.random.default_rng(0).uniform(0.5, 2, size=(4, len(X)))
    np.testing.assert_allclose(law.closed_form(X, y, weights), np.tile([3.0, 0.4], (4, 1)))


def test_chinchilla_jacobian_matches_finite_differences():
    law = ChinchillaLaw()
    params = np.array([6.0, 6.5, 0.5, 0.34, 0.28])
    inputs = np.column_stack([np.logspace(7, 10, 6), np.logspace(9, 11, 6)])
    _, jacobian = law.log_value_and_jacobian(inputs, params[None])
    for i in range(5):
        up, down = params.copy(), params.copy()
        up[i] += 1e-6
        down[i] -= 1e-6
        numeric = (np.log(law.value(inputs, up)) - np.log(law.value(inputs, down))) / 2e-6
        np.testing.assert_allclose(jacobian[0, :, i], numeric, rtol=1e-5, atol=1e-9)


def test_chinchilla_law_log_form_matches_the_sum():
    law = ChinchillaLaw()
    params = np.log([400.0, 400.0, 1.7]).tolist() + [0.34, 0.28]
    n, d = np.array([1e8, 1e9, 1e10]), np.array([1e9, 2e10, 2e11])
    expected = 1.7 + 400.0 / n ** 0.34 + 400.0 / d ** 0.28
    np.testing.assert_allclose(law.value(np.column_stack([n, d]), np.array(params)), expected)
    log_value, jacobian = law.log_value_and_jacobian(np.column_stack([n, d]), np.array(params))
    np.testing.assert_allclose(np.exp(log_value), expected)
    assert jacobian.shape == (3, 5)
    assert law.public_params(np.array(params))["A"] == pytest.approx(400.0)


def test_default_grids_have_the_published_sizes():
    assert Saturating4().start_grid(X, X).shape == (3200, 4)
    assert ChinchillaLaw().start_grid(None, None).shape == (4500, 5)


def test_unknown_law():
    with pytest.raises(UserError, match="unknown law"):
        get_law("exponential")

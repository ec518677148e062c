import numpy as np

from vlscale.analysis import LAWS, compare, fit_curve, holdout, plot_fits
from vlscale.analysis.plots import figure_paths

X = np.logspace(6, 12, 20)


def test_plot_writes_non_empty_png_and_pdf(tmp_path):
    law = LAWS["saturating4"]
    rng = np.random.default_rng(0)
    y_a = law.value(X, np.array([5.0, 1e4, -0.2, 0.10])) + rng.normal(0, 0.002, len(X))
    y_b = law.value(X, np.array([60.0, 1e5, -0.35, 0.12])) + rng.normal(0, 0.002, len(X))
    fit_a = fit_curve(X, y_a, frontier="none", n_bootstrap=50, label="clip")
    held = holdout(X, y_b, 1e11, frontier="none", n_bootstrap=50, label="mammut")
    comparison = compare(fit_a, held.fit)
    paths = plot_fits([fit_a, held.fit], tmp_path / "figures" / "fit.png",
                      heldout=[None, held], comparison=comparison, extend_to=1e13,
                      title="synthetic")
    assert paths == [tmp_path / "figures" / "fit.png", tmp_path / "figures" / "fit.pdf"]
    png, pdf = (p.read_bytes() for p in paths)
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert pdf.startswith(b"%PDF") and len(pdf) > 5_000


def test_figure_paths_replace_known_suffixes_only(tmp_path):
    assert figure_paths(tmp_path / "a.pdf") == [tmp_path / "a.png", tmp_path / "a.pdf"]
    assert figure_paths(tmp_path / "run.v2") == [tmp_path / "run.v2.png",
                                                 tmp_path / "run.v2.pdf"]


def test_band_is_the_central_68_percent_over_the_measured_range_only():
    """The drawn band stops at the largest measured (or held-out) compute, although the law is
    drawn on to `extend_to`, and its edges are the 16th / 84th percentiles of the bootstrap."""
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    from vlscale.analysis.plots import band_range, draw_fits

    law = LAWS["saturating4"]
    rng = np.random.default_rng(1)
    y = law.value(X, np.array([5.0, 1e4, -0.2, 0.10])) + rng.normal(0, 0.002, len(X))
    fit = fit_curve(X, y, frontier="none", n_bootstrap=40, label="clip")
    axes = Figure().add_subplot()
    draw_fits(axes, [fit], extend_to=1e15)
    (band,) = [c for c in axes.collections if isinstance(c, PolyCollection)]
    vertices = band.get_paths()[0].vertices
    assert vertices[:, 0].max() <= X.max() * (1 + 1e-9) and vertices[:, 0].min() >= X.min()
    assert max(line.get_xdata().max() for line in axes.lines) >= 1e15 * (1 - 1e-9)
    assert band_range(fit) == (X.min(), X.max())
    middle = np.logspace(np.log10(X.min()), np.log10(X.max()), 200)[100]  # a drawn x
    low, high = fit.predict_interval(np.array([middle]), 0.68)
    edges = sorted(vertices[np.isclose(vertices[:, 0], middle, rtol=1e-12), 1])
    np.testing.assert_allclose([edges[0], edges[-1]], [low[0], high[0]], rtol=1e-12)
    wide = fit.predict_interval(np.array([middle]), 0.95)
    assert wide[1][0] - wide[0][0] > high[0] - low[0]  # not the 95% band

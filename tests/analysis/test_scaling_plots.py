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

"""`vlscale fit --bootstrap N` prints every coefficient and prediction with its interval at
`--confidence`; an end the bootstrap left infinite or undefined reads "unbounded"."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from vlscale.analysis import LAWS
from vlscale.analysis.commands import format_intervals
from vlscale.analysis.fit import fit_curve
from vlscale.analysis.summary import fit_record
from vlscale.cli import main

LAW = [5.0, 1e4, -0.2, 0.10]  # saturating4: a, b, c, d
NUMBER = r"-?[0-9.]+(?:e[+-]?[0-9]+)?"
LINE = re.compile(rf"^all: (?P<name>\w+) = (?P<point>{NUMBER})  \[(?P<low>{NUMBER}), "
                  rf"(?P<high>{NUMBER})\] \((?P<level>[0-9.]+)%\)$")


def _table() -> pd.DataFrame:
    """One run per cell on a known law with a little noise (so the bootstrap varies)."""
    rng = np.random.default_rng(1)
    rows = []
    for k, gflops in enumerate(np.geomspace(1, 200, 6)):
        for samples in np.geomspace(1e4, 3e8, 8):
            compute = gflops * samples
            error = LAWS["saturating4"].value(np.array([compute]), np.array(LAW))[0]
            rows.append({"metric": "acc1", "arch": f"A{k}", "samples_seen": samples,
                         "gflops_per_sample": gflops,
                         "value": 1 - error * (1 + rng.normal(0, 0.02))})
    return pd.DataFrame(rows)


@pytest.fixture
def table_csv(tmp_path):
    path = tmp_path / "results.csv"
    _table().to_csv(path, index=False)
    return path


def test_bootstrap_prints_each_coefficient_and_prediction_with_its_interval(
        table_csv, tmp_path, capsys):
    out = tmp_path / "fit.json"
    assert main(["fit", str(table_csv), "--predict-at", "1e9", "--bootstrap", "40",
                 "--confidence", "0.9", "--seed", "3", "--json", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    coefficients = {m["name"]: m for line in printed if (m := LINE.match(line))}
    record = json.loads(out.read_text())["fits"][0]
    assert set(coefficients) == set(record["params"]) == {"a", "b", "c", "d"}
    for name, match in coefficients.items():
        low, point, high = (float(match[k]) for k in ("low", "point", "high"))
        assert match["level"] == "90"
        assert low <= point <= high, name
        assert match["low"] == f"{record['params_ci'][name][0]:.4g}"
        assert match["high"] == f"{record['params_ci'][name][1]:.4g}"
    # the same intervals as LawFit.param_intervals of the fit computed directly
    table = _table()
    fit = fit_curve((table.gflops_per_sample * table.samples_seen).to_numpy(float),
                    (1 - table.value).to_numpy(float), "saturating4", "pareto_bin",
                    n_bootstrap=40, seed=3, confidence=0.9)
    for name, (low, high) in fit.param_intervals().items():
        assert coefficients[name]["low"] == f"{low:.4g}"
        assert coefficients[name]["high"] == f"{high:.4g}"
    prediction = [line for line in printed if line.startswith("all: predicted error at 1e+09")]
    assert len(prediction) == 1, "each prediction once, with its interval"
    low, high = record["predictions"][0]["ci"]
    assert f"[{low:.4g}, {high:.4g}] (90%)" in prediction[0]
    assert low <= record["predictions"][0]["y"] <= high


def test_without_bootstrap_no_intervals_are_printed(table_csv, capsys):
    assert main(["fit", str(table_csv), "--predict-at", "1e9"]) == 0
    printed = capsys.readouterr().out
    assert "%)" not in printed and "unbounded" not in printed
    assert "predicted error at 1e+09" in printed


def test_infinite_or_undefined_ends_read_unbounded():
    table = _table()
    fit = fit_curve((table.gflops_per_sample * table.samples_seen).to_numpy(float),
                    (1 - table.value).to_numpy(float), "saturating4", n_bootstrap=10, seed=0)
    fit = fit.with_label("all")
    record = fit_record(fit, [1e9], "1-value")
    # JSON records write an infinite end as "inf" and an undefined (NaN) one as None
    record["params_ci"]["b"] = [record["params_ci"]["b"][0], "inf"]
    record["params_ci"]["a"] = ["-inf", record["params_ci"]["a"][1]]
    record["predictions"][0]["ci"] = [record["predictions"][0]["ci"][0], None]
    lines = format_intervals([record], 0.95).splitlines()
    b_line = next(line for line in lines if line.startswith("all: b = "))
    a_line = next(line for line in lines if line.startswith("all: a = "))
    prediction = next(line for line in lines if "predicted error" in line)
    assert re.search(rf"\[{NUMBER}, unbounded\) \(95%\)$", b_line), b_line
    assert re.search(rf"\(unbounded, {NUMBER}\] \(95%\)$", a_line), a_line
    assert re.search(rf"= {NUMBER}  \[{NUMBER}, unbounded\) \(95%\);", prediction), prediction

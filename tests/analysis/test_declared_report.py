"""A sweep's declared report task, metric and frontier (vlscale/analysis/declared.py), read from
its parent run in a real MLflow store: `vlscale report SWEEP` and `choose_report` (what the
notebooks call) compare what the sweep declared unless told otherwise."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from vlscale import tracking
from vlscale.analysis import (
    DeclaredReport,
    choose_report,
    declared_report,
    load_results,
    report_defaults,
)
from vlscale.cli import main
from vlscale.errors import UserError
from vlscale.testing.synthetic import CLIP, MAMMUT, write_synthetic_sweep

pytestmark = pytest.mark.timeout(300)
DECLARED = {tracking.TAG_REPORT_TASK: "heldout", tracking.TAG_REPORT_METRIC: "contrastive_loss",
            tracking.TAG_REPORT_FRONTIER: "pareto_naive"}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """Two small constant-LR sweeps: "declared" (heldout contrastive_loss, pareto_naive) and
    "defaults" (tags "" as the driver writes them for a job that leaves the defaults)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    procedures = [replace(p, schedule="const") for p in (CLIP, MAMMUT)]
    for sweep, tags in (("declared", DECLARED), ("defaults", dict.fromkeys(DECLARED, ""))):
        write_synthetic_sweep(uri, sweep, procedures, archs={"cpu-w32-l1": 1.0, "cpu-w64-l2": 2.2},
                              samples_seen=(100_000, 300_000, 1_000_000)).set_tags(tags)
    return uri


def test_declared_report_reads_the_parent_run_tags(store):
    assert declared_report(store, "declared") == DeclaredReport(
        "heldout", "contrastive_loss", "pareto_naive")
    assert declared_report(store, "defaults") == DeclaredReport()
    with pytest.raises(UserError, match="no sweep 'absent'.*sweeps there: declared, defaults"):
        declared_report(store, "absent")


def test_report_defaults_fill_in_only_what_was_not_given():
    declared = DeclaredReport("heldout", "contrastive_loss", "pareto_naive")
    assert report_defaults(declared) == ("heldout", "contrastive_loss", "pareto_naive")
    assert report_defaults(declared, metric="loss") == ("heldout", "loss", "pareto_naive")
    # the declared metric is the declared task's: another task takes that task's default
    assert report_defaults(declared, task="zeroshot") == ("zeroshot", None, "pareto_naive")
    assert report_defaults(declared, frontier="none")[2] == "none"
    assert report_defaults(DeclaredReport()) == (None, None, "pareto_bin")


def test_choose_report_resolves_as_the_report_does(store):
    choice = choose_report(load_results(store, "declared", cache=False))
    assert (choice.task, choice.metric, choice.frontier, choice.error) == (
        "heldout", "contrastive_loss", "pareto_naive", "value")
    assert set(choice.rows["metric"]) == {"contrastive_loss"} and len(choice.rows) == 12
    defaults = choose_report(load_results(store, "defaults", cache=False))
    assert (defaults.task, defaults.metric, defaults.frontier, defaults.error) == (
        "zeroshot", "acc1", "pareto_bin", "1-value")
    explicit = choose_report(load_results(store, "declared", cache=False), task="retrieval")
    assert (explicit.task, explicit.metric) == ("retrieval", "image_to_text_r1")


def test_vlscale_report_compares_the_declared_metric_unless_told(store, tmp_path, capsys):
    """(What --task / --frontier change is `report_defaults`'s, tested above.)"""
    assert main(["report", "declared", "--tracking-uri", store, "--bootstrap", "0",
                 "--no-publish", "--out", str(tmp_path / "report")]) == 0
    assert capsys.readouterr().out.startswith("Insufficient evidence to tell whether "
                                              "clip-synth or mammut-synth scales better on "
                                              "heldout contrastive_loss")
    document = json.loads((tmp_path / "report" / "report.json").read_text())
    assert (document["task"], document["metric"], document["options"]["frontier"]) == (
        "heldout", "contrastive_loss", "pareto_naive")

"""`vlscale report` on the published Nezhurina et al. 2025 table reproduces the paper's
qualitative conclusion: MaMMUT scales better than CLIP on ImageNet, for DataComp and Re-LAION."""

from __future__ import annotations

import json

import pytest

from vlscale.cli import main


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_mammut_scales_better_than_clip_on_both_datasets(anchors_dir, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(anchors_dir / "lscomp_overview_best_per_cell.csv"),
                 "--out", str(out), "--where", "downstream_dataset=imagenet1k",
                 "--where", "metric=acc1", "--where", "lr_scheduler=cosine",
                 "--group", "model_type"]) == 0
    printed = capsys.readouterr().out
    document = json.loads((out / "report.json").read_text())
    verdicts = {(item["verdict"]["context"], item["a"], item["b"]): item["verdict"]
                for section in document["slices"] for item in section["comparisons"]}
    with capsys.disabled():
        print()
        for (context, a, b), verdict in verdicts.items():
            if {a, b} == {"clip", "mammut"}:
                print(f"[{context}] {verdict['text']}\n")
    # One comparison per pre-training dataset: the table mixes two, --where does not pick one.
    assert {section["title"] for section in document["slices"]} == {
        "pretrain_dataset=datacomp_1b", "pretrain_dataset=relaion2b-en"}
    for dataset in ("datacomp_1b", "relaion2b-en"):
        verdict = verdicts[(f"pretrain_dataset={dataset}", "clip", "mammut")]
        assert verdict["winner"] == "mammut", verdict["text"]
        assert verdict["text"] in printed
        assert verdict["probability"] >= 0.66
    assert (out / "report.html").stat().st_size > 50_000

"""In-process evaluation batches (no Ray)."""

import torch

from vlscale.platform.data import Preprocess, load_eval_batches, open_shards

from helpers.shards import is_bad


def test_eval_batches_are_the_first_usable_rows_in_fixed_batches(dirty_shards):
    shards = open_shards(str(dirty_shards))
    spec = Preprocess.for_shards(shards, image_size=16, context_length=24)
    batches = load_eval_batches(shards, spec, max_samples=250, batch_size=64)
    first = list(batches)
    assert [len(b["row_id"]) for b in first] == [64, 64, 64, 58]
    ids = torch.cat([b["row_id"] for b in first]).tolist()
    assert ids == [n for n in range(900) if not is_bad(n)][:250]
    assert first[0]["image"].shape == (64, 3, 16, 16) and first[0]["text"].shape == (64, 24)
    assert "label" not in first[0]
    assert batches.samples == 250 and batches.skipped_records > 0
    again = torch.cat([b["row_id"] for b in batches]).tolist()
    assert again == ids


def test_zeroshot_eval_batches_carry_labels(tmp_path):
    from vlscale.platform.data.synth import write_synth

    write_synth(tmp_path, samples=10, eval_samples=0, zeroshot_samples=90, image_size=16,
                workers=1)
    shards = open_shards(str(tmp_path / "zeroshot"))
    spec = Preprocess.for_shards(shards, image_size=16)
    batches = list(load_eval_batches(str(tmp_path / "zeroshot"), spec, batch_size=50))
    assert [len(b["label"]) for b in batches] == [50, 40]
    assert torch.cat([b["label"] for b in batches]).tolist() == [i % 80 for i in range(90)]

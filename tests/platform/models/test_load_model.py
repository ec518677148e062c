"""`vlscale.load_model` and `vlscale export-model`: a cell trained by real Ray Train workers into
a real SQLite MLflow store, loaded back by run id and by cell hash, scored with the returned
model + preprocess + tokenizer, and exported in open_clip's own checkpoint format."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import vlscale
from vlscale import tracking
from vlscale.cli import main
from vlscale.errors import UserError
from vlscale.platform.config import Cell, DataSpec, ModelSpec, ResourceSpec, TrainSpec
from vlscale.platform.data import open_shards
from vlscale.platform.data.preprocess import open_image, row_usable
from vlscale.platform.models import heldout_losses, zero_shot_classification
from vlscale.platform.models.task import VLTask

from helpers.shards import write_synth_set

ARCH = "cpu-w32-l1"
LOSS_RTOL = 64 * float(torch.finfo(torch.float32).eps)
"""The held-out loss here and in the worker: the same float32 arithmetic, but the worker's
torch may use more threads, so sums over a 64-row batch (softmax denominators, the mean) can
be added in another order: a relative difference of up to ~64 roundings of float32."""


def make_cell(shards: Path, model_type: str, seed: int = 3) -> Cell:
    return Cell(ModelSpec(model_type, ARCH),
                DataSpec("synth", str(shards / "train"), str(shards / "eval"),
                         str(shards / "zeroshot"), eval_samples=192),
                TrainSpec(samples_seen=512, global_batch=64, lr=2e-3, warmup_samples=64,
                          checkpoint_every_samples=512, eval_batch_size=64, seed=seed),
                ResourceSpec(min_workers=1, max_workers=1, cpus_per_worker=0.5, max_failures=0),
                procedure=f"{model_type}-synth")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_synth_set(tmp_path_factory.mktemp("synth"), 1024, seed=0, held_out=192)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    where = tmp_path_factory.mktemp("store")
    return f"sqlite:///{where / 'mlflow.db'}", where


@pytest.fixture(scope="module")
def trained(ray_cluster, shards, store):
    """{model type: (cell, its run record)}: one CLIP and one MaMMUT cell, trained for real."""
    from vlscale.platform.train.runner import run_cell

    uri, where = store
    cells = {}
    for model_type in ("clip", "mammut"):
        cell = make_cell(shards, model_type)
        result = run_cell(cell, tracking_uri=uri, storage_path=str(where / "ray"))
        assert result.error is None, result.error
        (record,) = [r for r in tracking.list_cell_runs(uri) if r.cell_hash == cell.cell_hash]
        cells[model_type] = (cell, record)
    return cells


def evaluation_rows(cell: Cell, location: str, preprocess) -> tuple[list, list, list]:
    """(images, labels, captions) of an evaluation set as the evaluators read it (the first
    eval_samples usable rows in shard order), decoded from the raw image bytes with the
    returned PIL preprocess."""
    images, labels, captions = [], [], []
    shards = open_shards(location)
    for unit in range(len(shards.units)):
        raw = shards.read_unit(unit)
        for row in range(len(raw.keys)):
            image = open_image(raw.images[row])
            if row_usable(raw.status_ok[row], raw.captions[row]) and image is not None:
                images.append(preprocess(image))
                labels.append(-1 if raw.labels is None else int(raw.labels[row]))
                captions.append(raw.captions[row])
    count = cell.data.eval_samples
    assert len(images) >= count
    return images[:count], labels[:count], captions[:count]


def batched(cell: Cell, images: list, other) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """In the cell's evaluation batch size, as the evaluators batch them."""
    size = cell.train.eval_batch_size
    return [(torch.stack(images[i:i + size]), other[i:i + size])
            for i in range(0, len(images), size)]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("model_type", ["clip", "mammut"])
def test_loaded_model_reproduces_the_logged_zero_shot_accuracy(trained, store, model_type):
    uri, _ = store
    cell, record = trained[model_type]
    for run in (record.run_id, record.cell_hash):
        model, preprocess, tokenizer = vlscale.load_model(uri, run)
        assert not model.training
        zeroshot = open_shards(cell.data.zeroshot)
        images, labels, _ = evaluation_rows(cell, cell.data.zeroshot, preprocess)
        scores = zero_shot_classification(model, batched(cell, images, torch.tensor(labels)),
                                          zeroshot.class_names, zeroshot.templates, tokenizer)
        # the same float32 weights, images and prompts on the same CPU: the same count of hits
        assert scores["top1"] == record.metrics["eval/zeroshot/acc1"], run
        # a count could match by chance; the held-out loss (a float) pins the weights down
        images, _, captions = evaluation_rows(cell, cell.data.eval, preprocess)
        task = VLTask(model, cell.model, logit_scale_clamp=cell.train.logit_scale_clamp)
        losses = heldout_losses(task, batched(cell, images, tokenizer(captions)))
        logged = record.metrics["eval/heldout/loss"]
        assert losses["loss"] == pytest.approx(logged, rel=LOSS_RTOL), run
        tokens = tokenizer(["a photo of a cat", "x"])
        assert tokens.dtype == torch.int64 and tokens.shape == (2, tokenizer.context_length)
        image = preprocess(Image.new("RGB", (48, 40), (200, 30, 90)))
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_exported_clip_loads_with_open_clips_own_loader(trained, store, tmp_path, capsys):
    import open_clip

    from vlscale.platform.models.ladder import model_config

    uri, _ = store
    _, record = trained["clip"]
    out = tmp_path / "export" / "model.pt"
    assert main(["export-model", record.run_id, "--out", str(out), "--tracking-uri", uri]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == ["model.pt"]  # nothing left beside it
    loaded = vlscale.load_model(uri, record.run_id)
    images = torch.stack([loaded.preprocess(Image.new("RGB", (32, 32), (i * 40, 90, 200 - i)))
                          for i in range(4)])
    texts = loaded.tokenizer(["a red square", "a blue circle", "a green thing", "a dog"])

    config = model_config("clip", ARCH)  # the config vlscale trained with (registers configs)
    checkpoint = torch.load(out, weights_only=True)
    assert checkpoint["model_cfg"] == config and checkpoint["name"] == ARCH
    plain = open_clip.CLIP(**config, output_dict=True).eval()
    open_clip.load_checkpoint(plain, str(out))  # strict: every key matches
    with torch.no_grad():
        assert torch.equal(plain.encode_image(images), loaded.model.encode_image(images))
        assert torch.equal(plain.encode_text(texts), loaded.model.encode_text(texts))
    # open_clip's factory with the registered ladder config, loading the file as `pretrained`
    # (its JSON keeps open_clip's default text pooling, so compare the image tower and weights)
    factory = open_clip.create_model(ARCH, pretrained=str(out)).eval()
    with torch.no_grad():
        assert torch.equal(factory.encode_image(images), loaded.model.encode_image(images))
    assert all(torch.equal(factory.state_dict()[k], v) for k, v in plain.state_dict().items())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_mammut_export_is_refused_in_one_line(trained, store, tmp_path, capsys):
    uri, _ = store
    _, record = trained["mammut"]
    out = tmp_path / "model.pt"
    assert main(["export-model", record.cell_hash, "--out", str(out), "--tracking-uri", uri]) == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and "upstream open_clip has no MaMMUT" in err[0]
    assert not out.exists()


def _error_lines(capsys) -> list[str]:
    """What the command wrote to stderr, less MLflow's own log lines (creating a new store's
    tables): the command's error is its one line, and nothing else is."""
    return [line for line in capsys.readouterr().err.strip().splitlines()
            if " INFO mlflow." not in line]


@pytest.fixture
def empty_store(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_unknown_run_or_cell_is_one_line(empty_store, capsys):
    with pytest.raises(UserError, match="no cell run with cell hash 'abcdef012345'"):
        vlscale.load_model(empty_store, "abcdef012345")
    assert main(["export-model", "0123456789abcdef0123456789abcdef", "--out", "m.pt",
                 "--tracking-uri", empty_store]) == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and err[0].startswith("vlscale export-model: error: no cell run with "
                                               "run id '0123456789abcdef0123456789abcdef'")


def test_export_refuses_a_folder_or_a_path_under_a_file(tmp_path, empty_store, capsys):
    (tmp_path / "file").write_text("x")
    for out, message in ((tmp_path, "is a folder"), (tmp_path / "file" / "m.pt", "is a file")):
        assert main(["export-model", "abcdef012345", "--out", str(out),
                     "--tracking-uri", empty_store]) == 2
        err = _error_lines(capsys)
        assert len(err) == 1 and message in err[0], err


def test_runs_without_a_usable_checkpoint_are_one_line(shards, empty_store):
    """Real cell runs opened in the store (as a sweep's workers open them) that never trained."""
    cell = make_cell(shards, "clip", seed=11)
    runs = {}
    for sweep_id in ("sweep-a", "sweep-b"):
        sweep = tracking.start_sweep_parent(empty_store, sweep_id)
        logger = tracking.open_cell_run(cell, sweep=sweep)
        logger.flush()
        runs[sweep_id] = logger
    with pytest.raises(UserError) as ambiguous:
        vlscale.load_model(empty_store, cell.cell_hash)
    text = str(ambiguous.value)
    assert "\n" not in text and "give the run id" in text
    assert all(f"{logger.run_id} (sweep {name})" in text for name, logger in runs.items())
    with pytest.raises(UserError, match="has no final checkpoint: it is still running"):
        vlscale.load_model(empty_store, runs["sweep-a"].run_id)
    runs["sweep-a"].finish(tracking.CellState.FAILED, error="RuntimeError: boom")
    with pytest.raises(UserError, match="it is failed and never saved its final checkpoint"):
        vlscale.load_model(empty_store, runs["sweep-a"].run_id)
    # an upload that failed leaves the tag pointing at a copy that is gone
    runs["sweep-b"].set_tags({tracking.TAG_CHECKPOINT: str(shards / "gone")})
    runs["sweep-b"].flush()
    with pytest.raises(UserError, match=r"final checkpoint .*gone/model.safetensors does not "
                                        "exist"):
        vlscale.load_model(empty_store, runs["sweep-b"].run_id)
    runs["sweep-b"].finish(tracking.CellState.FAILED, error="RuntimeError: upload failed")
    # a finished run whose model was too big to upload its final checkpoint
    logger = tracking.open_cell_run(make_cell(shards, "clip", seed=12), tracking_uri=empty_store)
    logger.finish(tracking.CellState.FINISHED)
    with pytest.raises(UserError, match="it finished without uploading one"):
        vlscale.load_model(empty_store, logger.run_id)


def test_import_vlscale_stays_free_of_torch():
    code = ("import sys, vlscale; assert 'torch' not in sys.modules; "
            "assert callable(vlscale.load_model); assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

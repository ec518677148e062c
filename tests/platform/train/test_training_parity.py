"""Training follows the paper's trainer (open_clip_train, as the MaMMUT fork runs it) by default;
each deviation is an opt-in, hashed-only-when-set, logged setting."""

import dataclasses
import math

import pytest
import torch
from test_step_distributed import accumulate, assert_same_step, global_batch

from vlscale.errors import UserError
from vlscale.platform.config import (
    Cell,
    DataSpec,
    GridSpec,
    ModelSpec,
    Procedure,
    SizeSettings,
    TrainSpec,
    cell_from_dict,
)
from vlscale.platform.models import create_task
from vlscale.platform.train.steps import Stepper, build_optimizer

LN_100 = torch.tensor(math.log(100.0)).item()  # as float32 rounds it


# --- cell identity ------------------------------------------------------------------------------

def hashed_cells() -> dict[str, Cell]:
    return {
        "clip": Cell(ModelSpec("clip", "cpu-w32-l1"), DataSpec("synth", "/data/synth/train"),
                     TrainSpec(samples_seen=4096, global_batch=64, lr=1e-3)),
        "mammut": Cell(ModelSpec("mammut", "ViT-B-32", caption_weight=1.5),
                       DataSpec("datacomp", "s3://b/train", "s3://b/eval"),
                       TrainSpec(samples_seen=1_280_000, global_batch=1024, lr=5e-4,
                                 micro_batch=128, schedule="const",
                                 eval_points=(640_000, 1_280_000), precision="bf16")),
    }


def test_new_settings_at_their_defaults_keep_existing_cell_hashes():
    """The hashes these cells had before the settings existed (their MLflow run keys)."""
    cells = hashed_cells()
    assert cells["clip"].cell_hash == "1e1461b54faf"
    assert cells["mammut"].cell_hash == "a3d50a4be8d5"


@pytest.mark.parametrize("section, change", [
    ("model", dict(map_viz2txt_init="fan_in")),
    ("train", dict(logit_scale_clamp="loss")),
    ("train", dict(no_decay_embeddings=True)),
    ("train", dict(contrastive_batch="micro")),
])
def test_a_deviation_is_a_new_cell_logged_as_a_param(section, change):
    cell = hashed_cells()["mammut"]
    changed = dataclasses.replace(cell, **{section: dataclasses.replace(getattr(cell, section),
                                                                          **change)})
    changed.validate()
    assert changed.cell_hash != cell.cell_hash
    (name, value), = change.items()
    assert changed.flat_params()[f"{section}.{name}"] == value
    default = getattr(getattr(cell, section), name)
    assert cell.flat_params()[f"{section}.{name}"] == default  # defaults are logged too
    again = cell_from_dict(changed.experiment_dict())
    assert again == dataclasses.replace(changed, procedure="")
    assert again.cell_hash == changed.cell_hash


@pytest.mark.parametrize("section, change, message", [
    ("model", dict(map_viz2txt_init="xavier"), "unknown map_viz2txt_init"),
    ("train", dict(logit_scale_clamp="none"), "unknown logit_scale_clamp"),
    ("train", dict(contrastive_batch="local"), "unknown contrastive_batch"),
])
def test_unknown_setting_values_are_user_errors(section, change, message):
    cell = hashed_cells()["mammut"]
    bad = dataclasses.replace(cell, **{section: dataclasses.replace(getattr(cell, section), **change)})
    with pytest.raises(UserError, match=message):
        bad.validate()


def test_map_init_is_mammut_only_and_reaches_grid_cells():
    clip = dataclasses.replace(hashed_cells()["clip"],
                               model=ModelSpec("clip", "cpu-w32-l1", map_viz2txt_init="fan_in"))
    with pytest.raises(UserError, match="MaMMUT only"):
        clip.validate()
    data = DataSpec("synth", "/data/synth/train")
    grid = GridSpec("g", (Procedure("m", "mammut", data, map_viz2txt_init="fan_in"),),
                    ("cpu-w32-l1",), (1024,), {"cpu-w32-l1": SizeSettings(1e-3, 64)})
    assert [c.model.map_viz2txt_init for c in grid.validate()] == ["fan_in"]


# --- logit scale --------------------------------------------------------------------------------

def stepper_for(model_type, **train):
    torch.manual_seed(0)
    spec = TrainSpec(samples_seen=64, global_batch=8, lr=1e-3, **train)
    task = create_task(ModelSpec(model_type, "cpu-w32-l1"), logit_scale_clamp=spec.logit_scale_clamp)
    return task, Stepper(task, build_optimizer(task, spec), spec, torch.device("cpu"))


@pytest.mark.parametrize("model_type", ["clip", "mammut"])
def test_logit_scale_is_clamped_in_place_after_each_step(model_type):
    """open_clip_train: the parameter itself to [0, ln 100], and a temperature past the bound
    still has a gradient (the earlier in-loss clamp made it exactly 0)."""
    task, stepper = stepper_for(model_type)
    images, texts = global_batch()
    for start, bound in ((5.0, LN_100), (-1.0, 0.0)):
        with torch.no_grad():
            task.model.logit_scale.fill_(start)
        stepper.step(images, texts, lr=1e-3)
        assert task.model.logit_scale.grad != 0
        assert task.model.logit_scale.item() == bound


def test_opt_in_loss_clamp_is_the_earlier_rule():
    task, stepper = stepper_for("clip", logit_scale_clamp="loss")
    with torch.no_grad():
        task.model.logit_scale.fill_(5.0)
    stepper.step(*global_batch(), lr=1e-3)
    assert task.model.logit_scale.grad == 0  # pinned: exp(5) clamped at 100 inside the loss
    assert task.model.logit_scale.item() == 5.0


def test_stepper_refuses_a_task_clamping_otherwise_than_the_cell():
    torch.manual_seed(0)
    task = create_task(ModelSpec("clip", "cpu-w32-l1"))  # "param"
    spec = TrainSpec(samples_seen=64, global_batch=8, lr=1e-3, logit_scale_clamp="loss")
    with pytest.raises(ValueError, match="clamps the logit scale"):
        Stepper(task, build_optimizer(task, spec), spec, torch.device("cpu"))


# --- weight decay -------------------------------------------------------------------------------

def decayed_names(model_type, **train) -> set[str]:
    torch.manual_seed(0)
    task = create_task(ModelSpec(model_type, "cpu-w32-l1"))
    optimizer = build_optimizer(task, TrainSpec(samples_seen=64, global_batch=8, lr=1e-3, **train))
    decayed = {id(p) for group in optimizer.param_groups if group["weight_decay"] > 0
               for p in group["params"]}
    names = {name for name, p in task.named_parameters() if id(p) in decayed}
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(list(task.parameters()))
    return names


@pytest.mark.parametrize("model_type", ["clip", "mammut"])
def test_weight_decay_groups_are_open_clip_trains(model_type):
    """Exempt exactly: ndim < 2, or a name holding "bn", "ln", "bias" or "logit_scale"."""
    torch.manual_seed(0)
    task = create_task(ModelSpec(model_type, "cpu-w32-l1"))
    expected = {name for name, p in task.named_parameters()
                if not (p.ndim < 2 or any(m in name for m in ("bn", "ln", "bias", "logit_scale")))}
    decayed = decayed_names(model_type)
    assert decayed == expected
    text = "model.text." if model_type == "mammut" else "model."
    assert {f"{text}token_embedding.weight", f"{text}positional_embedding",
            "model.visual.positional_embedding"} <= decayed  # the earlier rule exempted these
    assert "model.logit_scale" not in decayed and "model.visual.class_embedding" not in decayed


@pytest.mark.parametrize("model_type", ["clip", "mammut"])
def test_opt_in_embedding_exemption(model_type):
    decayed = decayed_names(model_type, no_decay_embeddings=True)
    assert not any("embedding" in name or "norm" in name for name in decayed)
    assert decayed < decayed_names(model_type)


# --- MaMMUT init --------------------------------------------------------------------------------

@pytest.mark.parametrize("init, std", [("normal", 1.0), ("fan_in", 64 ** -0.5)])
def test_mammut_map_viz2txt_init(init, std):
    """The fork draws the image-to-text map from N(0, 1); "fan_in" divides by sqrt(width)."""
    torch.manual_seed(0)
    task = create_task(ModelSpec("mammut", "cpu-w64-l2", map_viz2txt_init=init))
    weights = task.model.map_viz2txt_kv
    assert weights.shape == (64, 64)
    assert weights.std().item() == pytest.approx(std, rel=0.05)  # 4096 draws: ~1% spread


# --- gradient accumulation ----------------------------------------------------------------------

@pytest.mark.parametrize("model_type", ["clip", "mammut"])
@pytest.mark.parametrize("micro_batch", [2, 3])  # 3: uneven micro-batches (3 + 3 + 2)
def test_micro_batches_do_not_change_the_loss_or_gradients(model_type, micro_batch):
    """One worker, the global batch in micro-batches == at once: contrastive loss over the whole
    batch, caption token mean over the whole batch, logit-scale gradient counted once."""
    images, texts = global_batch()
    reference = accumulate(model_type, images, texts, micro_batch=0)
    accumulated = accumulate(model_type, images, texts, micro_batch=micro_batch)
    assert_same_step(*accumulated, *reference, f"{model_type} micro_batch={micro_batch}")


def test_opt_in_micro_negatives_change_the_contrastive_loss():
    images, texts = global_batch()
    reference, _ = accumulate("clip", images, texts, micro_batch=0)
    micro, _ = accumulate("clip", images, texts, micro_batch=2, contrastive_batch="micro")
    assert micro["contrastive_loss"] < 0.8 * reference["contrastive_loss"]  # 2 vs 8 negatives
    same, _ = accumulate("clip", images, texts, micro_batch=0, contrastive_batch="micro")
    assert same == reference  # no micro-batching: the two settings agree


def test_feature_cache_refuses_a_stochastic_forward():
    torch.manual_seed(0)
    task = create_task(ModelSpec("clip", "cpu-w32-l1"))
    task.model.transformer.resblocks[0].attn.dropout = 0.1
    spec = TrainSpec(samples_seen=64, global_batch=8, lr=1e-3, micro_batch=2)
    with pytest.raises(ValueError, match="deterministic forward"):
        Stepper(task, build_optimizer(task, spec), spec, torch.device("cpu"))
    Stepper(task, build_optimizer(task, spec), dataclasses.replace(spec, micro_batch=0),
            torch.device("cpu"))  # nothing cached: fine


# --- tokenizer / pooling plumbing ---------------------------------------------------------------

@pytest.mark.parametrize("model_type", ["clip", "mammut"])
def test_training_tokenizer_is_the_one_the_model_pools_for(synth_shards, model_type):
    """The data pipeline's tokenizer comes from the model profile; the loop checks the pair."""
    from vlscale.platform.data import open_shards
    from vlscale.platform.train.evaluate import preprocess_for

    torch.manual_seed(0)
    task = create_task(ModelSpec(model_type, "cpu-w32-l1"))
    preprocess = preprocess_for(open_shards(str(synth_shards / "train")), task.profile)
    tokenizer = preprocess.build_tokenizer()
    assert tokenizer.kind == task.profile.tokenizer == "words"
    task.check_tokenizer(tokenizer)
    if model_type == "clip":
        assert (task.model.text_pool_type, task.model.text_eos_id) == ("eos", tokenizer.eot_id)

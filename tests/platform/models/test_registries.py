"""Model types are registry entries: an unknown name fails loudly, a new family is one module.

`dummy_family.py` registers a family vlscale has never heard of ("sigmoid-clip"); the tests show
it validates, builds, profiles, trains a step and reports its own loss with no other edit.
"""

from __future__ import annotations

import pytest
import torch

from vlscale.errors import UserError
from vlscale.platform.config import Cell, DataSpec, ModelSpec, TrainSpec
from vlscale.platform.models import (
    build_model,
    create_task,
    forget_profiles_in_memory,
    list_architectures,
    model_profile,
)
from vlscale.platform.models.families import MODEL_FAMILIES, ModelFamily, model_types
from vlscale.platform.models.tokenizers import build_tokenizer
from vlscale.platform.train.steps import Stepper, build_optimizer
from vlscale.registry import Registry

from helpers.registries import imported

ARCH = "cpu-w32-l1"


@pytest.fixture
def dummy_family():
    with imported("dummy_family", MODEL_FAMILIES, "sigmoid-clip") as module:
        yield module
    forget_profiles_in_memory()


def test_registry_lists_known_names_and_refuses_duplicates():
    registry: Registry[int] = Registry("colour")
    registry.register("red", 1)

    @registry.register("green")
    def green() -> int:
        return 2

    assert registry.names() == ("red", "green") and registry.get("green") is green
    with pytest.raises(UserError) as error:
        registry.get("blue")
    assert str(error.value) == "unknown colour 'blue': known: red, green"
    with pytest.raises(ValueError, match="already registered"):
        registry.register("red", 3)
    assert registry.unregister("red") == 1 and registry.names() == ("green",)


@pytest.mark.parametrize("call", [
    lambda: Cell(ModelSpec("siglip", ARCH), DataSpec("d", "/x"),
                 TrainSpec(samples_seen=64, global_batch=8, lr=1e-3)).validate(),
    lambda: build_model("siglip", ARCH, device="meta"),
    lambda: list_architectures("cpu", "siglip"),
    lambda: create_task(ModelSpec("siglip", ARCH)),
])
def test_unknown_model_type_is_one_line_listing_the_known_ones(call):
    with pytest.raises(UserError) as error:
        call()
    assert str(error.value) == "unknown model type 'siglip': known: clip, mammut"


def test_family_specific_setting_is_refused_by_other_families():
    with pytest.raises(UserError, match="map_viz2txt_init applies to MaMMUT only"):
        create_task(ModelSpec("clip", ARCH, map_viz2txt_init="fan_in"))


def test_a_new_family_module_is_built_trained_and_profiled_with_no_other_edit(dummy_family):
    name = dummy_family.NAME
    assert model_types() == ("clip", "mammut", name)
    assert list_architectures("cpu", name) == list_architectures("cpu")
    cell = Cell(ModelSpec(name, ARCH), DataSpec("d", "/x"),
                TrainSpec(samples_seen=64, global_batch=8, lr=1e-3))
    cell.validate()
    with pytest.raises(UserError, match="applies to MaMMUT only"):
        create_task(ModelSpec(name, ARCH, map_viz2txt_init="fan_in"))

    torch.manual_seed(0)
    task = create_task(cell.model)
    assert isinstance(task.local_contrastive_loss, dummy_family.PairwiseSigmoidLoss)
    profile = model_profile(name, ARCH)
    assert profile.name == ARCH and profile.gflops == model_profile("clip", ARCH).gflops
    vocabulary = [f"w{i}" for i in range(64)]
    task.check_tokenizer(build_tokenizer(profile.tokenizer, profile.context_length, vocabulary,
                                         profile.vocab_size))
    images = torch.randn(8, 3, profile.image_size, profile.image_size)
    texts = torch.randint(4, profile.vocab_size, (8, profile.context_length))
    losses = task(images, texts)
    assert set(losses) == {"loss", "contrastive_loss"}  # no caption term: captions=False
    out = task.model(images, texts)
    expected = dummy_family.PairwiseSigmoidLoss()(out["image_features"], out["text_features"],
                                                  out["logit_scale"])
    assert float(losses["loss"].detach()) == float(expected.detach())

    before = [p.detach().clone() for p in task.parameters()]
    stepper = Stepper(task, build_optimizer(task, cell.train), cell.train, torch.device("cpu"))
    result = stepper.step(images, texts, lr=1e-3)
    assert result.losses["loss"] == float(expected.detach())  # the same forward, unweighted
    assert any(not torch.equal(b, p) for b, p in zip(before, task.parameters()))


def test_unregistered_family_is_unknown_again(dummy_family):
    MODEL_FAMILIES.unregister(dummy_family.NAME)
    try:
        with pytest.raises(UserError, match="known: clip, mammut$"):
            build_model(dummy_family.NAME, ARCH, device="meta")
    finally:
        MODEL_FAMILIES.register(dummy_family.NAME, dummy_family.FAMILY)


def test_family_entries_are_frozen_declarations():
    family = MODEL_FAMILIES.get("mammut")
    assert isinstance(family, ModelFamily) and family.captions and family.settings
    with pytest.raises(AttributeError):
        family.captions = False  # type: ignore[misc]

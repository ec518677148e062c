"""Two real gloo processes: the gathered contrastive loss and the DDP gradients equal those of one
process on the same global batch, for CLIP and MaMMUT."""

import pytest
import torch
from torch.nn.parallel import DistributedDataParallel

from vlscale.platform.config import ModelSpec
from vlscale.platform.models import create_task

from helpers.distributed import reduction_rtol, rounding_tolerance, run_gloo

ARCH = "cpu-w32-l1"
GLOBAL_BATCH = 8
WORLD_SIZE = 2
MODEL_TYPES = ("clip", "mammut")
CONTEXT_LENGTH = 32
TERMS = GLOBAL_BATCH * CONTEXT_LENGTH
"""Per-sample / per-token contributions summed into one gradient entry, per rank and then
all-reduced in the DDP run, all at once in the reference."""
LOSS_RTOL = reduction_rtol(TERMS)


def global_batch():
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(GLOBAL_BATCH, 3, 32, 32, generator=generator)
    texts = torch.zeros(GLOBAL_BATCH, CONTEXT_LENGTH, dtype=torch.long)
    texts[:, :12] = torch.randint(4, 512, (GLOBAL_BATCH, 12), generator=generator)
    return images, texts  # every caption has 11 target tokens: local means average to the global


def new_task(model_type, rank=0, world_size=1):
    torch.manual_seed(0)
    return create_task(ModelSpec(model_type, ARCH), rank=rank, world_size=world_size)


def run_rank(rank, out_dir):
    images, texts = global_batch()
    local = slice(rank * GLOBAL_BATCH // WORLD_SIZE, (rank + 1) * GLOBAL_BATCH // WORLD_SIZE)
    results = {}
    for model_type in MODEL_TYPES:
        task = new_task(model_type, rank, WORLD_SIZE)
        ddp_task = DistributedDataParallel(task)  # keep it alive through backward
        losses = ddp_task(images[local], texts[local])
        losses["loss"].backward()
        results[model_type] = {
            "losses": {name: value.item() for name, value in losses.items()},
            "grads": {name: p.grad.clone() for name, p in task.named_parameters()},
        }
    torch.save(results, f"{out_dir}/rank{rank}.pt")


@pytest.mark.timeout(180)
def test_gathered_loss_and_ddp_gradients_match_one_process(tmp_path):
    run_gloo(run_rank, WORLD_SIZE, str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]
    images, texts = global_batch()
    for model_type in MODEL_TYPES:
        task = new_task(model_type)
        reference = task(images, texts)
        reference["loss"].backward()
        for rank in ranks:
            assert rank[model_type]["losses"]["contrastive_loss"] == pytest.approx(
                reference["contrastive_loss"].item(), rel=LOSS_RTOL)
        if model_type == "mammut":
            mean_caption = sum(r["mammut"]["losses"]["caption_loss"] for r in ranks) / WORLD_SIZE
            assert mean_caption == pytest.approx(reference["caption_loss"].item(), rel=LOSS_RTOL)
        for name, p in task.named_parameters():
            for rank in ranks:
                torch.testing.assert_close(rank[model_type]["grads"][name], p.grad, rtol=0,
                                           atol=rounding_tolerance(p.grad, TERMS),
                                           msg=lambda m, name=name, kind=model_type:
                                           f"{kind} {name}: {m}")

"""Two real gloo processes: the gathered contrastive loss and the DDP gradients equal those of one
process on the same global batch, for CLIP and MaMMUT."""

import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from vlscale.platform.config import ModelSpec
from vlscale.platform.models import create_task

ARCH = "cpu-w32-l1"
GLOBAL_BATCH = 8
WORLD_SIZE = 2
MODEL_TYPES = ("clip", "mammut")
CONTEXT_LENGTH = 32
FLOAT32_EPS = torch.finfo(torch.float32).eps
SAFETY = 8.0
"""Headroom over the measured spread (at most ~1.5x the estimate below, on this ladder)."""
LOSS_RTOL = SAFETY * math.sqrt(GLOBAL_BATCH * CONTEXT_LENGTH) * FLOAT32_EPS


def rounding_tolerance(expected: torch.Tensor, terms: int) -> float:
    """Absolute spread float32 leaves between two evaluations of the same gradient that add the
    same `terms` per-sample/per-token contributions in another grouping (here: per rank, then
    all-reduced): ~sqrt(terms) x eps x the tensor's magnitude, times a safety factor for the
    layers the error passes through. A fixed atol fails on CPUs whose kernels round differently."""
    return SAFETY * math.sqrt(terms) * FLOAT32_EPS * max(float(expected.abs().max()), 1e-30)


def global_batch():
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(GLOBAL_BATCH, 3, 32, 32, generator=generator)
    texts = torch.zeros(GLOBAL_BATCH, CONTEXT_LENGTH, dtype=torch.long)
    texts[:, :12] = torch.randint(4, 512, (GLOBAL_BATCH, 12), generator=generator)
    return images, texts  # every caption has 11 target tokens: local means average to the global


def new_task(model_type, rank=0, world_size=1):
    torch.manual_seed(0)
    return create_task(ModelSpec(model_type, ARCH), rank=rank, world_size=world_size)


def run_rank(rank, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
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
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(180)
def test_gathered_loss_and_ddp_gradients_match_one_process(tmp_path):
    mp.spawn(run_rank, args=(free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
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
        terms = GLOBAL_BATCH * CONTEXT_LENGTH
        for name, p in task.named_parameters():
            for rank in ranks:
                torch.testing.assert_close(rank[model_type]["grads"][name], p.grad, rtol=0,
                                           atol=rounding_tolerance(p.grad, terms),
                                           msg=lambda m, name=name: f"{model_type} {name}: {m}")

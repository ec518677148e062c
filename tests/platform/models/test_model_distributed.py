"""Two real gloo processes: the gathered contrastive loss and the DDP gradients equal those of one
process on the same global batch, for CLIP and MaMMUT."""

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


def global_batch():
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(GLOBAL_BATCH, 3, 32, 32, generator=generator)
    texts = torch.zeros(GLOBAL_BATCH, 32, dtype=torch.long)
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
                reference["contrastive_loss"].item(), rel=1e-5)
        if model_type == "mammut":
            mean_caption = sum(r["mammut"]["losses"]["caption_loss"] for r in ranks) / WORLD_SIZE
            assert mean_caption == pytest.approx(reference["caption_loss"].item(), rel=1e-5)
        for name, p in task.named_parameters():
            for rank in ranks:
                torch.testing.assert_close(rank[model_type]["grads"][name], p.grad,
                                           rtol=1e-4, atol=1e-6)

"""Gradient accumulation does not change the objective: one worker stepping the whole global
batch at once and two real gloo workers (DDP) stepping it in two micro-batches each give the
same losses and gradients, for CLIP and MaMMUT (captions of different lengths, so MaMMUT's token
mean must be over the whole global batch, not per worker or per micro-batch)."""

import pytest
import torch
from torch.nn.parallel import DistributedDataParallel

from vlscale.platform.config import ModelSpec, TrainSpec
from vlscale.platform.models import create_task
from vlscale.platform.models.tokenizers import EOT_ID, SOT_ID
from vlscale.platform.train.steps import Stepper, build_optimizer

from helpers.distributed import reduction_rtol, rounding_tolerance, run_gloo

ARCH = "cpu-w32-l1"
GLOBAL_BATCH = 8
CONTEXT_LENGTH = 32
WORLD_SIZE = 2
MICRO_BATCH = 2  # 4 rows per worker: 2 micro-batches each
MODEL_TYPES = ("clip", "mammut")
TERMS = GLOBAL_BATCH * CONTEXT_LENGTH
"""Contributions summed into one gradient entry (samples x positions)."""
LOSS_RTOL = reduction_rtol(TERMS)


def global_batch():
    """Captions of 3 to 13 words: per-worker or per-micro-batch token means would differ."""
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(GLOBAL_BATCH, 3, 32, 32, generator=generator)
    texts = torch.zeros(GLOBAL_BATCH, CONTEXT_LENGTH, dtype=torch.long)
    for row in range(GLOBAL_BATCH):
        words = 3 + (5 * row) % 11
        texts[row, 0] = SOT_ID
        texts[row, 1:words + 1] = torch.randint(4, 512, (words,), generator=generator)
        texts[row, words + 1] = EOT_ID
    return images, texts


def accumulate(model_type, images, texts, micro_batch, rank=0, world_size=1, **train):
    """(losses, gradients) of one worker's `accumulate_gradients` on its rows."""
    torch.manual_seed(0)
    spec = TrainSpec(samples_seen=GLOBAL_BATCH, global_batch=GLOBAL_BATCH, lr=1e-3, grad_clip=0,
                     micro_batch=micro_batch, **train)
    task = create_task(ModelSpec(model_type, ARCH), rank=rank, world_size=world_size,
                       logit_scale_clamp=spec.logit_scale_clamp)
    if model_type == "mammut":  # a zero vocabulary head passes no gradient to the decoder
        torch.nn.init.normal_(task.model.text.vocab_projection, std=0.1)
    model = DistributedDataParallel(task) if world_size > 1 else task
    stepper = Stepper(model, build_optimizer(task, spec), spec, torch.device("cpu"))
    losses = stepper.accumulate_gradients(images, texts)
    return losses, {name: p.grad.clone() for name, p in task.named_parameters()}


def run_rank(rank, out_dir):
    images, texts = global_batch()
    rows = slice(rank * GLOBAL_BATCH // WORLD_SIZE, (rank + 1) * GLOBAL_BATCH // WORLD_SIZE)
    results = {model_type: accumulate(model_type, images[rows], texts[rows], MICRO_BATCH,
                                      rank=rank, world_size=WORLD_SIZE)
               for model_type in MODEL_TYPES}
    torch.save(results, f"{out_dir}/rank{rank}.pt")


def assert_same_step(losses, grads, reference_losses, reference_grads, what):
    assert set(losses) == set(reference_losses)
    for key, value in reference_losses.items():
        assert losses[key] == pytest.approx(value, rel=LOSS_RTOL), (what, key)
    for name, expected in reference_grads.items():
        torch.testing.assert_close(grads[name], expected, rtol=0,
                                   atol=rounding_tolerance(expected, TERMS),
                                   msg=lambda message, name=name: f"{what} {name}: {message}")


@pytest.mark.timeout(240)
def test_two_workers_two_micro_batches_equal_one_worker_one_batch(tmp_path):
    run_gloo(run_rank, WORLD_SIZE, str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]
    images, texts = global_batch()
    for model_type in MODEL_TYPES:
        reference_losses, reference_grads = accumulate(model_type, images, texts, micro_batch=0)
        for rank, results in enumerate(ranks):
            losses, grads = results[model_type]
            assert_same_step(losses, grads, reference_losses, reference_grads,
                             f"{model_type} rank {rank}")

"""Real multi-process torch.distributed runs on CPU (gloo) and the float32 tolerance that
comparing their reductions with one process needs."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import torch

from helpers.ports import free_port

FLOAT32_EPS = torch.finfo(torch.float32).eps
SAFETY = 8.0
"""Headroom over the measured spread (at most ~1.5x the estimate, on the CPU ladder's models);
the factor covers the layers a rounding error passes through, not any one CPU's kernels."""


def reduction_rtol(terms: int, safety: float = SAFETY) -> float:
    """Relative float32 spread between two groupings of the same sum of `terms` contributions
    (per rank then all-reduced, or per micro-batch then accumulated): rounding errors of
    `terms` additions grow like a random walk, ~sqrt(terms) x eps."""
    return safety * math.sqrt(terms) * FLOAT32_EPS


def rounding_tolerance(expected: torch.Tensor, terms: int, safety: float = SAFETY) -> float:
    """Absolute tolerance for comparing `expected` (a gradient summed over `terms` per-sample /
    per-token contributions) with the same value reduced in another grouping: the relative
    spread times the tensor's magnitude. A fixed atol fails on CPUs whose kernels round
    differently (1.7e-6 against 1e-6 on one)."""
    return reduction_rtol(terms, safety) * max(float(expected.abs().max()), 1e-30)


def run_gloo(worker: Callable[..., None], world_size: int, *args: Any) -> None:
    """Run `worker(rank, *args)` in `world_size` fresh processes joined in one gloo process
    group (one math thread each, so two ranks fit on two cores); raises if any rank fails.
    `worker` must be a module-level function (the processes are spawned, not forked)."""
    import torch.multiprocessing as mp

    mp.spawn(_gloo_rank, args=(worker, world_size, free_port(), args), nprocs=world_size,
             join=True)


def _gloo_rank(rank: int, worker: Callable[..., None], world_size: int, port: int,
               args: tuple[Any, ...]) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        worker(rank, *args)
    finally:
        dist.destroy_process_group()

"""Platform overhead of training: vlscale's Ray Train loop vs a bare PyTorch loop, same run.

Both train the same model at the same global batch on one worker; the bare loop reads random
in-memory tensors, vlscale streams real synthetic shards through Ray Data, steps through its
segment plan and logs to MLflow. Printed: samples/s of each (steady state: the first steps are
excluded from both) and their ratio (target >= 0.9).

    python bench/train_overhead.py [--arch cpu-w64-l2] [--model-type mammut] [--samples 8192]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

WARMUP_STEPS = 5


def bare_loop(model_type: str, arch: str, batch: int, steps: int) -> float:
    import torch

    from vlscale.platform.config import ModelSpec, TrainSpec
    from vlscale.platform.models import create_task, model_profile
    from vlscale.platform.train.steps import build_optimizer

    profile = model_profile(model_type, arch)
    torch.manual_seed(0)
    task = create_task(ModelSpec(model_type, arch))
    optimizer = build_optimizer(task, TrainSpec(samples_seen=1, global_batch=batch, lr=1e-3))
    images = torch.randn(batch, 3, profile.image_size, profile.image_size)
    texts = torch.randint(4, 60, (batch, profile.context_length))
    for step in range(WARMUP_STEPS + steps):
        if step == WARMUP_STEPS:
            started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        task(images, texts)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(task.parameters(), 1.0)
        optimizer.step()
    return batch * steps / (time.perf_counter() - started)


def vlscale_loop(model_type: str, arch: str, batch: int, samples: int, work: Path) -> float:
    from vlscale import tracking
    from vlscale.platform.config import Cell, DataSpec, ModelSpec, ResourceSpec, TrainSpec
    from vlscale.platform.data.synth import write_synth
    from vlscale.platform.train.runner import run_cell

    write_synth(work / "synth", samples=samples, image_size=32, seed=0, eval_samples=256,
                zeroshot_samples=0)
    cell = Cell(ModelSpec(model_type, arch),
                DataSpec("synth", str(work / "synth" / "train"), str(work / "synth" / "eval"),
                         eval_samples=256),
                TrainSpec(samples_seen=samples, global_batch=batch, lr=1e-3),
                ResourceSpec(1, 1, cpus_per_worker=1.0))
    uri = f"sqlite:///{work / 'mlflow.db'}"
    run_cell(cell, tracking_uri=uri, storage_path=str(work / "ray"), log_every_steps=1000)
    run = tracking.find_cell_run(uri, cell.cell_hash)
    curves = tracking.read_curves(uri, run.run_id)
    steady = curves.iloc[WARMUP_STEPS:]
    return batch * len(steady) / steady["step_seconds"].sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-type", default="mammut")
    parser.add_argument("--arch", default="cpu-w64-l2")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--samples", type=int, default=8192)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import torch

    torch.set_num_threads(1)  # the vlscale worker trains with one thread per reserved CPU
    with tempfile.TemporaryDirectory() as tmp:
        platform = vlscale_loop(args.model_type, args.arch, args.batch, args.samples, Path(tmp))
    bare = bare_loop(args.model_type, args.arch, args.batch, args.samples // args.batch)
    print(f"{args.model_type} {args.arch}, global batch {args.batch}, 1 worker, CPU")
    print(f"bare PyTorch loop (in-memory tensors): {bare:9.1f} samples/s")
    print(f"vlscale Ray Train loop (Ray Data):     {platform:9.1f} samples/s")
    print(f"ratio vlscale / bare: {platform / bare:.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()

"""`--dry-run`: every cell with its GFLOPs per sample, compute, and an accelerator-hour estimate.

The estimate comes from throughput probes measured here and now: a few training steps of each
architecture, smallest first, on this machine's accelerator (CUDA if present, else CPU) give its
samples/s per worker, so accelerator-hours = samples processed / rate / 3600. Once a probe gets
slow (PROBE_BUDGET_S), bigger architectures are priced by the last measured training FLOP rate
(forward + backward = 3 x forward FLOPs) instead, and the table marks them "~".
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from vlscale.platform.config import Cell, GridSpec

PROBE_STEPS = 3
PROBE_MAX_BATCH = 64
PROBE_BUDGET_S = 5.0
PROBE_GFLOPS_PER_STEP = 2.0


@dataclass(frozen=True)
class Probe:
    arch: str
    model_type: str
    device: str
    samples_per_second: float
    gflops_per_second: float
    seconds: float


def measure_probe(cell: Cell) -> Probe:
    import torch

    from vlscale.platform.models import create_task, model_profile
    from vlscale.platform.train.steps import Stepper, build_optimizer

    profile = model_profile(cell.model.model_type, cell.model.arch)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    task = create_task(cell.model, device=device)
    stepper = Stepper(task, build_optimizer(task, cell.train), cell.train, device)
    # A big model on a CPU gets a tiny probe batch: the probe prices, it does not benchmark.
    batch = max(1, min(cell.train.global_batch // cell.resources.max_workers, PROBE_MAX_BATCH,
                       int(PROBE_GFLOPS_PER_STEP / profile.gflops)))
    images = torch.randn(batch, 3, profile.image_size, profile.image_size, device=device)
    texts = torch.randint(4, min(profile.vocab_size, 500), (batch, profile.context_length),
                          device=device)
    stepper.step(images, texts, cell.train.lr)  # warm-up (allocations, kernels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(PROBE_STEPS):
        stepper.step(images, texts, cell.train.lr)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    samples_per_second = batch * PROBE_STEPS / seconds
    return Probe(cell.model.arch, cell.model.model_type, device.type, samples_per_second,
                 3 * profile.gflops * samples_per_second, seconds)


def probe_rates(cells: list[Cell], gflops: dict[str, float]) -> dict[str, tuple[float, bool]]:
    """{model_type/arch: (samples/s per worker, measured?)}, probing smallest first."""
    rates: dict[str, tuple[float, bool]] = {}
    last: Probe | None = None
    for cell in sorted(cells, key=lambda c: gflops[c.model.key]):
        key = cell.model.key
        if key in rates:
            continue
        if last is None or last.seconds < PROBE_BUDGET_S:
            last = measure_probe(cell)
            rates[key] = (last.samples_per_second, True)
        else:
            rates[key] = (last.gflops_per_second / (3 * gflops[key]), False)
    return rates



def print_dry_run(grid: GridSpec) -> None:
    from vlscale.errors import UserError
    from vlscale.platform.sweep.driver import architecture_gflops, validate_grid
    from vlscale.platform.train.runner import check_cell_data
    from vlscale.platform.train.segments import plan_segments, samples_processed

    cells = validate_grid(grid, check_data=False)
    try:
        for cell in cells:
            check_cell_data(cell)
        data_note = "data: every shard set opened"
    except UserError as error:
        data_note = f"data: WARNING: {error}"
    import torch

    gflops = architecture_gflops(cells)
    rates = probe_rates(cells, gflops)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"sweep {grid.name}: {len(cells)} cells; {data_note}")
    print(f"probe: training steps of each architecture on {device} (~: extrapolated by FLOPs)")
    print(f"{'cell':<14}{'procedure':<26}{'run':<30}{'GFLOPs/sample':>14}{'compute':>12}"
          f"{'samples/s':>11}{'acc-hours':>11}")
    total_compute = total_hours = 0.0
    for cell in sorted(cells, key=lambda c: (c.procedure, gflops[c.model.key], c.train.samples_seen)):
        per_sample = gflops[cell.model.key]
        rate, measured = rates[cell.model.key]
        processed = samples_processed(plan_segments(cell.train))
        compute = per_sample * cell.train.samples_seen
        hours = processed / rate / 3600
        total_compute += compute
        total_hours += hours
        mark = " " if measured else "~"
        print(f"{cell.cell_hash:<14}{cell.procedure[:25]:<26}{cell.run_name[:29]:<30}"
              f"{per_sample:>14.4g}{compute:>12.4g}{mark}{rate:>10.4g}{hours:>11.3g}")
    print(f"total: {total_compute:.4g} GFLOPs, about {total_hours:.3g} "
          "accelerator-hours at the probed rates")

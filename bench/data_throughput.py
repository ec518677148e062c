"""Decoded samples/s: the Ray Data pipeline (`WorkerBatches`) vs a single-process PIL loop.

Both decode, resize, tokenize and normalise the same rows of the same shards with the same
functions, in the same run; the baseline does it in one process, the pipeline in Ray Data tasks
on every CPU of a local cluster. Also reports how long the consumer waited for data, both when
it only consumes and when it spends `--step-ms` per batch as a stand-in for a training step.

    .venv/bin/python bench/data_throughput.py                      # writes synth shards first
    .venv/bin/python bench/data_throughput.py --shards data/synth/train --image-size 32
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from data_common import baseline, cpu_since, cpu_snapshot  # noqa: E402  (bench/ is the script folder)


def _baseline_in_process(job: tuple) -> float:
    shards, spec, samples, batch = job
    return baseline(shards, spec, samples, batch)


def plain_processes(shards, spec, samples: int, batch: int, processes: int) -> float:
    """The same loop in `processes` plain processes at once (no Ray): what the machine allows."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(_baseline_in_process, [(shards, spec, batch, batch)] * processes)  # warm up
        began = time.perf_counter()
        pool.map(_baseline_in_process, [(shards, spec, samples // processes, batch)] * processes)
        return samples / (time.perf_counter() - began)


def pipeline(shards, spec, samples: int, batch: int, step_seconds: float = 0.0, seed: int = 0):
    """(samples/s after the first batch, first-batch seconds, wait seconds, total seconds)."""
    from vlscale.platform.data import WorkerBatches

    batches = WorkerBatches(shards, spec, global_batch=batch, total_samples=samples, seed=seed)
    began = time.perf_counter()
    first = None
    for _ in batches:
        if first is None:
            first = time.perf_counter() - began
            steady_began, steady_wait = time.perf_counter(), batches.data_wait_seconds
        if step_seconds:
            time.sleep(step_seconds)
    total = time.perf_counter() - began
    steady = (samples - batch) / (time.perf_counter() - steady_began)
    return steady, first, batches.data_wait_seconds - steady_wait, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", help="shard folder (default: write synth shards first)")
    parser.add_argument("--source-size", type=int, default=64,
                        help="image side of the generated synth shards (64)")
    parser.add_argument("--rows", type=int, default=20_000, help="rows of generated shards")
    parser.add_argument("--image-size", type=int, default=32, help="model input side (32)")
    parser.add_argument("--samples", type=int, default=80_000, help="samples per measurement")
    parser.add_argument("--global-batch", type=int, default=256)
    parser.add_argument("--cpus", type=int, default=None, help="Ray CPUs (default: all)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="alternating measurements of each; medians are reported (3)")
    parser.add_argument("--step-ms", type=float, default=None,
                        help="simulated train step per batch (default: the measured per-batch "
                             "time of the single-process loop)")
    args = parser.parse_args()

    import ray

    from vlscale.platform.data import Preprocess, open_shards, ray_init_kwargs

    workdir = None
    if not args.shards:
        from vlscale.platform.data.synth import write_synth

        workdir = tempfile.mkdtemp(prefix="vlscale-bench-")
        write_synth(workdir, samples=args.rows, image_size=args.source_size, eval_samples=0,
                    zeroshot_samples=0)
        args.shards = f"{workdir}/train"
    shards = open_shards(args.shards)
    spec = Preprocess.for_shards(shards, args.image_size, context_length=32)
    init = ray_init_kwargs(args.cpus)
    ray.init(address="local", include_dashboard=False, log_to_driver=False, **init)
    cpus = int(ray.cluster_resources()["CPU"])
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start "
          "(other processes compete with both measurements)")
    print(f"shards: {args.shards} ({shards.num_rows} rows, source images "
          f"{shards.manifest.get('image_size', '?')} px) -> {args.image_size} px; "
          f"{args.samples} samples per run, global batch {args.global_batch}; Ray: {cpus} CPUs, "
          f"object store {init['object_store_memory'] / 2**20:.0f} MiB")

    pipeline(shards, spec, 2 * args.global_batch, args.global_batch)  # start Ray's workers
    singles, runs, cpu_single, cpu_pipeline = [], [], [], []
    for repeat in range(args.repeats):  # alternate, so that load from elsewhere hits both
        began = time.process_time()
        singles.append(baseline(shards, spec, args.samples, args.global_batch))
        cpu_single.append((time.process_time() - began) / args.samples)
        began = cpu_snapshot()
        runs.append(pipeline(shards, spec, args.samples, args.global_batch, seed=repeat))
        cpu_pipeline.append((cpu_since(began)) / args.samples)
    single = statistics.median(singles)
    steady, first, wait, total = sorted(runs)[len(runs) // 2]  # the run of median throughput
    print(f"single-process PIL loop : {single:9.0f} samples/s   "
          f"(runs: {', '.join(f'{v:.0f}' for v in singles)})")
    print(f"Ray Data pipeline       : {steady:9.0f} samples/s after the first batch "
          f"(runs: {', '.join(f'{r[0]:.0f}' for r in runs)}); "
          f"{args.samples / total:.0f}/s including the {first:.2f} s to the first batch")
    print(f"ratio pipeline / single : {steady / single:9.2f}x  (target >= 1.5x on 2 cores)")
    ceiling = plain_processes(shards, spec, args.samples, args.global_batch, cpus)
    print(f"same loop in {cpus} plain processes (no Ray, the machine's ceiling now): "
          f"{ceiling:.0f} samples/s = {ceiling / single:.2f}x; the pipeline reaches "
          f"{steady / ceiling:.0%} of it")
    per_single, per_pipeline = (1e6 * statistics.median(v) for v in (cpu_single, cpu_pipeline))
    print(f"CPU per sample          : single {per_single:.0f} us; pipeline {per_pipeline:.0f} us "
          f"(all processes: tasks, consumer, Ray) -> on {cpus} otherwise idle CPUs the ratio "
          f"would be about {cpus * per_single / per_pipeline:.2f}x")
    print(f"consumer waiting (consume only, median run): {wait:.2f} s of {total - first:.2f} s "
          "after the first batch")
    step = (args.step_ms / 1000 if args.step_ms is not None else args.global_batch / single)
    _, _, wait, total = pipeline(shards, spec, args.samples, args.global_batch, step)
    steps = -(-args.samples // args.global_batch)
    print(f"consumer waiting with a {step * 1000:.0f} ms step per batch: {wait:.2f} s of "
          f"{total:.2f} s ({wait / total:.0%}; {1000 * wait / steps:.1f} ms per step)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    ray.shutdown()
    if workdir:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

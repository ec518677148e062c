"""Data path scaling: 1, 2, 4 consuming ranks on a simulated multi-node cluster, at 224 px.

Per rank count it reports decoded samples/s and the CPU per sample of every process of the
cluster (the ranks included) against the plain single-process loop (in a process of its own,
without Ray) measured in the same run. Each figure is the median of `--repeats` runs after a
warm-up run at that rank count (worker processes started, imports done, so what a run pays once
on a fresh cluster is left out); the CPU of a run less what the idle cluster burns in its wall
time (measured first; ~20 Ray processes of a simulated cluster on one machine cost per second,
not per sample) is the `CPU per sample:` figure, and the runs' range follows it, then the same
against as many plain loops running at once as the machine has cores (a pipeline decodes on
every core, and a decode on a busy machine costs more CPU than on an idle one). And the bytes
per sample that passed through a process other than the consumers, as measured by the shared
coordinator itself (what it sent to the ranks and received from the window tasks). Then the
same for Ray Data's `read_parquet` + `streaming_split` (whose order depends on the cluster, so
vlscale does not train on it; see docs/design.md).

The cluster is `ray.cluster_utils.Cluster` (a head and `--nodes - 1` worker nodes, a few logical
CPUs each, on the machine's address); the shards are 256 px synth JPEGs (`--distinct` rendered
scenes repeated to `--rows` rows: decoding costs the same, rendering is slow).

    .venv/bin/python bench/data_scaling.py                              # ~2 min on 2 cores
    .venv/bin/python bench/data_scaling.py --rows 20000 --samples 20000 --nodes 4 --cpus-per-node 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from data_common import (  # noqa: E402  (bench/ is the script folder)
    cpu_since,
    cpu_snapshot,
    plain_loop,
    plain_loops_at_once,
)


def write_shards(directory: Path, rows: int, distinct: int, source_size: int,
                 rows_per_group: int) -> Path:
    """`rows` rows cycling through `distinct` rendered 256 px synth scenes (JPEG q95)."""
    from vlscale.platform.data.schema import ShardWriter, shard_schema, write_manifest
    from vlscale.platform.data.synth import synth_rows, vocabulary

    scenes = list(synth_rows(0, 0, distinct, split="train", image_size=source_size, seed=0))
    writer = ShardWriter(directory, shard_schema(), rows_per_shard=8 * rows_per_group,
                         rows_per_group=rows_per_group)
    for number in range(rows):
        writer.add({**scenes[number % distinct], "key": f"{number:09d}"})
    write_manifest(directory, writer="bench", split="train", parameters={}, seed=0,
                   shards=writer.close(), image_size=source_size, verified=True,
                   vocabulary=vocabulary())
    return directory


class Rank:
    """A consuming rank, long-lived like a Ray Train worker (torch imported once, at start)."""

    def __init__(self) -> None:
        import torch  # noqa: F401  (what a training worker has loaded before its first batch)

    def vlscale(self, rank: int, world_size: int, group: str, shards_dir: str, image_size: int,
                samples: int, global_batch: int, window_rows: int) -> tuple[int, dict]:
        """Iterate WorkerBatches (normalised float32 batches)."""
        from vlscale.platform.data import Preprocess, WorkerBatches, open_shards

        shards = open_shards(shards_dir)
        spec = Preprocess.for_shards(shards, image_size, context_length=32)
        batches = WorkerBatches(shards, spec, global_batch=global_batch, total_samples=samples,
                                world_rank=rank, world_size=world_size, group=group,
                                window_rows=window_rows)
        rows = sum(len(batch["row_id"]) for batch in batches)
        return rows, batches.coordinator_traffic

    def split(self, iterator, batch: int, mean, std) -> int:
        """One streaming_split consumer: the same normalisation of its batches."""
        from vlscale.platform.data.preprocess import to_model_images

        rows = 0
        for arrays in iterator.iter_batches(batch_size=batch, batch_format="numpy"):
            to_model_images(arrays["image"], mean, std)
            rows += len(arrays["image"])
        return rows


def decode_batch(table, spec):
    """Ray Data UDF for the comparison: the same decode, resize and tokenize as vlscale's."""
    import numpy as np

    from vlscale.platform.data.preprocess import prepare_rows
    from vlscale.platform.data.shards import RawRows

    count = table.num_rows
    raw = RawRows([None] * count, table.column("jpg").to_pylist(),
                  table.column("txt").to_pylist(), np.ones(count, dtype=bool), None)
    _, images, tokens, _, _ = prepare_rows(raw, np.arange(count), spec)
    return {"image": images, "text": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1536, help="rows of the shards (1536)")
    parser.add_argument("--distinct", type=int, default=192, help="rendered scenes (192)")
    parser.add_argument("--source-size", type=int, default=256, help="JPEG side (256)")
    parser.add_argument("--image-size", type=int, default=224, help="model input side (224)")
    parser.add_argument("--samples", type=int, default=1536,
                        help="samples per measured run (1536)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="measured runs per rank count, after one warm-up (3)")
    parser.add_argument("--global-batch", type=int, default=64)
    parser.add_argument("--rows-per-group", type=int, default=64)
    parser.add_argument("--window-rows", type=int, default=128,
                        help="rows per window task (128: ~20 MB of decoded blocks at 224 px)")
    parser.add_argument("--ranks", default="1,2,4", help="rank counts to measure (1,2,4)")
    parser.add_argument("--nodes", type=int, default=2, help="nodes incl. the head (2)")
    parser.add_argument("--cpus-per-node", type=int, default=4,
                        help="logical CPUs per node (4; Ray keeps that many idle workers per "
                             "node, so fewer would restart workers between measurements)")
    parser.add_argument("--store-mib", type=int, default=768, help="object store per node")
    parser.add_argument("--idle-seconds", type=float, default=4.0,
                        help="how long the idle cluster's CPU is measured (4)")
    parser.add_argument("--no-split", action="store_true",
                        help="skip the read_parquet + streaming_split comparison")
    args = parser.parse_args()

    import ray
    from ray.cluster_utils import Cluster

    from vlscale.platform.data import Preprocess, open_shards

    began = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="vlscale-scaling-"))
    shards_dir = write_shards(workdir / "train", args.rows, args.distinct, args.source_size,
                              args.rows_per_group)
    shards = open_shards(str(shards_dir))
    spec = Preprocess.for_shards(shards, args.image_size, context_length=32)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; shards: "
          f"{shards.num_rows} rows of {args.source_size} px JPEGs -> {args.image_size} px "
          f"({3 * args.image_size ** 2 / 1e3:.0f} KB decoded per sample); "
          f"{args.samples} samples per measurement, global batch {args.global_batch}")

    # Nodes take the machine's address (with 127.0.0.1 the cluster never comes up).
    node = {"num_cpus": args.cpus_per_node, "object_store_memory": args.store_mib * 2**20}
    cluster = Cluster(initialize_head=True, head_node_args={
        **node, "include_dashboard": False, "resources": {"node0": 1}})
    for index in range(1, args.nodes):
        cluster.add_node(**node, resources={f"node{index}": 1})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    print(f"cluster: {args.nodes} nodes x {args.cpus_per_node} logical CPUs, "
          f"{args.store_mib} MiB object store each (up in {time.perf_counter() - began:.0f} s "
          "with the shards)")
    try:
        most = max(int(r) for r in args.ranks.split(","))
        ranks = [ray.remote(num_cpus=0)(Rank).options(
            resources={f"node{rank % args.nodes}": 0.01}).remote() for rank in range(most)]

        def vlscale_run(world_size: int, samples: int) -> tuple[float, float, float, dict]:
            """(samples/s, CPU seconds of the cluster, wall seconds, coordinator traffic)."""
            group = uuid.uuid4().hex
            cpu, wall = cpu_snapshot(), time.perf_counter()
            results = ray.get([ranks[rank].vlscale.remote(
                rank, world_size, group, str(shards_dir), args.image_size, samples,
                args.global_batch, args.window_rows) for rank in range(world_size)])
            wall, cpu = time.perf_counter() - wall, cpu_since(cpu)
            assert sum(rows for rows, _ in results) == samples
            traffic = max((t for _, t in results), key=lambda t: t.get("sent_bytes", 0))
            return samples / wall, cpu, wall, traffic

        # Warm: start every worker process the measured runs use (one per window in flight).
        vlscale_run(most, args.samples)
        plains = [plain_loop(shards, spec, args.samples, args.global_batch)
                  for _ in range(args.repeats)]
        plain = statistics.median(rate for rate, _ in plains)
        plain_cpu = statistics.median(cpu for _, cpu in plains)
        print(f"plain single-process loop (own process, no Ray; median of {args.repeats}): "
              f"{plain:.0f} samples/s, {plain_cpu * 1e3:.2f} ms CPU per sample "
              f"(range {min(c for _, c in plains) * 1e3:.2f}-{max(c for _, c in plains) * 1e3:.2f})")
        cores = os.cpu_count() or 1
        together = [plain_loops_at_once(shards, spec, args.samples, args.global_batch, cores)
                    for _ in range(args.repeats)]
        contended = statistics.median(cpu for _, cpu in together)
        print(f"plain loops, {cores} at once (one per core, no Ray; median of {args.repeats}): "
              f"{statistics.median(rate for rate, _ in together):.0f} samples/s, "
              f"{contended * 1e3:.2f} ms CPU per sample = {contended / plain_cpu:.2f}x the "
              "single loop (what decoding on every core costs this machine)")
        # What the simulated cluster burns while nobody uses it (raylets, GCS, agents, idle
        # workers: ~20 processes on this one machine), per second: paid per second, not per
        # sample, so it is reported apart.
        snapshot = cpu_snapshot()
        time.sleep(args.idle_seconds)
        idle = cpu_since(snapshot) / args.idle_seconds
        print(f"idle cluster: {idle:.2f} CPU-s per second")
        for world_size in (int(r) for r in args.ranks.split(",")):
            vlscale_run(world_size, args.samples)  # warm-up at this rank count
            runs = [vlscale_run(world_size, args.samples) for _ in range(args.repeats)]
            rate = statistics.median(r for r, _, _, _ in runs)
            gross = [cpu / args.samples for _, cpu, _, _ in runs]
            work = [(cpu - idle * wall) / args.samples / plain_cpu for _, cpu, wall, _ in runs]
            traffic = runs[-1][3]
            via = (traffic.get("sent_bytes", 0) + traffic.get("received_bytes", 0)) / (
                args.samples)
            print(f"vlscale ranks={world_size} samples/s={rate:.0f} bytes via non-consumers/"
                  f"sample={via:.0f} incl. idle={statistics.median(gross) / plain_cpu:.2f}x, "
                  f"less the idle cluster's CPU per sample: {statistics.median(work):.2f}x the "
                  f"plain loop (runs {min(work):.2f}-{max(work):.2f}); "
                  f"{statistics.median(work) * plain_cpu / contended:.2f}x the {cores} plain "
                  "loops at once")
        if not args.no_split:
            import ray.data

            paths = [shard.path for shard in shards.files]
            for world_size in (int(r) for r in args.ranks.split(",")):
                dataset = ray.data.read_parquet(paths).select_columns(["jpg", "txt"]).map_batches(
                    decode_batch, batch_format="pyarrow", batch_size=args.global_batch,
                    fn_kwargs={"spec": spec})
                iterators = dataset.streaming_split(world_size, equal=False)
                cpu, wall = cpu_snapshot(), time.perf_counter()
                rows = sum(ray.get([ranks[rank].split.remote(
                    iterator, args.global_batch // world_size, spec.mean, spec.std)
                    for rank, iterator in enumerate(iterators)]))
                wall, cpu = time.perf_counter() - wall, cpu_since(cpu)
                print(f"streaming_split ranks={world_size} samples/s={rows / wall:.0f} "
                      f"bytes via non-consumers/sample=not measured (refs only) CPU per "
                      f"sample: {cpu / rows / plain_cpu:.2f}x the plain loop "
                      f"(one pass of {rows} rows, start included; order set by the cluster)")
    finally:
        ray.shutdown()
        # Node by node: Cluster.shutdown() runs `ray stop --force`, which would stop every
        # Ray on the machine, other users' clusters included.
        for node in list(cluster.worker_nodes):
            cluster.remove_node(node)
        cluster.remove_node(cluster.head_node)
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    print(f"total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()

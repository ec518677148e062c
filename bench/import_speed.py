"""Source rows/s of `vlscale data import`: the Ray import vs today's one-process importer.

Builds an img2dataset-like source (parquet shards of real JPEGs, a few bad rows of every kind),
then imports it with today's importer (`workers=1`: one process, the same streaming row loop,
decode-verify of every image) and with the Ray import (one Ray task per source slice,
`--workers` at a time, on an embedded local Ray), alternating `--repeats` times in the same
run; medians reported. The Ray figure is measured on a started cluster; the time to start the
embedded cluster is printed on its own line (a CLI import pays it once). Both outputs are
checked to be byte-identical.

    /work/venv/bin/python bench/import_speed.py                        # ~1-2 min on 2 CPUs
    /work/venv/bin/python bench/import_speed.py --shards 16 --rows-per-shard 1000 --repeats 5
    /work/venv/bin/python bench/import_speed.py --source my-img2dataset-output/
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from data_throughput import cpu_seconds  # bench/ is the script's folder: its CPU accounting

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def source_rows(source: Path) -> int:
    """Rows in the source's parquet footers (every row is read, kept or dropped)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(path).metadata.num_rows for path in sorted(source.glob("*.parquet")))


def timed_import(source: Path, out: Path, workers: int, slice_rows: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of every process) for one import into a fresh `out`."""
    from vlscale.platform.data.importer import import_shards

    shutil.rmtree(out, ignore_errors=True)
    cpu, began = cpu_seconds(), time.perf_counter()
    import_shards(source, out, workers=workers, slice_rows=slice_rows)
    return time.perf_counter() - began, cpu_seconds() - cpu


def _one_slice(job: tuple) -> None:
    from vlscale.platform.data.import_tasks import import_slice

    piece, rules, parts = job
    import_slice(piece, rules, parts)


def plain_processes(source: Path, parts: Path, workers: int, slice_rows: int) -> float:
    """Seconds for the same slice tasks in `workers` plain processes (no Ray): the machine's
    ceiling for the parallel import right now."""
    import multiprocessing

    from vlscale.platform.data.import_tasks import RowRules
    from vlscale.platform.data.sources import shard_slices

    slices = shard_slices(sorted(source.glob("*.parquet")), slice_rows)
    rules = RowRules(verify=True, label_key=None)
    shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir(parents=True)
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_one_slice, [(slices[0], rules, parts)] * workers)  # start-up, not timed
        shutil.rmtree(parts)
        parts.mkdir()
        began = time.perf_counter()
        pool.map(_one_slice, [(piece, rules, parts) for piece in slices], chunksize=1)
        return time.perf_counter() - began


def same_files(a: Path, b: Path) -> bool:
    """Same shard names and bytes (dataset.json aside: it names no worker count, but the
    outputs' paths differ)."""
    def files(folder: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in folder.glob("*.parquet")}
    return files(a) == files(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=None,
                        help="an img2dataset parquet folder to import (default: build one)")
    parser.add_argument("--shards", type=int, default=8, help="parquet shards to build (8)")
    parser.add_argument("--rows-per-shard", type=int, default=1250, help="rows per shard (1250)")
    parser.add_argument("--distinct-images", type=int, default=256,
                        help="different JPEGs in the built source, cycled (256; 0: all rows "
                             "differ, slower to build)")
    parser.add_argument("--image-size", type=int, default=256, help="JPEG side (256)")
    parser.add_argument("--bad-every", type=int, default=50,
                        help="every Nth row is bad, cycling through the kinds (50)")
    parser.add_argument("--workers", type=int, default=None,
                        help="Ray import tasks at a time (default: the CPUs)")
    parser.add_argument("--slice-rows", type=int, default=None,
                        help="source rows per import task (default: --rows-per-shard, one task "
                             "per shard as for real 10,000-row img2dataset shards; the "
                             "importer's own default, 10,000, would gather this small source "
                             "into one task)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each (3)")
    args = parser.parse_args()

    import ray

    from vlscale.platform.data import ray_init_kwargs
    from vlscale.platform.data.resources import available_cpus

    workers = args.workers or available_cpus()
    work = Path(tempfile.mkdtemp(prefix="import-speed-"))
    try:
        source = args.source
        if source is None:
            from vlscale.testing.import_sources import write_img2dataset_source

            began = time.perf_counter()
            source = write_img2dataset_source(
                work / "src", shards=args.shards, rows_per_shard=args.rows_per_shard,
                image_size=args.image_size, bad_every=args.bad_every,
                distinct_images=args.distinct_images or None)
            size = sum(p.stat().st_size for p in source.iterdir()) / 2**20
            print(f"built {args.shards} img2dataset parquet shards of {args.rows_per_shard} "
                  f"rows, {args.image_size} px JPEGs ({size:.1f} MiB) in "
                  f"{time.perf_counter() - began:.1f} s")
        rows = source_rows(source)
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the "
              "start (other processes compete with both measurements)")
        began = time.perf_counter()
        ray.init(address="local", include_dashboard=False, log_to_driver=False,
                 **ray_init_kwargs())
        print(f"embedded Ray start: {time.perf_counter() - began:.1f} s (paid once per CLI "
              "import; not in the Ray figures below)")
        slice_rows = args.slice_rows or args.rows_per_shard
        timed_import(source, work / "warm", workers, slice_rows)  # first Ray tasks: worker processes start
        single, parallel, cpu_single, cpu_parallel = [], [], [], []
        for _ in range(args.repeats):
            wall, cpu = timed_import(source, work / "single", 1, slice_rows)
            single.append(rows / wall)
            cpu_single.append(cpu / rows)
            wall, cpu = timed_import(source, work / "ray", workers, slice_rows)
            parallel.append(rows / wall)
            cpu_parallel.append(cpu / rows)
        ray.shutdown()
        assert same_files(work / "single", work / "ray"), "the two imports wrote different shards"
        ceiling = rows / plain_processes(source, work / "plain", workers, slice_rows)
        from vlscale.platform.data.sources import shard_slices

        slices = len(shard_slices(sorted(source.glob("*.parquet")), slice_rows))
        one, many = statistics.median(single), statistics.median(parallel)
        us_one, us_many = statistics.median(cpu_single) * 1e6, statistics.median(cpu_parallel) * 1e6
        print(f"source rows: {rows} in {slices} import tasks of <= {slice_rows} rows; runs "
              f"single {', '.join(f'{r:.0f}' for r in single)}; "
              f"ray {', '.join(f'{r:.0f}' for r in parallel)}")
        print(f"rows/s: {many:.0f} vs {one:.0f} ({many / one:.2f}x today's importer), "
              f"{workers} Ray workers; outputs byte-identical")
        print(f"same tasks in {workers} plain processes (no Ray, the machine's ceiling now): "
              f"{ceiling:.0f} rows/s = {ceiling / one:.2f}x")
        print(f"CPU per source row: single {us_one:.0f} us; ray {us_many:.0f} us (all "
              f"processes) -> on {workers} otherwise idle CPUs the ratio would be about "
              f"{workers * us_one / us_many:.2f}x")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""What the data benchmarks share: the plain single-process decode loop they compare against and
the CPU time of a process tree (a local Ray cluster's processes are the driver's descendants)."""

from __future__ import annotations

import time


def cpu_snapshot() -> dict[int, tuple[float, float]]:
    """(own, reaped children's) CPU seconds of this process and each descendant, by pid."""
    import psutil

    me = psutil.Process()
    times = {}
    for process in [me, *me.children(recursive=True)]:
        try:
            t = process.cpu_times()
            times[process.pid] = (t.user + t.system, t.children_user + t.children_system)
        except psutil.Error:  # exited between the listing and the reading
            pass
    return times


def cpu_since(before: dict[int, tuple[float, float]]) -> float:
    """CPU seconds the process tree spent since `before` (a `cpu_snapshot`).

    Per process, not a difference of totals: a Ray worker alive at the start that exits (an
    idle one Ray stops) would otherwise take its whole past with it. Its time moves into its
    parent's reaped-children time, from which its share before the start is taken back out."""
    after = cpu_snapshot()
    spent = 0.0
    for pid, (own, reaped) in after.items():
        own_before, reaped_before = before.get(pid, (0.0, 0.0))
        spent += own - own_before + reaped - reaped_before
    return spent - sum(own for pid, (own, _) in before.items() if pid not in after)


def baseline(shards, spec, samples: int, batch: int) -> float:
    """Single-process loop: read row group, PIL-decode + resize, tokenize, normalise; samples/s."""
    import numpy as np

    from vlscale.platform.data.preprocess import prepare_rows, to_model_images

    began, done, unit = time.perf_counter(), 0, 0
    while done < samples:
        raw = shards.read_unit(unit % len(shards.units))
        _, images, tokens, _, _ = prepare_rows(raw, np.arange(len(raw.keys)), spec)
        for start in range(0, len(images), batch):
            if done >= samples:
                break
            to_model_images(images[start:start + batch], spec.mean, spec.std)
            done += len(images[start:start + batch])
        unit += 1
    return done / (time.perf_counter() - began)


def _timed_baseline(job: tuple) -> tuple[float, float]:
    shards, spec, samples, batch = job
    began = time.process_time()
    rate = baseline(shards, spec, samples, batch)
    return rate, (time.process_time() - began) / samples


def plain_loop(shards, spec, samples: int, batch: int) -> tuple[float, float]:
    """(samples/s, CPU seconds per sample) of `baseline` in a fresh process without Ray: the
    driver of a Ray cluster has Ray's own threads, whose CPU would count as the loop's."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pool.apply(_timed_baseline, ((shards, spec, batch, batch),))  # imports, warm caches
        return pool.apply(_timed_baseline, ((shards, spec, samples, batch),))


def _warm(shards, spec, batch: int) -> None:
    """Pool initializer: imports done and caches warm before any measured loop."""
    _timed_baseline((shards, spec, batch, batch))


def plain_loops_at_once(shards, spec, samples: int, batch: int, processes: int
                        ) -> tuple[float, float]:
    """(samples/s of all together, CPU seconds per sample) of `processes` plain loops running at
    the same time, each in a warm process of its own: what a decode costs when the machine's
    cores are all decoding (shared caches, memory bandwidth, a hypervisor's neighbours), the
    fair floor for a pipeline that decodes on every core. Not a target, a reading aid."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(
            processes, initializer=_warm, initargs=(shards, spec, batch)) as pool:
        began = time.perf_counter()
        results = pool.map(_timed_baseline, [(shards, spec, samples, batch)] * processes,
                           chunksize=1)
        wall = time.perf_counter() - began
    return processes * samples / wall, sum(cpu for _, cpu in results) / processes

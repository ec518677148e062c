"""Ray settings for the data pipeline, sized for the machine instead of Ray's defaults.

Ray's default object store takes 30% of RAM (measured: 7 GiB on a 2-core, 23 GiB box) although
the pipeline only needs a few windows of decoded blocks in flight; on small machines that memory is
better left to the training process. Read parallelism needs no setting: the pipeline runs one
1-CPU Ray task per window, as many at once as there are CPUs, with a bound on windows in
flight (`stream.GlobalBatchStream`) limiting what waits in the object store. What must be left
is at least one CPU that the trainer does not reserve, or the data tasks never start (see
docs/design.md).
"""

from __future__ import annotations

import os
from typing import Any

MiB = 2**20


def total_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 1024 * MiB


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def object_store_bytes(cpus: int, memory_bytes: int) -> int:
    """1 GiB per CPU, at least 512 MiB, at most Ray's own default of 30% of RAM."""
    return int(max(512 * MiB, min(1024 * MiB * cpus, 0.3 * memory_bytes)))


def ray_init_kwargs(num_cpus: int | None = None) -> dict[str, Any]:
    """Keyword arguments for a local `ray.init(**ray_init_kwargs())` on this machine."""
    cpus = num_cpus or available_cpus()
    return {"num_cpus": cpus,
            "object_store_memory": object_store_bytes(cpus, total_memory_bytes())}

"""`WorkerBatches`: what a training worker iterates — its slice of every global batch, exactly.

Built inside the train-loop function; nothing has to be created on the driver. With one worker
the global stream is planned in the worker's process (window tasks still decode in parallel on
the cluster's CPUs); with several, the ranks share one plan through a `BatchCoordinator` actor,
which hands out block references only: each rank fetches and slices its own rows.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Iterator
from typing import Any

from vlscale.errors import UserError
from vlscale.platform.data.coordinator import coordinator_name, get_or_create, rank_slice, release
from vlscale.platform.data.order import DEFAULT_WINDOW_ROWS
from vlscale.platform.data.preprocess import Preprocess, to_model_images
from vlscale.platform.data.shards import ShardSet, open_shards
from vlscale.platform.data.stream import GlobalBatchStream, fetch_ahead


class WorkerBatches:
    """This worker's batches from `start_samples` to `total_samples` (global sample counts).

    Global batch k is samples [start + k*G, start + (k+1)*G) of the run's sequence, which depends
    only on (shards, seed), never on the worker count; worker r gets the contiguous slice
    [r*G/W, (r+1)*G/W) of it. When `total - start` is not a multiple of G, the last global batch
    holds the remainder R, split contiguously with the first R % W ranks getting one more row (a
    rank may get 0 rows when R < W; weight losses by rows). So there are ceil((total-start)/G)
    steps, and `start_samples` must be a multiple of G (a step boundary) or equal `total_samples`.

    Each item is a dict: "image" float32 [b,3,H,W] (normalised), "text" int64 [b,L], "row_id"
    int64 [b] (the row's index in the shard set), and "label" int64 [b] for labelled shards.
    """

    def __init__(self, shards: ShardSet | str, preprocess: Preprocess, *, global_batch: int,
                 total_samples: int, world_rank: int = 0, world_size: int = 1,
                 start_samples: int = 0, seed: int = 0, prefetch: int = 2, device: Any = None,
                 group: str | None = None, window_rows: int = DEFAULT_WINDOW_ROWS,
                 decode_outside_placement_group: bool = False) -> None:
        self.shards = open_shards(shards) if isinstance(shards, str) else shards
        if global_batch <= 0 or global_batch % world_size:
            raise UserError(f"global_batch {global_batch} must be a positive multiple of the "
                            f"worker count {world_size}")
        if not 0 <= world_rank < world_size:
            raise UserError(f"world_rank {world_rank} is outside 0..{world_size - 1}")
        if not 0 <= start_samples <= total_samples:
            raise UserError(f"start_samples {start_samples} must lie in 0..{total_samples}")
        if start_samples % global_batch and start_samples != total_samples:
            raise UserError(f"start_samples {start_samples} is not a multiple of the global batch "
                            f"{global_batch}; resume from a step boundary")
        self.preprocess = preprocess
        self.world_rank, self.world_size = world_rank, world_size
        self.global_batch, self.total_samples = global_batch, total_samples
        self.prefetch, self.device, self.group = max(1, prefetch), device, group
        self.stream = GlobalBatchStream(self.shards, preprocess, global_batch, total_samples,
                                        start_samples, seed, window_rows, world_size,
                                        decode_outside_placement_group)
        self.samples_seen = start_samples
        """Global samples delivered to all workers after the last batch this worker received."""
        self.passes = 0
        """Epochs started so far (1 during the first pass over the data)."""
        self.skipped_records = 0
        """Unusable rows (undecodable image, no caption, failed status) passed since the start."""
        self.data_wait_seconds = 0.0
        """Time this worker spent inside `next()`: waiting for, copying and normalising data."""
        self.steps_done = 0
        self.coordinator_traffic: dict[str, int] = {}
        """Bytes the shared coordinator sent and received (decoded bytes never pass through it),
        as it reported when this worker finished; complete on the last worker to finish."""
        self._coordinator: str | None = None

    def __len__(self) -> int:
        return math.ceil((self.total_samples - self.stream.start_samples) / self.global_batch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.steps_done:
            raise RuntimeError("WorkerBatches is a one-pass iterator; create a new one")
        source = self._local_parts() if self.world_size == 1 else self._remote_parts()
        while True:
            began = time.perf_counter()
            part = next(source, None)
            if part is None:
                return
            batch = self._to_torch(part["arrays"])
            self.data_wait_seconds += time.perf_counter() - began
            self.samples_seen = part["samples_end"]
            self.passes, self.skipped_records = part["passes"], part["skipped_records"]
            self.steps_done += 1
            yield batch

    def _to_torch(self, arrays: dict[str, Any]) -> dict[str, Any]:
        import torch

        batch = {"image": to_model_images(arrays["image"], self.preprocess.mean,
                                          self.preprocess.std, self.device)}
        for name in ("text", "row_id", "label"):
            if name in arrays:
                batch[name] = torch.tensor(arrays[name], dtype=torch.int64, device=self.device)
        return batch

    def _local_parts(self) -> Iterator[dict[str, Any]]:
        for batch in self.stream:
            yield rank_slice(batch, 0, 1)

    def _remote_parts(self) -> Iterator[dict[str, Any]]:
        import ray

        self._coordinator = coordinator_name(self.group, self.world_rank)
        handle = get_or_create(self._coordinator, self.stream, self.world_size, self.prefetch)
        steps = len(self)
        pending = collections.deque(handle.get.remote(step, self.world_rank)
                                    for step in range(min(self.prefetch, steps)))
        requested = len(pending)

        def parts() -> Iterator[tuple[dict[str, Any], list]]:
            nonlocal requested
            while pending:
                part = _get(ray, pending.popleft())
                if requested < steps:
                    pending.append(handle.get.remote(requested, self.world_rank))
                    requested += 1
                yield part, part.pop("pieces")

        shape = (self.preprocess.image_size, self.preprocess.context_length)
        try:
            for part, arrays in fetch_ahead(parts(), self.stream.columns, shape):
                part["arrays"] = arrays
                yield part
        finally:
            self.close()

    def close(self) -> None:
        """Tell the shared stream this worker is done (the last worker stops it)."""
        name, self._coordinator = self._coordinator, None
        if name is not None:
            self.coordinator_traffic = release(name, self.world_rank)

    def __enter__(self) -> WorkerBatches:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _get(ray: Any, ref: Any) -> dict[str, Any]:
    """ray.get that re-raises a UserError from the coordinator as itself (clean CLI message)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, UserError):
            raise UserError(str(error.cause)) from None
        raise

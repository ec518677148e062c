"""One global batch plan per training run, shared by its workers through a Ray actor.

With several workers the global sequence is planned once by a `BatchCoordinator` actor: it owns
the window tasks (every row is read and decoded once), reads only their tiny block metadata, and
hands each worker the object references and row ranges of its contiguous slice of every global
batch. The decoded blocks go from the task that made them straight to the worker that trains on
them; the actor never touches a decoded byte (it counts what it sends and receives, see
`traffic`). A slice is a function of (global batch, rank, world size) only, so the concatenation
of the slices of W workers is the single-worker sequence, and a resumed run with a different W
continues the same sequence. The actor is owned by the worker that created it, so it dies with
the worker group; a restarted group gets a fresh one under a fresh name.
"""

from __future__ import annotations

import pickle
import threading
import uuid
from typing import Any

from vlscale.errors import UserError
from vlscale.platform.data.stream import BatchPlan, GlobalBatch, GlobalBatchStream, slice_bounds

ACTOR_PREFIX = "vlscale-data-"
# Handles are kept for the life of the process: Ray kills a named, non-detached actor once the
# handles in its owner process are gone, even while other ranks still use it by name.
_HANDLES: dict[str, Any] = {}
_HANDLES_LOCK = threading.Lock()

__all__ = ["BatchCoordinator", "rank_slice", "slice_bounds"]


def rank_slice(batch: GlobalBatch, rank: int, world_size: int) -> dict[str, Any]:
    start, end = slice_bounds(len(batch.arrays["row_id"]), rank, world_size)
    return {"arrays": {name: array[start:end] for name, array in batch.arrays.items()},
            "samples_end": batch.samples_end, "passes": batch.passes,
            "skipped_records": batch.skipped_records}


def wire_size(part: dict[str, Any]) -> int:
    """Bytes of a rank's part as Ray sends it: the pickled counters and row ranges, and for each
    block reference its id and owner address (what a serialised reference carries)."""
    pieces = [(ref.binary(), ref.owner_address(), start, end)
              for ref, start, end in part["pieces"]]
    return len(pickle.dumps({**part, "pieces": pieces}))


class BatchCoordinator:
    """Ray actor body: plans global batches ahead (bounded) and serves rank slices as refs."""

    def __init__(self, stream: GlobalBatchStream, world_size: int, buffer_batches: int) -> None:
        self._stream = stream
        self._world_size = world_size
        self._buffer = buffer_batches
        self._plans: dict[int, BatchPlan] = {}
        self._fetched: dict[int, int] = {}
        self._produced = self._released = 0
        self._finished: set[int] = set()
        self._error: BaseException | None = None
        self._done = self._stopped = False
        self._sent_bytes = 0
        self._condition = threading.Condition()
        threading.Thread(target=self._produce, name="vlscale-data-planner", daemon=True).start()

    def _produce(self) -> None:
        plans = self._stream.plans()
        try:
            for plan in plans:
                with self._condition:
                    while (self._produced - self._released >= self._buffer
                           and not self._stopped):
                        self._condition.wait()
                    if self._stopped:
                        return
                    self._plans[self._produced] = plan
                    self._produced += 1
                    self._condition.notify_all()
        except BaseException as error:  # handed to the workers by get()
            with self._condition:
                self._error = error
        finally:
            plans.close()  # cancels the window tasks still running
            with self._condition:
                self._done = True
                self._condition.notify_all()

    def get(self, step: int, rank: int) -> dict[str, Any]:
        """Rank `rank`'s part of global batch `step` (0 = the first after the start position):
        (block ref, start row, end row) pieces and the stream's counters after the batch."""
        with self._condition:
            while step >= self._produced and not self._done:
                self._condition.wait()
            if step >= self._produced:
                if self._error is not None:
                    raise self._error
                raise IndexError(f"global batch {step} is past the end of the stream")
            plan = self._plans[step]
        part = {"pieces": plan.rank_pieces(rank, self._world_size),
                "samples_end": plan.samples_end, "passes": plan.passes,
                "skipped_records": plan.skipped_records}
        size = wire_size(part)
        with self._condition:
            self._sent_bytes += size
            self._fetched[step] = self._fetched.get(step, 0) + 1
            while self._fetched.get(self._released) == self._world_size:
                # the plan's refs go; each block lives on while a rank still holds its ref
                del self._fetched[self._released], self._plans[self._released]
                self._released += 1
            self._condition.notify_all()
        return part

    def finish(self, rank: int) -> tuple[bool, dict[str, int]]:
        """A rank is done; (True for the last one, which then kills the actor; the bytes this
        actor sent to ranks and received from window tasks so far, measured)."""
        with self._condition:
            self._finished.add(rank)
            last = len(self._finished) == self._world_size
            if last:
                self._stopped = True
                self._condition.notify_all()
            return last, {"sent_bytes": self._sent_bytes,
                          "received_bytes": self._stream.received_bytes}


def coordinator_name(group: str | None, world_rank: int) -> str:
    """The actor name all ranks agree on: `group` if given, else a fresh id from rank 0."""
    if group:
        return ACTOR_PREFIX + group
    try:
        from ray.train.collective import broadcast_from_rank_zero

        return ACTOR_PREFIX + broadcast_from_rank_zero(
            uuid.uuid4().hex if world_rank == 0 else None)
    except RuntimeError as error:
        raise UserError("several data workers outside a Ray Train worker group need a shared "
                        "`group` name: pass WorkerBatches(..., group=<unique run id>)") from error


def get_or_create(name: str, stream: GlobalBatchStream, world_size: int, prefetch: int):
    """The named coordinator actor (created by whichever rank comes first), near the caller."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    with _HANDLES_LOCK:
        if name not in _HANDLES:  # the first handle of this process (the owner's) must stay
            _HANDLES[name] = ray.remote(BatchCoordinator).options(
                name=name, get_if_exists=True, num_cpus=0,
                max_concurrency=world_size * (prefetch + 2) + 4,
                scheduling_strategy=NodeAffinitySchedulingStrategy(
                    ray.get_runtime_context().get_node_id(), soft=True),
            ).remote(stream, world_size, prefetch + 4)
        return _HANDLES[name]


def release(name: str, world_rank: int) -> dict[str, int]:
    """This rank is done with the stream; the last rank to finish stops and removes the actor.
    Returns the coordinator's traffic (complete for the last rank)."""
    import ray

    with _HANDLES_LOCK:
        handle = _HANDLES.get(name)
    if handle is None:
        return {}
    try:
        last, traffic = ray.get(handle.finish.remote(world_rank))
    except ray.exceptions.ActorDiedError:
        # The last rank kills the actor as soon as its own finish returns, which can overtake
        # the reply to another rank's finish: that rank was done and is not the last.
        return {}
    if last:
        with _HANDLES_LOCK:
            _HANDLES.pop(name, None)
        ray.kill(handle)
    return traffic

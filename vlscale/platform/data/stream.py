"""The data pipeline: ordered window tasks -> decoded blocks in the object store -> batch plans.

Why not `ray.data.read_parquet(...).random_shuffle()` + `streaming_split`: that order depends on
the cluster (read parallelism, block bin-packing, which worker asks first), so a run could neither
be reproduced nor resumed at a samples-seen position, nor keep its sample sequence when the worker
count changes. Here one Ray task per window of `order.SampleOrder` reads its row groups with
pyarrow (any filesystem `pyarrow.fs` or fsspec opens, s3:// included), decodes, resizes and
tokenizes, and yields its blocks as a streaming generator (`num_returns="streaming"`): per block a
tiny `BlockMeta` (usable rows, unusable rows met, epoch) and the block itself as a separate
object that stays in the object store of the node that made it. The owner of the tasks (the one
worker, or the `BatchCoordinator` of several) reads only the metadata and turns it into one
`BatchPlan` per global batch: which rows of which block objects make it. Whoever trains on a
slice fetches the blocks overlapping it (zero-copy from the local object store) and slices them,
so no other process handles a decoded byte. Plain tasks rather than a Ray Data dataset because
the plan needs the blocks as object references with their metadata, which Ray Data exposes only
through a developer API; a bounded number of windows in flight is the backpressure.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vlscale.errors import UserError
from vlscale.platform.data.order import DEFAULT_WINDOW_ROWS, Cursor, SampleOrder
from vlscale.platform.data.preprocess import Preprocess, prepare_rows
from vlscale.platform.data.shards import RawRows, ShardSet
from vlscale.platform.data.usable import usable_rows_per_unit

log = logging.getLogger(__name__)
BLOCK_BYTES = 2 * 2**20
"""Target block size of the Ray Data execution that counts usable rows (`usable.py`)."""
INLINE_LIMIT = 100 * 2**10
"""Ray's default `max_direct_call_object_size`: smaller task outputs are sent inline to the
task's owner instead of staying in the object store, so they would pass through it."""
MIN_BLOCK_BYTES = 4 * INLINE_LIMIT
MAX_BLOCK_BYTES = 16 * 2**20
"""A window task's blocks hold one rank's slice of a global batch (`StreamPlan.slice_rows`), so
a rank's slice touches at most two blocks: fewer objects per sample than small blocks (each
costs its owner, its raylet and the fetching rank a few Ray calls; measured at 224 px on one
rank: 13-row blocks spent ~0.2 ms per sample more than 64-row ones, against 2.1 ms of decode),
and a rank never pulls whole blocks of another rank's rows, which a block larger than the slice
would make it do. Clamped to [MIN_BLOCK_BYTES, MAX_BLOCK_BYTES] of decoded rows."""
STORE_SHARE = 0.4
"""Share of the cluster's object store the windows in flight may fill (each runs to its end)."""


@dataclass(frozen=True)
class StreamPlan:
    """Everything a window task needs; put in the object store once per stream."""

    shards: ShardSet
    order: SampleOrder
    preprocess: Preprocess
    slice_rows: int = 64
    """Rows of one rank's slice of a global batch (ceil(G / W)): the block size aimed at."""

    @property
    def row_bytes(self) -> int:
        """Bytes of one decoded row in a block (image, tokens, label, row id)."""
        return 3 * self.preprocess.image_size ** 2 + 8 * (self.preprocess.context_length + 2)

    @property
    def rows_per_block(self) -> int:
        low = math.ceil(MIN_BLOCK_BYTES / self.row_bytes)
        high = max(low, MAX_BLOCK_BYTES // self.row_bytes)
        return int(min(4096, high, max(low, self.slice_rows)))


@dataclass(frozen=True)
class BlockMeta:
    """What the planner needs of one block: its rows and the unusable rows met before them.

    `skipped` holds (row, count) pairs: `count` unusable rows came just before usable row `row`
    of this block (only rows with a nonzero count, so it stays tiny). A block of 0 rows carries
    the unusable rows at the end of a window as (0, count): they count towards the next row.
    """

    epoch: int
    rows: int
    nbytes: int
    skipped: tuple[tuple[int, int], ...]


@dataclass
class GlobalBatch:
    """One global batch of the sample sequence and the stream's counters after it."""

    arrays: dict[str, np.ndarray]
    samples_end: int
    passes: int
    skipped_records: int


@dataclass
class BatchPlan:
    """Global batch k as block pieces: rows [start, end) of each block, in sequence order."""

    pieces: list[tuple[Any, int, int]]
    rows: int
    samples_end: int
    passes: int
    skipped_records: int

    def rank_pieces(self, rank: int, world_size: int) -> list[tuple[Any, int, int]]:
        """The pieces of rank `rank`'s contiguous slice (`slice_bounds`) of this batch."""
        low, high = slice_bounds(self.rows, rank, world_size)
        pieces, at = [], 0
        for ref, start, end in self.pieces:
            first, last = max(low, at), min(high, at + end - start)
            if first < last:
                pieces.append((ref, start + first - at, start + last - at))
            at += end - start
        return pieces


def slice_bounds(rows: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rank `rank`'s contiguous share of `rows` (the first `rows % W` ranks get one more)."""
    base, extra = divmod(rows, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def _merge(raws: list[RawRows]) -> RawRows:
    labels = [r.labels for r in raws]
    return RawRows(
        keys=[k for r in raws for k in r.keys], images=[i for r in raws for i in r.images],
        captions=[c for r in raws for c in r.captions],
        status_ok=np.concatenate([r.status_ok for r in raws]),
        labels=None if any(lab is None for lab in labels) else np.concatenate(labels))


def block_bounds(length: int, phase: int, slice_rows: int, block_rows: int) -> list[int]:
    """Where a window's `length` rows are cut into blocks: offsets 0 = b0 < b1 < ... = length.

    Row j of the window sits at sequence position `phase + j` (mod `slice_rows`); rank slices
    start at multiples of `slice_rows` (global batches start at multiples of G = W x slice_rows
    from a start position that is one too). So cuts go where slices start, and, for blocks
    smaller than a slice, at equal steps inside it; for larger ones (small images), every
    `block_rows // slice_rows` slices. With no unusable rows every slice is then whole blocks."""
    if block_rows >= slice_rows:
        period = slice_rows * (block_rows // slice_rows)
        inside = [0]
    else:
        period = slice_rows
        parts = -(-slice_rows // block_rows)
        inside = sorted({round(i * slice_rows / parts) for i in range(parts)})
    first = -phase % period
    cuts = {0, length}
    for base in range(first - period, length, period):
        cuts.update(base + step for step in inside if 0 < base + step < length)
    return sorted(cuts)


def window_items(plan: StreamPlan, epoch: int, window: int, skip: int, phase: int = 0
                 ) -> Iterator[Any]:
    """The usable samples of one window in sequence order: BlockMeta, block, BlockMeta, ...

    A meta of 0 rows (unusable rows at the window's end) has no block after it. The first
    `skip` usable samples are not emitted (resume inside a window), nor are unusable rows
    before them counted. `phase`: the window's first row's sequence position modulo the slice
    (`block_bounds`); it moves only where blocks are cut, never the samples or their order.
    """
    shards, preprocess = plan.shards, plan.preprocess
    units = plan.order.window_units(epoch, window)
    raw = _merge([shards.read_unit(int(u)) for u in units])
    row_ids = np.concatenate([shards.unit_first_row[u] + np.arange(shards.unit_rows[u])
                              for u in units])
    permutation = plan.order.row_permutation(epoch, window)
    pending = 0
    bounds = block_bounds(len(permutation), phase, plan.slice_rows, plan.rows_per_block)
    for start, end in zip(bounds, bounds[1:]):
        chunk = permutation[start:end]
        rows, images, tokens, labels, usable = prepare_rows(raw, chunk, preprocess)
        kept = np.flatnonzero(usable)
        gaps = np.diff(kept, prepend=-1) - 1
        if len(kept):
            gaps[0] += pending
            pending = len(chunk) - 1 - int(kept[-1])
        else:
            pending = 0 if skip else pending + len(chunk)
        if skip:
            dropped = min(skip, len(kept))
            skip -= dropped
            rows, images, tokens, labels, gaps = (a[dropped:] for a in
                                                  (rows, images, tokens, labels, gaps))
        if len(rows):
            block = {"image": images, "text": tokens, "row_id": row_ids[rows]}
            if shards.has_labels:
                block["label"] = labels
            where = np.flatnonzero(gaps)
            yield BlockMeta(epoch, len(rows), sum(a.nbytes for a in block.values()),
                            tuple((int(r), int(gaps[r])) for r in where))
            yield block
    if pending:
        yield BlockMeta(epoch, 0, 0, ((0, pending),))


@contextlib.contextmanager
def ordered_data_context() -> Iterator[None]:
    """Datasets created inside keep their output order and stay quiet (the context is copied)."""
    from ray.data import DataContext

    context = DataContext.get_current()
    settings = {"enable_progress_bars": False, "enable_auto_log_stats": False,
                "print_on_execution_start": False,
                # Blocks leave a task as they are made, not once the whole window is done.
                "target_max_block_size": BLOCK_BYTES}
    saved = {name: getattr(context, name) for name in settings}
    saved_order = context.execution_options.preserve_order
    for name, value in settings.items():
        setattr(context, name, value)
    context.execution_options.preserve_order = True
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        context.execution_options.preserve_order = saved_order


_WINDOW_TASKS: dict[bool, Any] = {}


def _window_task(outside_placement_group: bool) -> Any:
    """`window_items` as a Ray streaming task of one CPU.

    By default it is placed as Ray places child tasks: a process inside a placement group that
    captures its children (a Ray Train worker's) runs them in its own bundle, on the CPU it
    frees while it waits for their blocks, so decoding never takes a CPU an elastic group would
    grow onto. A Tune function trial must not: Tune refuses any child task its bundle cannot
    hold besides the trial ("No trial resources are available"), so there the task takes the
    cluster's "DEFAULT" strategy (the local node first, then spread), on the CPUs the sweep
    leaves free (`sweep.driver.default_concurrency`), as Ray Data's own tasks escape with theirs.
    """
    if outside_placement_group not in _WINDOW_TASKS:
        import ray

        options: dict[str, Any] = {"num_cpus": 1, "num_returns": "streaming"}
        if outside_placement_group:
            options["scheduling_strategy"] = "DEFAULT"
        _WINDOW_TASKS[outside_placement_group] = ray.remote(**options)(window_items)
    return _WINDOW_TASKS[outside_placement_group]


@dataclass
class GlobalBatchStream:
    """Global batches [k*G, (k+1)*G) of the sample sequence from `start_samples` to `total_samples`.

    The last batch holds `total - k*G` samples when `total` is not a multiple of G. `plans()`
    gives each batch as block references (for a coordinator); iterating gives the arrays.
    """

    shards: ShardSet
    preprocess: Preprocess
    global_batch: int
    total_samples: int
    start_samples: int = 0
    seed: int = 0
    window_rows: int = DEFAULT_WINDOW_ROWS
    world_size: int = 1
    """Ranks sharing the stream: sets the block size (`StreamPlan.slice_rows`), not the order."""
    decode_outside_placement_group: bool = False
    """Launch the window tasks outside the caller's placement group (`_window_task`): True in a
    Tune function trial, whose bundle holds only the trial."""
    windows_in_flight: int | None = None
    """Window tasks running or done ahead of the consumer (default: the cluster's CPUs, fewer
    when their blocks would fill more than `STORE_SHARE` of the object store)."""
    order: SampleOrder = field(init=False)
    received_bytes: int = field(default=0, init=False)
    """Bytes the plan's owner received: block metadata and the references of the blocks (and
    any block small enough for Ray to send inline)."""

    def __post_init__(self) -> None:
        self.order = SampleOrder(self.shards.unit_rows, self.seed, self.window_rows)

    @property
    def columns(self) -> list[str]:
        return ["image", "text", "row_id"] + (["label"] if self.shards.has_labels else [])

    def _in_flight(self, plan: StreamPlan) -> int:
        if self.windows_in_flight:
            return self.windows_in_flight
        import ray

        resources = ray.cluster_resources()
        window_bytes = self.shards.num_rows / self.order.num_windows * plan.row_bytes
        by_memory = int(STORE_SHARE * resources.get("object_store_memory", 0) // window_bytes)
        return max(1, min(int(resources.get("CPU", 1)), by_memory))

    def _blocks(self, cursor: Cursor, needed: int) -> Iterator[tuple[BlockMeta, Any]]:
        """(meta, block reference or None) of every block from `cursor` on, in order.

        Windows are started ahead only while the rows of those started (an upper bound of
        their usable rows) fall short of the `needed` samples, so none is decoded in vain at
        the end of a run; past that, one at a time while unusable rows leave samples missing.
        """
        import pickle

        import ray

        plan = StreamPlan(self.shards, self.order, self.preprocess,
                          slice_rows=-(-self.global_batch // self.world_size))
        in_flight, plan_ref, task = self._in_flight(plan), ray.put(plan), _window_task(
            self.decode_outside_placement_group)
        generators: collections.deque[Any] = collections.deque()
        submitted = ref_bytes = 0
        planned = -cursor.offset
        try:
            while True:
                while len(generators) < in_flight and (planned < needed or not generators):
                    epoch, window = self.order.advance(cursor.epoch, cursor.window, submitted)
                    # this window's first row sits at sequence position start + planned
                    generators.append(task.remote(plan_ref, epoch, window,
                                                  cursor.offset if submitted == 0 else 0,
                                                  planned % plan.slice_rows))
                    planned += int(self.shards.unit_rows[
                        self.order.window_units(epoch, window)].sum())
                    submitted += 1
                generator = generators.popleft()
                for meta_ref in generator:
                    meta = ray.get(meta_ref)
                    ref_bytes = ref_bytes or len(meta_ref.binary()) + len(meta_ref.owner_address())
                    self.received_bytes += ref_bytes + len(pickle.dumps(meta))
                    block = None
                    if meta.rows:
                        block = next(generator)
                        self.received_bytes += ref_bytes + (
                            meta.nbytes if meta.nbytes < INLINE_LIMIT else 0)
                    yield meta, block
        finally:
            for generator in generators:
                ray.cancel(generator)

    def plans(self) -> Iterator[BatchPlan]:
        """One BatchPlan per global batch, from the start position to the total."""
        position = self.start_samples
        cursor = Cursor(0, 0, 0)
        if position:
            cursor = self.order.locate(position, usable_rows_per_unit(self.shards, self.preprocess))
        passes, skipped, carry = cursor.epoch + 1, 0, 0
        # buffered blocks: [ref, first unused row, rows, epoch, skip positions, skip counts]
        buffered: collections.deque[list[Any]] = collections.deque()
        buffered_rows = 0
        blocks = self._blocks(cursor, self.total_samples - position)
        try:
            while position < self.total_samples:
                size = min(self.global_batch, self.total_samples - position)
                while buffered_rows < size:
                    meta, ref = next(blocks)
                    rows_at = np.array([r for r, _ in meta.skipped], dtype=np.int64)
                    counts = np.array([c for _, c in meta.skipped], dtype=np.int64)
                    if not meta.rows:
                        carry += int(counts.sum())
                        if carry > self.shards.num_rows:
                            raise UserError(
                                f"no usable rows in {self.shards.location}: a whole pass found "
                                "no decodable image with a caption; run `vlscale data check` "
                                "on it")
                        continue
                    if carry:
                        rows_at, counts = np.append(rows_at, 0), np.append(counts, carry)
                        carry = 0
                    buffered.append([ref, 0, meta.rows, meta.epoch, rows_at, counts])
                    buffered_rows += meta.rows
                pieces, need = [], size
                while need:
                    entry = buffered[0]
                    ref, first, rows, epoch, rows_at, counts = entry
                    take = min(need, rows - first)
                    pieces.append((ref, first, first + take))
                    skipped += int(counts[(rows_at >= first) & (rows_at < first + take)].sum())
                    passes = max(passes, epoch + 1)
                    need -= take
                    entry[1] = first + take
                    if entry[1] == rows:
                        buffered.popleft()
                buffered_rows -= size
                position += size
                yield BatchPlan(pieces, size, position, passes, skipped)
        finally:
            blocks.close()

    def __iter__(self) -> Iterator[GlobalBatch]:
        shape = (self.preprocess.image_size, self.preprocess.context_length)
        for plan, arrays in fetch_ahead(((p, p.pieces) for p in self.plans()), self.columns,
                                        shape):
            yield GlobalBatch(arrays, plan.samples_end, plan.passes, plan.skipped_records)


def fetch_ahead(items: Iterator[tuple[Any, list[tuple[Any, int, int]]]], columns: list[str],
                shape: tuple[int, int]) -> Iterator[tuple[Any, dict[str, np.ndarray]]]:
    """(item, its pieces' rows as arrays) for each (item, pieces); the next item's blocks are
    fetched into this node's object store while the current one is consumed."""
    import ray

    ready: collections.deque[tuple[Any, list[tuple[Any, int, int]]]] = collections.deque()
    for item, pieces in items:
        refs = [ref for ref, _, _ in pieces]
        if refs:  # start pulling remote blocks now; returns at once
            ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=True)
        ready.append((item, pieces))
        if len(ready) > 1:
            first, first_pieces = ready.popleft()
            yield first, assemble(first_pieces, columns, shape)
    while ready:
        first, first_pieces = ready.popleft()
        yield first, assemble(first_pieces, columns, shape)


def assemble(pieces: list[tuple[Any, int, int]], columns: list[str], shape: tuple[int, int]
             ) -> dict[str, np.ndarray]:
    """The rows of `pieces` as arrays: views of the blocks when one piece, else one copy."""
    import ray

    if not pieces:
        size, length = shape
        empty = {"image": np.zeros((0, size, size, 3), np.uint8),
                 "text": np.zeros((0, length), np.int64)}
        return {c: empty.get(c, np.zeros(0, np.int64)) for c in columns}
    blocks = ray.get([ref for ref, _, _ in pieces])
    parts = [(block, start, end) for block, (_, start, end) in zip(blocks, pieces)]
    if len(parts) == 1:
        block, start, end = parts[0]
        return {c: block[c][start:end] for c in columns}
    return {c: np.concatenate([block[c][start:end] for block, start, end in parts])
            for c in columns}

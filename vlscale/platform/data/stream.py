"""The Ray Data pipeline: ordered window tasks -> decoded blocks -> exact global batches.

Why not `ray.data.read_parquet(...).random_shuffle()` + `streaming_split`: that order depends on
the cluster (read parallelism, block bin-packing, which worker asks first), so a run could neither
be reproduced nor resumed at a samples-seen position, nor keep its sample sequence when the worker
count changes. Here Ray Data executes one task per window of `order.SampleOrder` (a range dataset
whose rows are window numbers, mapped by `process_window`), with `preserve_order` set: the tasks
run in parallel on CPU workers, stream through the object store with Ray Data's backpressure,
and come out in sequence order. Each task reads its row groups with pyarrow (any filesystem
`pyarrow.fs` or fsspec opens, s3:// included), decodes, resizes and tokenizes.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from vlscale.errors import UserError
from vlscale.platform.data.order import DEFAULT_WINDOW_ROWS, Cursor, SampleOrder
from vlscale.platform.data.preprocess import Preprocess, prepare_rows
from vlscale.platform.data.shards import RawRows, ShardSet

log = logging.getLogger(__name__)
BLOCK_BYTES = 4 * 2**20
MAX_TASKS_PER_EXECUTION = 50_000


@dataclass(frozen=True)
class StreamPlan:
    """Everything a window task needs; pickled once per dataset execution."""

    shards: ShardSet
    order: SampleOrder
    preprocess: Preprocess
    start: Cursor

    @property
    def rows_per_block(self) -> int:
        row_bytes = 3 * self.preprocess.image_size ** 2
        return int(min(1024, max(64, BLOCK_BYTES // row_bytes)))


@dataclass
class GlobalBatch:
    """One global batch of the sample sequence and the stream's counters after it."""

    arrays: dict[str, np.ndarray]
    samples_end: int
    passes: int
    skipped_records: int


def _merge(raws: list[RawRows]) -> RawRows:
    labels = [r.labels for r in raws]
    return RawRows(
        keys=[k for r in raws for k in r.keys], images=[i for r in raws for i in r.images],
        captions=[c for r in raws for c in r.captions],
        status_ok=np.concatenate([r.status_ok for r in raws]),
        labels=None if any(lab is None for lab in labels) else np.concatenate(labels))


def window_blocks(plan: StreamPlan, epoch: int, window: int, skip: int
                  ) -> Iterator[dict[str, np.ndarray]]:
    """The usable samples of one window in sequence order, in blocks.

    Each row carries `skipped`: unusable rows met since the previous output row (trailing ones
    come as a final row with `valid` False). The first `skip` usable samples are not emitted
    (resume inside a window), nor are unusable rows before them counted.
    """
    shards, preprocess = plan.shards, plan.preprocess
    units = plan.order.window_units(epoch, window)
    raw = _merge([shards.read_unit(int(u)) for u in units])
    row_ids = np.concatenate([shards.unit_first_row[u] + np.arange(shards.unit_rows[u])
                              for u in units])
    permutation = plan.order.row_permutation(epoch, window)
    pending = 0
    for start in range(0, len(permutation), plan.rows_per_block):
        chunk = permutation[start:start + plan.rows_per_block]
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
            yield _block(images, tokens, labels, row_ids[rows], gaps, True, epoch)
    if pending:
        size, length = preprocess.image_size, preprocess.context_length
        yield _block(np.zeros((1, size, size, 3), np.uint8), np.zeros((1, length), np.int64),
                     np.full(1, -1, np.int64), np.full(1, -1, np.int64),
                     np.array([pending]), False, epoch)


def _block(images, tokens, labels, row_ids, skipped, valid: bool, epoch: int
           ) -> dict[str, np.ndarray]:
    count = len(images)
    return {"image": images, "text": tokens, "label": labels, "row_id": row_ids,
            "skipped": np.asarray(skipped, dtype=np.int64), "valid": np.full(count, valid),
            "epoch": np.full(count, epoch, dtype=np.int64)}


def process_window(batch: dict[str, np.ndarray], plan: StreamPlan
                   ) -> Iterator[dict[str, np.ndarray]]:
    """Ray Data UDF: row `i` of the range dataset is the i-th window after the plan's start."""
    for task in batch["id"]:
        epoch, window = plan.order.advance(plan.start.epoch, plan.start.window, int(task))
        yield from window_blocks(plan, epoch, window, plan.start.offset if task == 0 else 0)


def count_usable(batch: dict[str, np.ndarray], shards: ShardSet, preprocess: Preprocess
                 ) -> dict[str, np.ndarray]:
    """Ray Data UDF: usable rows of each unit in `batch["id"]`."""
    units = batch["id"].astype(np.int64)
    counts = []
    for unit in units:
        raw = shards.read_unit(int(unit))
        counts.append(int(prepare_rows(raw, np.arange(len(raw.keys)), preprocess)[4].sum()))
    return {"unit": units, "usable": np.array(counts, dtype=np.int64)}


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


def usable_rows_per_unit(shards: ShardSet, preprocess: Preprocess) -> np.ndarray:
    """Usable rows per unit: from the manifest when verified, else one parallel decode pass."""
    if shards.verified:
        return shards.unit_rows.copy()
    import ray.data

    log.info("counting usable rows of %s (unverified shards) to locate the resume position",
             shards.location)
    with ordered_data_context():
        dataset = ray.data.range(len(shards.units), override_num_blocks=len(shards.units))
        dataset = dataset.map_batches(count_usable, batch_size=None, num_cpus=1,
                                      fn_kwargs={"shards": shards, "preprocess": preprocess})
    counts = np.zeros(len(shards.units), dtype=np.int64)
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        counts[batch["unit"]] = batch["usable"]
    return counts


@dataclass
class GlobalBatchStream:
    """Global batches [k*G, (k+1)*G) of the sample sequence from `start_samples` to `total_samples`.

    The last batch holds `total - k*G` samples when `total` is not a multiple of G.
    """

    shards: ShardSet
    preprocess: Preprocess
    global_batch: int
    total_samples: int
    start_samples: int = 0
    seed: int = 0
    window_rows: int = DEFAULT_WINDOW_ROWS
    prefetch_blocks: int = 4
    order: SampleOrder = field(init=False)

    def __post_init__(self) -> None:
        self.order = SampleOrder(self.shards.unit_rows, self.seed, self.window_rows)

    def _dataset(self, cursor: Cursor, tasks: int):
        import ray.data

        plan = StreamPlan(self.shards, self.order, self.preprocess, cursor)
        with ordered_data_context():
            dataset = ray.data.range(tasks, override_num_blocks=tasks)
            return dataset.map_batches(process_window, batch_size=None, num_cpus=1,
                                       fn_kwargs={"plan": plan})

    def __iter__(self) -> Iterator[GlobalBatch]:
        position = self.start_samples
        cursor = Cursor(0, 0, 0)
        if position:
            cursor = self.order.locate(position, usable_rows_per_unit(self.shards, self.preprocess))
        columns = ["image", "text", "row_id", "epoch", "skipped"] + (
            ["label"] if self.shards.has_labels else [])
        buffered: list[dict[str, np.ndarray]] = []
        buffered_rows = skipped = carry = 0
        passes = cursor.epoch + 1
        rows_per_window = self.shards.num_rows / self.order.num_windows
        while position < self.total_samples:
            tasks = min(MAX_TASKS_PER_EXECUTION,
                        math.ceil((self.total_samples - position) / rows_per_window) + 1)
            blocks = self._dataset(cursor, tasks).iter_batches(
                batch_size=None, batch_format="numpy", prefetch_batches=self.prefetch_blocks)
            for block in blocks:
                rows, carry = _usable_rows(block, columns, carry)
                if rows is not None:
                    buffered.append(rows)
                    buffered_rows += len(rows["row_id"])
                if carry > self.shards.num_rows:
                    raise UserError(
                        f"no usable rows in {self.shards.location}: a whole pass found no "
                        "decodable image with a caption; run `vlscale data check` on it")
                while (position < self.total_samples
                       and buffered_rows >= min(self.global_batch, self.total_samples - position)):
                    size = min(self.global_batch, self.total_samples - position)
                    arrays, buffered = _take(buffered, size)
                    buffered_rows -= size
                    position += size
                    passes = max(passes, int(arrays.pop("epoch").max()) + 1)
                    skipped += int(arrays.pop("skipped").sum())
                    yield GlobalBatch(arrays, position, passes, skipped)
                if position >= self.total_samples:
                    break
            cursor = Cursor(*self.order.advance(cursor.epoch, cursor.window, tasks), 0)


def _usable_rows(block: dict[str, np.ndarray], columns: list[str], carry: int
                 ) -> tuple[dict[str, np.ndarray] | None, int]:
    """The block's usable rows, each with the unusable rows met since the previous usable row
    (`carry` from earlier blocks included) as "skipped"; and the count after the last one."""
    valid = block["valid"]
    passed = np.cumsum(block["skipped"])
    if not valid.any():
        return None, carry + int(passed[-1])
    positions = np.flatnonzero(valid)
    at = passed[positions]
    attributed = np.diff(at, prepend=0)
    attributed[0] += carry
    everything = len(positions) == len(valid)  # then views, no copies
    rows = {c: block[c] if everything else block[c][valid] for c in columns if c != "skipped"}
    rows["skipped"] = attributed
    return rows, int(passed[-1] - at[-1])


def _take(blocks: list[dict[str, np.ndarray]], size: int
          ) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    """The first `size` rows of the buffered blocks, and the blocks that remain."""
    taken: list[dict[str, np.ndarray]] = []
    need = size
    while need:
        block = blocks[0]
        count = len(block["row_id"])
        if count <= need:
            taken.append(blocks.pop(0))
            need -= count
        else:
            taken.append({c: a[:need] for c, a in block.items()})
            blocks[0] = {c: a[need:] for c, a in block.items()}
            need = 0
    arrays = {c: np.concatenate([t[c] for t in taken]) if len(taken) > 1 else taken[0][c]
              for c in taken[0]}
    return arrays, blocks

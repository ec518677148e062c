"""The import's work: one task per source slice (sources.py), in this process or as Ray
tasks, each writing its own output shards straight into the staging folder.

Why this shape: a DataComp-size import is CPU-bound on decoding every image (the `verify`
check) and IO-bound on reading sources; both scale with independent tasks. A task reads only
its slice, keeps one source record batch and one output row group in memory, writes its shards
into `<staging>/.parts/<slice>/` and returns only small metadata (rows per output shard, rows
dropped by reason, or the one-line error that stops the import). The driver then renames the
part files, in slice order, to `00000.parquet`, `00001.parquet`, ... and writes `dataset.json`.
The output is therefore a function of the source only: the same slices, the same rows in the
same order and the same bytes whether one process or any number of Ray workers ran the tasks,
in whatever order they finished.

On Ray the slices are plain 1-CPU Ray tasks, `--workers` in flight, rather than a Ray Data
dataset of slice numbers mapped by the same function (the training pipeline's pattern, and this
module's first version): a task's result is a few hundred bytes, so Ray Data's streaming and
backpressure have nothing to do, while each Ray Data execution cost about 1.5 s of start-up and
shut-down on the 2-CPU VM (8 half-second tasks on 2 CPUs: 3.5 s with Ray Data, 2.0 s as tasks),
which halved the speed-up of a mid-size import. Plain tasks also let the driver cancel and wait
for the running ones on the first error, before the staging folder is removed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlscale.errors import UserError
from vlscale.platform.data.folders import file_rows
from vlscale.platform.data.preprocess import open_image
from vlscale.platform.data.schema import (
    STATUS_SUCCESS,
    ShardWriter,
    shard_file_name,
    shard_schema,
)
from vlscale.platform.data.sources import Slice, source_rows

PARTS_DIR = ".parts"
"""The staging sub-folder holding each slice's shards until the driver names them."""


@dataclass(frozen=True)
class RowRules:
    """How every task turns source rows into output rows (picklable, sent once per import)."""

    verify: bool
    """Decode every image and drop the undecodable ones (the output is then `verified`)."""
    label_key: str | None
    """The label column / member; None drops labels."""
    class_names: tuple[str, ...] | None = None
    """Set for a zero-shot import: the labels index it."""
    classnames_flag: str = ""
    """How the user gave the class names, for error messages."""

    @property
    def lookup(self) -> dict[str, int]:
        """Class name -> index; a repeated name (ImageNet has two) means its first class."""
        lookup: dict[str, int] = {}
        for index, name in enumerate(self.class_names or ()):
            lookup.setdefault(name, index)
        return lookup


@dataclass
class SliceResult:
    """What a task reports back: small, whatever the slice's size."""

    index: int
    shards: list[tuple[str, int]] = field(default_factory=list)
    """(part file relative to the parts folder, rows), in writing order."""
    skipped: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    """A UserError's message: the import stops and writes nothing."""


def _rows(piece: Slice, rules: RowRules) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(source file, row number in it, row) for every row of the slice."""
    if piece.root:
        names = rules.class_names or ()
        for number, row in enumerate(file_rows(Path(piece.root), piece.files, names),
                                     piece.first_row):
            yield piece.root, number, row
        return
    for part in piece.parts:
        rows = source_rows(Path(part.path), rules.label_key, part.row_groups)
        for number, row in enumerate(rows, part.first_row):
            if rules.label_key is None:
                row["label"] = None
            yield part.path, number, row


def label_index(value: Any, lookup: dict[str, int], count: int, origin: str, key: Any,
                flag: str) -> int | None:
    """The class index of a raw label (an int, an int-like string, or a class name); None when
    the row has none. A label the class names do not cover is a UserError: the names do not
    belong to these labels."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text.lstrip("-").isdigit():
            value = int(text)
        elif text in lookup:
            return lookup[text]
        else:
            raise UserError(f"label {text!r} of row {key} in {origin} is not one of the "
                            f"{count} class names of {flag}; pass the class names these "
                            "labels use")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    if not 0 <= value < count:
        raise UserError(f"label {value} of row {key} in {origin} is outside the {count} "
                        f"class names of {flag} (labels 0..{count - 1}); pass the class "
                        "names these labels index")
    return value


def reject_reason(row: dict[str, Any], verify: bool) -> str | None:
    """Why a row is dropped (the `skipped` key), or None to keep it."""
    if row["status"] is not None and row["status"] != STATUS_SUCCESS:
        return "status"
    if not row["image"]:
        return "no_image"
    if not isinstance(row["caption"], str) or not row["caption"].strip():
        return "no_caption"
    if verify and open_image(row["image"]) is None:
        return "bad_image"
    return None


def import_slice(piece: Slice, rules: RowRules, parts: str | Path) -> SliceResult:
    """Convert one slice into shards under `parts/<slice number>/`; a UserError (a label the
    class names do not cover, a damaged source file) comes back as the result's `error`."""
    names = rules.class_names
    lookup = rules.lookup
    directory = Path(parts) / f"{piece.index:06d}"
    if not Path(parts).is_dir():  # the import was stopped and its staging folder removed
        return SliceResult(piece.index, error=f"the staging folder {parts} is gone")
    writer = ShardWriter(directory, shard_schema(with_label=names is not None))
    skipped: Counter[str] = Counter()
    try:
        for origin, number, row in _rows(piece, rules):
            label = None
            if names is not None:
                label = label_index(row["label"], lookup, len(names), origin,
                                    row["key"] if row["key"] is not None else f"#{number}",
                                    rules.classnames_flag)
                if label is None:
                    skipped["no_label"] += 1
                    continue
                if not isinstance(row["caption"], str) or not row["caption"].strip():
                    row["caption"] = names[label]  # labelled sets often have no captions
            reason = reject_reason(row, rules.verify)
            if reason:
                skipped[reason] += 1
                continue
            writer.add({"key": str(row["key"] if row["key"] is not None
                                   else f"{Path(origin).stem}-{number:09d}"),
                        "jpg": row["image"], "txt": row["caption"].strip(), "label": label,
                        "meta": json.dumps(row["meta"], default=str, sort_keys=True)})
        written = writer.close()
    except UserError as error:
        writer.close()
        return SliceResult(piece.index, error=str(error))
    return SliceResult(piece.index, [(f"{directory.name}/{name}", rows) for name, rows in written],
                       dict(skipped))


def run_in_process(slices: Sequence[Slice], rules: RowRules, parts: Path) -> list[SliceResult]:
    """Every slice in this process, in order (`--workers 1`): stops at the first error."""
    results = []
    for piece in slices:
        result = import_slice(piece, rules, parts)
        if result.error:
            raise UserError(result.error)
        results.append(result)
    return results


def run_on_ray(slices: Sequence[Slice], rules: RowRules, parts: Path, workers: int
               ) -> list[SliceResult]:
    """Every slice as a 1-CPU Ray task, at most `workers` in flight, on the connected cluster;
    results are collected by slice number. The first error cancels what is queued or running
    and waits for it to end, so that no task writes into the staging folder once the caller
    removes it."""
    import ray

    task = ray.remote(num_cpus=1)(import_slice)
    rules_ref, waiting = ray.put(rules), list(reversed(slices))
    running: dict[Any, int] = {}
    results: dict[int, SliceResult] = {}
    try:
        while waiting or running:
            while waiting and len(running) < max(1, workers):
                piece = waiting.pop()
                running[task.remote(piece, rules_ref, str(parts))] = piece.index
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                del running[ref]
                result = ray.get(ref)
                if result.error:
                    raise UserError(result.error)
                results[result.index] = result
    finally:
        if running:  # stopped early (an error, Ctrl-C): end the tasks before the caller cleans up
            for ref in running:
                ray.cancel(ref, force=True)
            ray.wait(list(running), num_returns=len(running), timeout=60)
    return [results[piece.index] for piece in slices]


def assemble(staging: Path, results: Sequence[SliceResult]) -> list[tuple[str, int]]:
    """Name the part files `00000.parquet`, `00001.parquet`, ... in slice order (renames
    within the staging folder), remove the parts folder; returns [(file, rows)]."""
    parts = staging / PARTS_DIR
    shards: list[tuple[str, int]] = []
    for result in sorted(results, key=lambda r: r.index):
        for part, rows in result.shards:
            name = shard_file_name(len(shards))
            os.replace(parts / part, staging / name)
            shards.append((name, rows))
    shutil.rmtree(parts)
    return shards


def _invisible(paths: Sequence[str]) -> list[str]:
    """The paths this process cannot see (run on each node)."""
    return [path for path in paths if not os.path.exists(path)]


def check_nodes_see(paths: Sequence[str]) -> None:
    """Refuse, in one line, when a node of the connected Ray cluster cannot see one of
    `paths` (the source and the staging folder): its tasks would fail, or write shards where
    the driver never finds them. One zero-CPU task pinned to each alive node looks."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0)(_invisible)
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    pending = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        node["NodeID"], soft=False)).remote(list(paths)) for node in nodes]
    for node, missing in zip(nodes, ray.get(pending)):
        if missing:
            raise UserError(f"node {node.get('NodeManagerAddress', node['NodeID'])} of this "
                            f"{len(nodes)}-node Ray cluster cannot see {missing[0]}: on a "
                            "cluster SRC and OUT must be on storage every node mounts (a "
                            "shared filesystem at the same path), or run with --workers 1")

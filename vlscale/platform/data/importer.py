"""`vlscale data import`: img2dataset parquet, webdataset tar shards or class folders -> our
shards, in parallel slices.

The source is cut into slices (sources.py: runs of row groups of a parquet file, whole tars,
runs of a class-folder set's shuffled file list), and each slice is converted by its own task
(import_tasks.py), in this process (`workers=1`) or as Ray tasks on an embedded or a
connected cluster; the output is the same either way. A task streams its rows: one source
record batch (or tar member, or image file) and one output row group in memory. Rows without a
success status, image bytes or a caption are dropped and counted; with `verify` (the default)
so are rows whose image does not decode, and the output is marked verified so that training can
locate a resume position without a counting pass.

A labelled source (class folders, or a label column / member) becomes a zero-shot set: its
dataset.json carries the class names and prompt templates (classes.py) the zero-shot evaluator
reads, and its split is "zeroshot". Labels without class names are refused before anything is
written; a label the names do not cover, found by a task, stops the import, which then writes
nothing either (the staging folder is dropped, see output.py).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlscale.errors import UserError
from vlscale.platform.data.classes import (
    CLASS_NAME_SETS,
    DEFAULT_TEMPLATES,
    IMAGENET_CLASSES,
    load_class_names,
    load_templates,
)
from vlscale.platform.data.folders import list_class_folders, shuffled_files
from vlscale.platform.data.import_tasks import (
    PARTS_DIR,
    RowRules,
    assemble,
    check_nodes_see,
    run_in_process,
    run_on_ray,
)
from vlscale.platform.data.output import check_output, staged_output
from vlscale.platform.data.resources import available_cpus
from vlscale.platform.data.schema import LABEL_COLUMN, write_manifest
from vlscale.platform.data.sources import (
    SLICE_ROWS,
    SOURCE_READ_ERRORS,
    TAR_LABEL_KEY,
    Slice,
    first_has_label,
    folder_slices,
    shard_slices,
    source_files,
    unreadable,
)

__all__ = ["SOURCE_READ_ERRORS", "import_shards", "unreadable"]

PARALLEL_MIN_BYTES = 256 * 2**20
"""Below this much source data an import runs in this process unless `workers` or a cluster
asks for Ray: at ~500 us of CPU per row (decode-verify, parquet; bench/import_speed.py) and
~10 KiB per 256 px JPEG row, 256 MiB is ~25,000 rows, ~13 s in one process, of which 2 CPUs
save ~6 s, about what starting an embedded Ray costs here (5-10 s); bigger sources gain."""


@dataclass
class _Plan:
    """What an import writes, settled (and every deterministic refusal raised) before OUT is
    touched."""

    slices: list[Slice]
    rules: RowRules
    parameters: dict[str, Any]
    templates: list[str] | None = None
    seed: int | None = None
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def class_names(self) -> list[str] | None:
        """Set for a zero-shot import: the rows' labels index it."""
        names = self.rules.class_names
        return None if names is None else list(names)


def _source_bytes(slices: list[Slice]) -> int:
    """The source's size on disk (class folders: estimated from one file per slice, since
    stat-ing a million images would itself take a while on a network filesystem)."""
    paths = {part.path for piece in slices for part in piece.parts}
    total = sum(os.path.getsize(path) for path in paths)
    samples = [os.path.join(piece.root, piece.files[0][0]) for piece in slices if piece.files]
    if samples:  # class folders: about as many bytes per file as the first file of each slice
        rows = sum(len(piece.files) for piece in slices)
        total += rows * sum(map(os.path.getsize, samples)) // len(samples)
    return total


def uses_ray(slices: list[Slice], workers: int | None, address: str | None) -> bool:
    """Ray runs the slices unless there is one, `workers` is 1, or (workers not given, no
    cluster named) the source is too small for Ray's start-up to pay or there is one CPU."""
    from vlscale.platform.cluster import cluster_address

    if workers is not None and workers < 1:
        raise UserError(f"--workers {workers}: give 1 (this process, no Ray) or more")
    if len(slices) < 2 or workers == 1:
        return False
    if workers is not None or cluster_address(address) is not None:
        return True
    return available_cpus() > 1 and _source_bytes(slices) >= PARALLEL_MIN_BYTES


def _connect(source: str | Path, out: str | Path, address: str | None) -> int:
    """Connect to Ray; returns the alive node count. Several nodes need absolute SRC and OUT
    (a relative path means the driver's working folder, e.g. `ray job submit`'s temporary
    copy, which other nodes do not have)."""
    from vlscale.platform.cluster import alive_nodes, ensure_ray

    ensure_ray(address)
    nodes = alive_nodes()
    if nodes > 1:
        relative = [str(p) for p in (source, out) if not Path(p).expanduser().is_absolute()]
        if relative:
            raise UserError(f"this Ray cluster has {nodes} nodes but {relative[0]} is a relative "
                            "path (a folder of this node's working directory): give SRC and OUT "
                            "as absolute paths on storage every node mounts")
    return nodes


def import_shards(source: str | Path, out: str | Path, *, verify: bool = True,
                  overwrite: bool = False, class_names: str | None = None,
                  templates: str | None = None, label_key: str | None = None,
                  labels: bool = True, seed: int = 0, workers: int | None = None,
                  address: str | None = None, slice_rows: int = SLICE_ROWS) -> dict[str, Any]:
    """Convert every shard (or class folder) in `source`; returns the written manifest (with
    skip counts).

    A labelled source is written as a zero-shot set (see the module docstring): `class_names`
    and `templates` are `--classnames` / `--templates` values (classes.py); `label_key` names
    the label column (parquet, default "label") or member / json field (tar, default "cls");
    `labels=False` drops a shard set's labels; `seed` orders a class-folder set's rows.
    `workers`: 1 converts the slices in this process; N > 1 runs them as Ray tasks, N at a
    time; None (the default) uses Ray, with as many tasks as CPUs, when `address` (or
    $RAY_ADDRESS) names a cluster or the source is big enough (`PARALLEL_MIN_BYTES`). The
    output does not depend on it. On a cluster SRC and OUT must be on storage every node sees
    (checked). OUT is replaced only once the import is complete (see output.py): a corrupt
    source file found half-way leaves an existing OUT as it was.
    """
    if slice_rows < 1:
        raise UserError(f"slice_rows {slice_rows}: give a positive number of rows")
    root = Path(source)
    files = source_files(root)
    check_output(Path(out), overwrite=overwrite, inputs=[root])
    if class_names is None and templates is not None:
        raise UserError("--templates needs a labelled set with class names: pass --classnames "
                        "too (or class folders)")
    plan = (_shard_plan(root, files, class_names, templates, label_key, labels, verify,
                        slice_rows) if files
            else _folder_plan(root, class_names, templates, label_key, labels, seed, verify,
                              slice_rows))
    plan.parameters.update(source=str(root.resolve()), verify=verify, slice_rows=slice_rows)
    parallel = uses_ray(plan.slices, workers, address)
    nodes = _connect(source, out, address) if parallel else 1
    if parallel and workers is None:
        from vlscale.platform.cluster import cluster_cpus

        workers = max(1, int(cluster_cpus()))
    names = plan.class_names
    with staged_output(out, overwrite=overwrite, inputs=[root]) as staging:
        parts = staging / PARTS_DIR
        parts.mkdir()
        if parallel:
            if nodes > 1:
                check_nodes_see([str(root.resolve()), str(parts)])
            results = run_on_ray(plan.slices, plan.rules, parts, workers or 1)
        else:
            results = run_in_process(plan.slices, plan.rules, parts)
        skipped: Counter[str] = Counter(plan.skipped)
        for result in results:
            skipped.update(result.skipped)
        shards = assemble(staging, results)
        if not shards:
            raise UserError(f"no usable rows in {source} (skipped: {dict(skipped)}); nothing "
                            "written")
        extra: dict[str, Any] = {}
        if names is not None:
            extra.update(class_names=names, templates=plan.templates,
                         task=f"classify the image into one of {len(names)} classes")
        return write_manifest(staging, writer="import",
                              split="zeroshot" if names is not None else "train",
                              parameters=plan.parameters, seed=plan.seed, shards=shards,
                              image_size=None, verified=verify, skipped=dict(skipped), **extra)


def _shard_plan(source: Path, files: list[Path], classnames: str | None, templates: str | None,
                label_key: str | None, labels: bool, verify: bool, slice_rows: int) -> _Plan:
    """img2dataset parquet / webdataset tars: labelled when the first shard has the label
    column (member); then class names are required."""
    parameters: dict[str, Any] = {"layout": "shards", "files": [p.name for p in files]}
    first = files[0]
    slices = shard_slices(files, slice_rows)  # reads every footer: a cut one is refused here
    what = "column" if first.suffix == ".parquet" else "member (or .json field)"
    key = label_key or (LABEL_COLUMN if first.suffix == ".parquet" else TAR_LABEL_KEY)
    if not labels:
        if classnames is not None or label_key is not None:
            raise UserError("--no-labels drops the labels, so --classnames and --label-key do "
                            "not apply; drop one or the other")
        return _Plan(slices, RowRules(verify, None), parameters)
    found = first_has_label(files, key)
    if label_key is not None and not found:
        raise UserError(f"--label-key {label_key}: the first shard {first.name} has no {what} "
                        f"{label_key!r}; name the {what} that holds the class index")
    if not found:
        if classnames is not None:
            raise UserError(f"--classnames needs labels, but the first shard {first.name} has "
                            f"no {what} {key!r}; name the label's {what} with --label-key")
        return _Plan(slices, RowRules(verify, None), parameters)
    if classnames is None:
        raise UserError(f"{source} is labelled (the {what} {key!r} of {first.name}) but has no "
                        "class names, which a zero-shot set needs: pass --classnames FILE "
                        "(line i names label i) or --classnames imagenet, or --no-labels to "
                        "import it as a captioned set")
    names = load_class_names(classnames)
    parameters.update(label_key=key, classnames=classnames,
                      templates=templates or DEFAULT_TEMPLATES)
    return _Plan(slices, RowRules(verify, key, tuple(names), f"--classnames {classnames}"),
                 parameters, load_templates(templates))


def _folder_plan(source: Path, classnames: str | None, templates: str | None,
                 label_key: str | None, labels: bool, seed: int, verify: bool, slice_rows: int
                 ) -> _Plan:
    """A class-folder set: labels are the sorted folders; class names the folder names, a
    named set or a file, one per folder."""
    if label_key is not None or not labels:
        raise UserError(f"{source} is a class-folder set, labelled by its folders: --label-key "
                        "and --no-labels apply to parquet / tar shards only")
    listing = list_class_folders(source)
    folders = listing.folders
    if classnames is not None:
        names = load_class_names(classnames)
        if len(names) != len(folders):
            imagenet = (f" (--classnames imagenet assumes all {IMAGENET_CLASSES} ImageNet class "
                        "folders, whose sorted order is ImageNet's class order; for a subset "
                        "pass --classnames FILE)" if classnames in CLASS_NAME_SETS else "")
            raise UserError(f"{source} has {len(folders)} class folders but --classnames "
                            f"{classnames} names {len(names)} classes; give one name per folder, "
                            f"in sorted folder order{imagenet}")
    elif listing.wordnet_ids:
        raise UserError(f"the class folders of {source} are WordNet ids ({folders[0]}, ...), "
                        f"not names: pass --classnames imagenet (all {IMAGENET_CLASSES} ImageNet "
                        "folders, sorted = ImageNet's class order) or --classnames FILE")
    else:
        names = listing.default_class_names()
        if not all(names):
            raise UserError(f"a class folder of {source} gives a blank class name; pass "
                            "--classnames FILE with one name per folder, in sorted folder order")
    parameters = {"layout": "class-folders", "classes": len(folders),
                  "classnames": classnames or "folder names",
                  "templates": templates or DEFAULT_TEMPLATES}
    flag = f"--classnames {classnames}" if classnames else "the folder names"
    return _Plan(folder_slices(source, shuffled_files(listing, seed), slice_rows),
                 RowRules(verify, None, tuple(names), flag), parameters,
                 load_templates(templates), seed, listing.skipped)

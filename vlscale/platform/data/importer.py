"""`vlscale data import`: img2dataset parquet, webdataset tar shards or class folders -> our
shards, streaming.

Source rows are read one record batch (parquet), one sample (tar) or one image file (class
folders, see folders.py) at a time and written through a `ShardWriter`, which buffers one row
group: a source shard is never held in memory, let alone twice. Rows without a success status,
image bytes or a caption are dropped and counted; with `verify` (the default) so are rows whose
image does not decode, and the output is marked verified so that training can locate a resume
position without a counting pass.

A labelled source (class folders, or a label column / member) becomes a zero-shot set: its
dataset.json carries the class names and prompt templates (classes.py) the zero-shot evaluator
reads, and its split is "zeroshot". Labels without class names, or labels the names do not
cover, are refused before (or, for a label found late, instead of) writing anything.
"""

from __future__ import annotations

import json
import tarfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vlscale.errors import UserError
from vlscale.platform.data.classes import (
    CLASS_NAME_SETS,
    DEFAULT_TEMPLATES,
    IMAGENET_CLASSES,
    load_class_names,
    load_templates,
)
from vlscale.platform.data.folders import class_folders, folder_rows, list_class_folders
from vlscale.platform.data.output import check_output, staged_output
from vlscale.platform.data.preprocess import open_image
from vlscale.platform.data.schema import (
    CAPTION_COLUMNS,
    IMAGE_COLUMNS,
    KEY_COLUMN,
    LABEL_COLUMN,
    META_COLUMN,
    STATUS_COLUMN,
    STATUS_SUCCESS,
    ShardWriter,
    find_column,
    shard_schema,
    write_manifest,
)

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
READ_BATCH_ROWS = 1000
TAR_LABEL_KEY = "cls"
"""The webdataset label member (`{key}.cls`, as clip_benchmark's sets); parquet's is `label`."""


def _parquet_rows(path: Path, label_key: str = LABEL_COLUMN) -> Iterator[dict[str, Any]]:
    """img2dataset rows; "label" is the raw value of the `label_key` column (None without)."""
    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    image_column, caption_column = find_column(names, IMAGE_COLUMNS), find_column(names,
                                                                                 CAPTION_COLUMNS)
    skip = {image_column, caption_column, KEY_COLUMN, STATUS_COLUMN, LABEL_COLUMN, META_COLUMN,
            label_key}
    extra = [n for n in names if n not in skip and not pa.types.is_binary(
        parquet.schema_arrow.field(n).type)]
    for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS):
        columns = batch.to_pydict()
        for i in range(batch.num_rows):
            image = columns[image_column][i] if image_column else None
            if isinstance(image, dict):  # Hugging Face image struct
                image = image.get("bytes")
            meta = {n: columns[n][i] for n in extra}
            if META_COLUMN in columns and columns[META_COLUMN][i]:
                meta["meta"] = columns[META_COLUMN][i]
            yield {"key": columns.get(KEY_COLUMN, [None] * batch.num_rows)[i],
                   "image": image,
                   "caption": columns[caption_column][i] if caption_column else None,
                   "status": columns[STATUS_COLUMN][i] if STATUS_COLUMN in columns else None,
                   "label": columns[label_key][i] if label_key in columns else None,
                   "meta": meta}


def _tar_rows(path: Path, label_key: str = TAR_LABEL_KEY) -> Iterator[dict[str, Any]]:
    """webdataset samples: consecutive members sharing a key (path up to the first dot); "label"
    is the raw `{key}.<label_key>` member, or the `label_key` field of `{key}.json`."""
    key, parts = None, {}
    end = 0
    with tarfile.open(path, "r|*") as archive:
        for member in archive:
            end = member.offset_data + -(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            if not member.isfile():
                continue
            directory, _, base = member.name.rpartition("/")
            stem, _, extension = base.partition(".")
            member_key = f"{directory}/{stem}" if directory else stem
            if member_key != key and parts:
                yield _tar_sample(key, parts, label_key)
                parts = {}
            key = member_key
            handle = archive.extractfile(member)
            parts[extension.lower()] = handle.read() if handle else b""
    _check_end_marker(path, end)
    if parts:
        yield _tar_sample(key, parts, label_key)


def _check_end_marker(path: Path, end: int) -> None:
    """Raise when an uncompressed tar lacks its end-of-archive marker (two zero blocks after the
    last member): tarfile reads a tar cut at a block boundary as a shorter, valid one, which
    would silently drop samples. Only for a plain (ustar) file, whose member offsets are file
    offsets; a cut compressed tar fails in its decompressor instead."""
    marker = 2 * tarfile.BLOCKSIZE
    with open(path, "rb") as handle:
        if handle.read(262)[257:262] != b"ustar":  # compressed (offsets are not file offsets)
            return
        handle.seek(end)
        tail = handle.read(marker)
    if len(tail) < marker or tail.strip(b"\0"):
        raise tarfile.ReadError(f"no end-of-archive marker after byte {end}, the file was cut "
                                "short")


def _tar_sample(key: str | None, parts: dict[str, bytes], label_key: str) -> dict[str, Any]:
    image = next((parts[e] for e in IMAGE_EXTENSIONS if e in parts), None)
    meta: dict[str, Any] = {}
    if "json" in parts:
        try:
            meta = json.loads(parts["json"])
        except ValueError:
            meta = {}
    caption = parts["txt"].decode("utf-8", "replace") if "txt" in parts else meta.get("caption")
    label = parts[label_key].decode("utf-8", "replace") if label_key in parts \
        else meta.get(label_key)
    return {"key": key, "image": image, "caption": caption, "status": meta.get("status"),
            "label": label, "meta": meta}


def source_files(source: Path) -> list[Path]:
    """The .parquet / .tar shards directly in `source`; [] when it is a class-folder set."""
    if not source.is_dir():
        raise UserError(f"import source {source} is not a folder")
    files = sorted(p for p in source.iterdir() if p.suffix == ".parquet" or p.name.endswith(
        (".tar", ".tar.gz", ".tgz")))
    if not files and not class_folders(source):
        raise UserError(f"no .parquet or .tar shards and no class folders in {source}; point at "
                        "img2dataset output or an ImageNet-style folder (SRC/<class>/<images>)")
    return files


def unreadable(path: Path | str, error: BaseException) -> UserError:
    """The one-line error for a source file that cannot be read to its end."""
    detail = " ".join(str(error).split()) or type(error).__name__
    return UserError(f"{path} is corrupt or truncated ({detail}); re-download or rewrite it, or "
                     "move it out of the folder, and run again")


SOURCE_READ_ERRORS = (OSError, EOFError, zlib.error, tarfile.TarError, pa.ArrowException)
"""What reading a damaged parquet page, footer or tar member raises."""


def _guarded(rows: Iterator[dict[str, Any]], path: Path) -> Iterator[dict[str, Any]]:
    """`rows`, with a read error of the source file turned into a one-line UserError (errors
    raised by the consumer between rows are not thrown in here, so they keep their traceback)."""
    try:
        yield from rows
    except SOURCE_READ_ERRORS as error:
        raise unreadable(path, error) from error


def _source_rows(path: Path, label_key: str | None = None) -> Iterator[dict[str, Any]]:
    if path.suffix == ".parquet":
        return _guarded(_parquet_rows(path, label_key or LABEL_COLUMN), path)
    return _guarded(_tar_rows(path, label_key or TAR_LABEL_KEY), path)


@dataclass
class _Plan:
    """What an import writes, settled (and every deterministic refusal raised) before OUT is
    touched."""

    rows: Callable[[], Iterator[tuple[str, int, dict[str, Any]]]]
    """(source name, row number in it, row) for every source row."""
    parameters: dict[str, Any]
    class_names: list[str] | None = None
    """Set for a zero-shot import: the rows' labels index it."""
    templates: list[str] | None = None
    classnames_flag: str = ""
    seed: int | None = None
    skipped: dict[str, int] = field(default_factory=dict)


def import_shards(source: str | Path, out: str | Path, *, verify: bool = True,
                  overwrite: bool = False, class_names: str | None = None,
                  templates: str | None = None, label_key: str | None = None,
                  labels: bool = True, seed: int = 0) -> dict[str, Any]:
    """Convert every shard (or class folder) in `source`; returns the written manifest (with
    skip counts).

    A labelled source is written as a zero-shot set (see the module docstring): `class_names`
    and `templates` are `--classnames` / `--templates` values (classes.py); `label_key` names
    the label column (parquet, default "label") or member / json field (tar, default "cls");
    `labels=False` drops a shard set's labels; `seed` orders a class-folder set's rows.
    OUT is replaced only once the import is complete (see output.py): a corrupt source file
    found half-way leaves an existing OUT as it was.
    """
    root = Path(source)
    files = source_files(root)
    check_output(Path(out), overwrite=overwrite, inputs=[root])
    if class_names is None and templates is not None:
        raise UserError("--templates needs a labelled set with class names: pass --classnames "
                        "too (or class folders)")
    plan = (_shard_plan(root, files, class_names, templates, label_key, labels) if files
            else _folder_plan(root, class_names, templates, label_key, labels, seed))
    plan.parameters.update(source=str(root.resolve()), verify=verify)
    names = plan.class_names
    lookup: dict[str, int] = {}  # a repeated name (ImageNet has two) means its first class
    for index, name in enumerate(names or ()):
        lookup.setdefault(name, index)
    with staged_output(out, overwrite=overwrite, inputs=[root]) as staging:
        writer = ShardWriter(staging, shard_schema(with_label=names is not None))
        skipped: Counter[str] = Counter(plan.skipped)
        for origin, number, row in plan.rows():
            label = None
            if names is not None:
                label = _label_index(row["label"], lookup, len(names), origin,
                                     row["key"] if row["key"] is not None else f"#{number}",
                                     plan.classnames_flag)
                if label is None:
                    skipped["no_label"] += 1
                    continue
                if not isinstance(row["caption"], str) or not row["caption"].strip():
                    row["caption"] = names[label]  # labelled sets often have no captions
            reason = _reject(row, verify)
            if reason:
                skipped[reason] += 1
                continue
            writer.add({"key": str(row["key"] if row["key"] is not None
                                   else f"{Path(origin).stem}-{number:09d}"),
                        "jpg": row["image"], "txt": row["caption"].strip(), "label": label,
                        "meta": json.dumps(row["meta"], default=str, sort_keys=True)})
        shards = writer.close()
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
                label_key: str | None, labels: bool) -> _Plan:
    """img2dataset parquet / webdataset tars: labelled when the first shard has the label
    column (member); then class names are required."""
    parameters: dict[str, Any] = {"layout": "shards", "files": [p.name for p in files]}
    first = files[0]
    what = "column" if first.suffix == ".parquet" else "member (or .json field)"
    key = label_key or (LABEL_COLUMN if first.suffix == ".parquet" else TAR_LABEL_KEY)
    if not labels:
        if classnames is not None or label_key is not None:
            raise UserError("--no-labels drops the labels, so --classnames and --label-key do "
                            "not apply; drop one or the other")
        return _Plan(lambda: _rows_of(files, None), parameters)
    found = _first_has_label(files, key)
    if label_key is not None and not found:
        raise UserError(f"--label-key {label_key}: the first shard {first.name} has no {what} "
                        f"{label_key!r}; name the {what} that holds the class index")
    if not found:
        if classnames is not None:
            raise UserError(f"--classnames needs labels, but the first shard {first.name} has "
                            f"no {what} {key!r}; name the label's {what} with --label-key")
        return _Plan(lambda: _rows_of(files, None), parameters)
    if classnames is None:
        raise UserError(f"{source} is labelled (the {what} {key!r} of {first.name}) but has no "
                        "class names, which a zero-shot set needs: pass --classnames FILE "
                        "(line i names label i) or --classnames imagenet, or --no-labels to "
                        "import it as a captioned set")
    names = load_class_names(classnames)
    parameters.update(label_key=key, classnames=classnames,
                      templates=templates or DEFAULT_TEMPLATES)
    return _Plan(lambda: _rows_of(files, key), parameters, names, load_templates(templates),
                 f"--classnames {classnames}")


def _rows_of(files: list[Path], label_key: str | None
             ) -> Iterator[tuple[str, int, dict[str, Any]]]:
    for path in files:
        for number, row in enumerate(_source_rows(path, label_key)):
            if label_key is None:
                row["label"] = None
            yield str(path), number, row


def _folder_plan(source: Path, classnames: str | None, templates: str | None,
                 label_key: str | None, labels: bool, seed: int) -> _Plan:
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
    return _Plan(lambda: ((str(source), n, row) for n, row in
                          enumerate(folder_rows(listing, names, seed))),
                 parameters, names, load_templates(templates), flag, seed, listing.skipped)


def _label_index(value: Any, lookup: dict[str, int], count: int, origin: str, key: Any,
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


def _reject(row: dict[str, Any], verify: bool) -> str | None:
    if row["status"] is not None and row["status"] != STATUS_SUCCESS:
        return "status"
    if not row["image"]:
        return "no_image"
    if not isinstance(row["caption"], str) or not row["caption"].strip():
        return "no_caption"
    if verify and open_image(row["image"]) is None:
        return "bad_image"
    return None


def _first_has_label(files: list[Path], label_key: str) -> bool:
    first = files[0]
    if first.suffix == ".parquet":
        try:
            return label_key in pq.ParquetFile(first).schema_arrow.names
        except SOURCE_READ_ERRORS as error:
            raise unreadable(first, error) from error
    return any(row["label"] is not None
               for row, _ in zip(_source_rows(first, label_key), range(1)))

"""`vlscale data synth | fashion | import | check`."""

from __future__ import annotations

import argparse
import time
from typing import Any

OVERWRITE_HELP = ("replace the shards in a non-empty OUT, only once the new ones are complete "
                  "(refused when OUT holds anything but shards and dataset.json)")
LAYOUT_HELP = ("writes OUT/train (training shards), OUT/eval (held-out captioned shards) and "
               "OUT/zeroshot (labelled classification shards), each with its dataset.json")


def register(subparsers: Any) -> None:
    data = subparsers.add_parser(
        "data", help="write, import and check parquet training shards",
        description="Write training shards (img2dataset parquet layout + dataset.json), import "
                    "existing img2dataset / webdataset shards, or check a shard folder.")
    commands = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    synth = commands.add_parser(
        "synth", help="procedural shapes scenes with captions (deterministic for a seed)",
        description=f"Render 1-3 shapes on textured backgrounds with alt-text-like captions; "
                    f"{LAYOUT_HELP}.")
    synth.add_argument("out", metavar="OUT", help="output folder (must be empty or absent)")
    synth.add_argument("--samples", type=int, required=True, help="training rows to write")
    synth.add_argument("--image-size", type=int, default=32, help="image side in pixels (32)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (0)")
    synth.add_argument("--eval-samples", type=int, default=10_000,
                       help="held-out captioned rows (10000; 0 to skip)")
    synth.add_argument("--zeroshot-samples", type=int, default=10_000,
                       help="labelled one-object rows, 80 colour x shape classes (10000; 0 skips)")
    _common_writer_options(synth)
    synth.set_defaults(func=_synth)

    fashion = commands.add_parser(
        "fashion", help="Fashion-MNIST items composed into captioned scenes",
        description=f"Compose tinted Fashion-MNIST items into captioned scenes (training items "
                    f"for OUT/train, test items for OUT/eval, every test item labelled for "
                    f"OUT/zeroshot); {LAYOUT_HELP}. Needs Debian's dataset-fashion-mnist.")
    fashion.add_argument("out", metavar="OUT", help="output folder (must be empty or absent)")
    fashion.add_argument("--source", help="folder with the idx files (default: "
                                          "$VLSCALE_FASHION_MNIST or /usr/share/datasets/"
                                          "fashion-mnist)")
    fashion.add_argument("--samples", type=int, default=60_000, help="training scenes (60000)")
    fashion.add_argument("--eval-samples", type=int, default=10_000,
                         help="held-out scenes from test items (10000; 0 to skip)")
    fashion.add_argument("--image-size", type=int, default=64, help="image side in pixels (64)")
    fashion.add_argument("--seed", type=int, default=0, help="random seed (0)")
    _common_writer_options(fashion)
    fashion.set_defaults(func=_fashion)

    importer = commands.add_parser(
        "import", help="convert img2dataset parquet, webdataset tar shards or class folders",
        description="Convert a folder of img2dataset parquet shards, webdataset tars "
                    "({key}.jpg + {key}.txt [+ {key}.cls]) or class folders (SRC/<class>/"
                    "<images>, ImageNet-style; label i = the i-th folder in sorted order) into "
                    "our shards; rows without a success status, image or caption are dropped "
                    "and counted. A labelled source becomes a zero-shot set: its dataset.json "
                    "carries the class names and prompt templates the zero-shot evaluator "
                    "needs (labels without class names are refused). The source is cut into "
                    "slices (at most 10,000 rows of parquet row groups, a whole tar, 10,000 "
                    "class-folder images) converted in parallel as Ray tasks, one output "
                    "shard (at most 10,000 rows) per slice, named in source order: the output "
                    "is the same for any --workers. On a multi-node cluster (--address) SRC "
                    "and OUT must be absolute paths on storage every node mounts (checked).")
    importer.add_argument("source", metavar="SRC",
                          help="folder of .parquet or .tar shards, or of class folders")
    importer.add_argument("out", metavar="OUT", help="output folder (must be empty or absent)")
    importer.add_argument("--no-verify", dest="verify", action="store_false",
                          help="do not decode every image (faster; bad images are then skipped "
                               "at training time, and resuming needs a counting pass)")
    importer.add_argument(
        "--classnames", metavar="imagenet|FILE",
        help="class names of a labelled set: 'imagenet' (open_clip's ImageNet-1k names; class "
             "folders must be the 1000 ImageNet WordNet-id folders, whose sorted order is "
             "ImageNet's class order; shard labels must be ImageNet class indices) or a file "
             "(a JSON list or one name per line; entry i names label i, i.e. the i-th class "
             "folder in sorted order). Default for class folders: the folder names, "
             "underscores as spaces")
    importer.add_argument(
        "--templates", metavar="openai|simple|FILE",
        help="zero-shot prompt templates, each with one {} for the class name: 'openai' "
             "(OpenAI's 80 ImageNet prompts, the default), 'simple' (their 7-prompt subset), "
             "both as open_clip ships them, or a file (JSON list or one per line)")
    importer.add_argument(
        "--label-key", metavar="KEY",
        help="where shard labels are: a parquet column (default 'label') or a webdataset "
             "member extension / .json field (default 'cls'); an integer class index or a "
             "class name")
    importer.add_argument("--no-labels", dest="labels", action="store_false",
                          help="drop the labels of a labelled parquet / tar set (import it as a "
                               "captioned set)")
    importer.add_argument("--seed", type=int, default=0,
                          help="seed of a class-folder set's row order (rows are shuffled, so "
                               "the first rows the evaluator reads span every class) (0)")
    importer.add_argument(
        "--workers", type=int, default=None, metavar="N",
        help="parallel import tasks: 1 converts in this process without Ray; N > 1 runs N Ray "
             "Data tasks at a time (an embedded local Ray, or the cluster of --address). "
             "Default: Ray with one task per CPU when --address / $RAY_ADDRESS names a cluster "
             "or the source holds at least 256 MiB, else this process (Ray's start-up would "
             "cost more than it saves)")
    importer.add_argument(
        "--address", default=None,
        help="Ray cluster to run the import tasks on (default: $RAY_ADDRESS, else an embedded "
             "local Ray); SRC and OUT must then be on storage every node mounts")
    importer.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    importer.set_defaults(func=_import)

    degrade = commands.add_parser(
        "degrade", help="a copy of a shard folder with a fraction of captions swapped",
        description="Copy a shard folder (e.g. data/synth/train) with a known fraction of each "
                    "shard's captions swapped between images: a dataset that is worse by "
                    "construction, for checking that a dataset comparison finds the difference "
                    "(jobs/dataset_comparison_cpu.py). Deterministic for a seed.")
    degrade.add_argument("source", metavar="SRC", help="shard folder or URL to copy")
    degrade.add_argument("out", metavar="OUT", help="output folder (must be empty or absent)")
    degrade.add_argument("--swap-captions", type=float, required=True, metavar="FRACTION",
                         help="fraction of rows (0..1) whose captions are rotated among them")
    degrade.add_argument("--seed", type=int, default=0, help="random seed (0)")
    degrade.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    degrade.set_defaults(func=_degrade)

    check = commands.add_parser(
        "check", help="schema, row count, decodable images and caption lengths of a shard folder",
        description="Read a shard folder (or URL) and report its schema, rows, usable rows, "
                    "decodable-image ratio and a caption-length histogram.")
    check.add_argument("path", metavar="DIR", help="shard folder or URL (s3://...)")
    check.add_argument("--max-rows", type=int, default=None,
                       help="check only the first N rows (default: all)")
    check.set_defaults(func=_check)


def _common_writer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=None,
                        help="writer processes (default: the available CPUs)")
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)


def _summary(manifests: dict[str, dict[str, Any]], out: str, began: float) -> int:
    for split, manifest in manifests.items():
        print(f"{out}/{split}: {manifest['num_rows']} rows in {len(manifest['shards'])} shard(s)")
    print(f"done in {time.perf_counter() - began:.1f} s")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from vlscale.platform.data.synth import write_synth

    began = time.perf_counter()
    manifests = write_synth(args.out, samples=args.samples, image_size=args.image_size,
                            seed=args.seed, eval_samples=args.eval_samples,
                            zeroshot_samples=args.zeroshot_samples, workers=args.workers,
                            overwrite=args.overwrite)
    return _summary(manifests, args.out, began)


def _fashion(args: argparse.Namespace) -> int:
    from vlscale.platform.data.fashion import write_fashion

    began = time.perf_counter()
    manifests = write_fashion(args.out, source=args.source, samples=args.samples,
                              eval_samples=args.eval_samples, image_size=args.image_size,
                              seed=args.seed, workers=args.workers, overwrite=args.overwrite)
    return _summary(manifests, args.out, began)


def _import(args: argparse.Namespace) -> int:
    from vlscale.platform.data.importer import import_shards

    began = time.perf_counter()
    manifest = import_shards(args.source, args.out, verify=args.verify, overwrite=args.overwrite,
                             class_names=args.classnames, templates=args.templates,
                             label_key=args.label_key, labels=args.labels, seed=args.seed,
                             workers=args.workers, address=args.address)
    skipped = ", ".join(f"{k}={v}" for k, v in sorted(manifest["skipped"].items())) or "none"
    classes = (f"; zero-shot set: {len(manifest['class_names'])} classes, "
               f"{len(manifest['templates'])} templates" if "class_names" in manifest else "")
    print(f"{args.out}: {manifest['num_rows']} rows in {len(manifest['shards'])} shard(s); "
          f"skipped: {skipped}{classes}")
    print(f"done in {time.perf_counter() - began:.1f} s")
    return 0


def _degrade(args: argparse.Namespace) -> int:
    from vlscale.platform.data.degrade import degrade_shards

    began = time.perf_counter()
    manifest = degrade_shards(args.source, args.out, swap_fraction=args.swap_captions,
                              seed=args.seed, overwrite=args.overwrite)
    print(f"{args.out}: {manifest['num_rows']} rows in {len(manifest['shards'])} shard(s), "
          f"{args.swap_captions:.0%} of captions swapped")
    print(f"done in {time.perf_counter() - began:.1f} s")
    return 0


def _check(args: argparse.Namespace) -> int:
    from vlscale.platform.data.check import check_shards

    report = check_shards(args.path, max_rows=args.max_rows)
    print(report.render())
    return 0 if report.usable else 1

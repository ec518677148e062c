"""`vlscale train`: run one grid cell on the current Ray cluster (embedded if none is running)."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import Any

from vlscale.errors import UserError

EXAMPLE_CELL = """\
model: {model_type: mammut, arch: cpu-w64-l2}
data: {name: synth, train: shards/train, eval: shards/eval, zeroshot: shards/zeroshot}
train: {samples_seen: 20480, global_batch: 128, lr: 0.001, warmup_samples: 2048}
resources: {min_workers: 1, max_workers: 2, cpus_per_worker: 0.5}
"""


def load_cell_file(path: str) -> dict[str, Any]:
    import yaml

    file = Path(path)
    if not file.is_file():
        raise UserError(f"cell file {path} not found; `vlscale train --help` shows an example")
    try:
        values = yaml.safe_load(file.read_text())
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise UserError(f"{path} must hold a mapping with model, data, train (and resources)")
    return values


def cell_values_from_args(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = load_cell_file(args.cell) if args.cell else {}
    overrides = {
        "model": {"model_type": args.model_type, "arch": args.arch},
        "data": {"name": args.dataset_name, "train": args.data, "eval": args.eval_data,
                 "zeroshot": args.zeroshot_data},
        "train": {"samples_seen": args.samples_seen, "global_batch": args.global_batch,
                  "lr": args.lr, "warmup_samples": args.warmup_samples, "seed": args.seed,
                  "schedule": args.schedule},
        "resources": {"min_workers": args.min_workers, "max_workers": args.max_workers,
                      "cpus_per_worker": args.cpus_per_worker,
                      "gpus_per_worker": args.gpus_per_worker},
    }
    for section, fields in overrides.items():
        given = {k: v for k, v in fields.items() if v is not None}
        if given:
            values[section] = {**(values.get(section) or {}), **given}
    data = values.get("data") or {}
    if data.get("train") and not data.get("name"):
        data["name"] = Path(str(data["train"]).rstrip("/")).parent.name or "data"
    return values


def _run(args: argparse.Namespace) -> int:
    from vlscale.platform.config import cell_from_dict
    from vlscale.platform.train.runner import run_cell

    values = cell_values_from_args(args)
    missing = [s for s in ("model", "data", "train") if not values.get(s)]
    if missing:
        raise UserError(f"the cell needs {', '.join(missing)}: give a CELL.yaml or flags "
                        "(--model-type, --arch, --data, --samples-seen, --global-batch, --lr)")
    cell = cell_from_dict(values)
    print(f"cell {cell.cell_hash}: {cell.run_name} ({cell.procedure or 'no procedure'})")
    # A SIGTERM (a scheduler stopping the job) takes the same path as Ctrl-C: the cell's run is
    # marked interrupted, and rerunning the command resumes from the newest checkpoint.
    signal.signal(signal.SIGTERM, _interrupt)
    result = run_cell(cell, tracking_uri=args.tracking_uri, address=args.address,
                      experiment=args.experiment, wait_for_resources=args.wait_for_resources,
                      storage_path=args.storage_path)
    if result.error is not None:
        raise UserError(f"cell {cell.cell_hash} failed after retries: {result.error}")
    print(f"cell {cell.cell_hash} finished: {result.metrics}")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train one grid cell on Ray (embedded cluster if none is running)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train one grid cell (model x data x schedule x samples seen) as an elastic, "
                    "fault-tolerant Ray Train run logged to MLflow. Give a CELL.yaml, flags, or "
                    "both (flags override the file). Example CELL.yaml:\n\n" + EXAMPLE_CELL)
    parser.add_argument("cell", nargs="?", help="YAML file with model, data, train, resources")
    spec = parser.add_argument_group("cell fields (override the file)")
    # Registered names, checked when the cell is built (a model family or schedule registered by
    # a plugin module is accepted; an unknown one is the registry's one-line error).
    from vlscale.platform.models.families import model_types
    from vlscale.platform.train.schedules import SCHEDULES

    spec.add_argument("--model-type", help=f"model family: {', '.join(model_types())}")
    spec.add_argument("--arch", help="architecture (`vlscale models` lists them)")
    spec.add_argument("--data", help="training shards (directory or s3:// URL)")
    spec.add_argument("--eval-data", help="held-out captioned shards (retrieval, losses)")
    spec.add_argument("--zeroshot-data", help="classification shards for zero-shot accuracy")
    spec.add_argument("--dataset-name", help="dataset name for the results table")
    spec.add_argument("--samples-seen", type=int)
    spec.add_argument("--global-batch", type=int)
    spec.add_argument("--lr", type=float)
    spec.add_argument("--warmup-samples", type=int)
    spec.add_argument("--schedule", help=f"learning-rate schedule: {', '.join(SCHEDULES.names())}")
    spec.add_argument("--seed", type=int)
    spec.add_argument("--min-workers", type=int)
    spec.add_argument("--max-workers", type=int)
    spec.add_argument("--cpus-per-worker", type=float)
    spec.add_argument("--gpus-per-worker", type=float)
    where = parser.add_argument_group("where it runs")
    where.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else an "
                                         "embedded cluster)")
    where.add_argument("--tracking-uri", help="MLflow tracking URI (default: "
                                              "$MLFLOW_TRACKING_URI, else the embedded store)")
    where.add_argument("--experiment", help="MLflow experiment (default: vlscale)")
    where.add_argument("--storage-path",
                       help="where checkpoints and Ray results go and a rerun resumes from: a "
                            "folder, or a URI such as s3://bucket/prefix or gs://bucket/prefix "
                            "(credentials and endpoint from the usual environment, e.g. "
                            "AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL); default ~/.vlscale/ray_results")
    where.add_argument("--wait-for-resources", action="store_true",
                       help="on an autoscaling cluster, wait for nodes that can hold the workers "
                            "(default: refuse a request the cluster cannot hold now)")
    parser.set_defaults(func=_run)

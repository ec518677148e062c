"""`vlscale models`: the size ladders with parameter counts and GFLOPs per sample.
`vlscale export-model`: a trained CLIP cell as an open_clip checkpoint (`load.py`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vlscale.errors import UserError

_DESCRIPTION = """\
List the architectures of a size ladder for every model type (CLIP, MaMMUT): total, image and
text parameters (millions) and forward GFLOPs per sample, the compute axis of the scaling laws.

Ladders: "paper" (every architecture of Nezhurina et al. 2025, 224px images, 77 BPE tokens;
GFLOPs in the paper's convention, which matches its model_profile.csv) and "cpu" (tiny
cpu-w<width>-l<layers> models, 32px images, 32 word tokens; true GFLOPs). The first listing of
the paper ladder counts FLOPs for ~10 s; results are cached in the state directory.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models", help="list the model ladders: parameters and GFLOPs per sample",
        description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ladder", choices=("paper", "cpu"), default=None,
                        help="which ladder to list (default: both)")
    parser.add_argument("--json", metavar="FILE", type=Path, default=None,
                        help="also write the table as a JSON list of objects with keys name, "
                             "model_type, params_m, image_params_m, text_params_m, gflops "
                             "('-' for standard output instead of the table)")
    parser.set_defaults(func=run_models)

    export = subparsers.add_parser(
        "export-model", help="write a trained CLIP cell as an open_clip checkpoint",
        description="Write the final weights of a trained CLIP cell in open_clip's checkpoint "
                    "format (a dict with name, state_dict and model_cfg), which "
                    "open_clip.load_checkpoint and open_clip.create_model(name, pretrained=FILE) "
                    "accept. MaMMUT cells are refused: upstream open_clip has no MaMMUT; load "
                    "them in Python with vlscale.load_model(tracking_uri, RUN).")
    export.add_argument("run", metavar="RUN", help="MLflow run id or 12-character cell hash")
    export.add_argument("--out", required=True, type=Path, metavar="FILE",
                        help="the checkpoint file to write (e.g. model.pt); replaced if it exists")
    export.add_argument("--tracking-uri", help="MLflow tracking URI (default: "
                                               "$MLFLOW_TRACKING_URI, else the embedded store)")
    export.set_defaults(func=run_export_model)


def run_export_model(args: argparse.Namespace) -> int:
    from vlscale.platform.models.load import export_open_clip

    path = export_open_clip(args.tracking_uri, args.run, args.out)
    print(f"wrote {path}")
    return 0


def ladder_rows(ladder: str | None) -> list[dict]:
    """One row per (architecture, model type) of the ladder, smallest CLIP architecture first."""
    from vlscale.platform.models import list_architectures, model_profile, model_types

    types = model_types()
    available = {model_type: set(list_architectures(ladder, model_type)) for model_type in types}
    rows = []
    for arch in list_architectures(ladder):
        for model_type in types:
            if arch not in available[model_type]:
                continue
            profile = model_profile(model_type, arch)
            rows.append({
                "name": profile.name, "model_type": profile.model_type,
                "params_m": round(profile.params_m, 2),
                "image_params_m": round(profile.image_params_m, 2),
                "text_params_m": round(profile.text_params_m, 2),
                "gflops": round(profile.gflops, 4 if profile.ladder == "cpu" else 2),
            })
    return rows


def format_table(rows: list[dict]) -> str:
    header = ("name", "type", "params_M", "image_M", "text_M", "GFLOPs")
    lines = [f"{header[0]:<28} {header[1]:<7}" + "".join(f" {column:>9}" for column in header[2:])]
    for row in rows:
        lines.append(f"{row['name']:<28} {row['model_type']:<7} {row['params_m']:>9.2f} "
                     f"{row['image_params_m']:>9.2f} {row['text_params_m']:>9.2f} {row['gflops']:>9g}")
    return "\n".join(lines)


def run_models(args: argparse.Namespace) -> int:
    rows = ladder_rows(args.ladder)
    if args.json is not None and str(args.json) == "-":
        print(json.dumps(rows, indent=1))
        return 0
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(rows, indent=1) + "\n")
        except OSError as error:
            raise UserError(f"cannot write {args.json}: {error.strerror}; "
                            "choose a writable path") from error
    print(format_table(rows))
    return 0

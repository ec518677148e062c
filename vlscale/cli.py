"""The `vlscale` command: one sub-command per module.

Each entry of `COMMAND_MODULES` is a module with a `register(subparsers)` function that adds its
sub-command(s) and sets `func` on the parser; modules are imported lazily-by-listing so that
`vlscale fit` never pays for importing torch or Ray.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from vlscale import __version__
from vlscale.errors import UserError

COMMAND_MODULES: list[str] = [
    "vlscale.platform.data.commands",
    "vlscale.analysis.commands",
    "vlscale.analysis.report_commands",
    "vlscale.tracking.server",
    "vlscale.platform.train.commands",
    "vlscale.platform.sweep.commands",
    "vlscale.platform.models.commands",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlscale",
        description=(
            "Compare how vision-language training procedures (CLIP, MaMMUT, datasets, schedules) "
            "scale: train a model-size x samples-seen grid on Ray, track it in MLflow, fit and "
            "compare scaling laws."
        ),
    )
    parser.add_argument("--version", action="version", version=f"vlscale {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # A command that forwards arguments to a job (`vlscale demo --dry-run`) takes the options
    # argparse's REMAINDER leaves over when they come first; any other command rejects them.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "job_args"):
            parser.parse_args(argv)  # exits with argparse's own one-line error
        args.job_args = [*extra, *args.job_args]
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run_reporting_errors(f"vlscale {args.command}", lambda: args.func(args))


def run_reporting_errors(name: str, action: Callable[[], int | None]) -> int:
    """Run `action`; a UserError becomes one line on stderr and exit code 2 (no traceback)."""
    try:
        result = action()
    except UserError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())

"""Checkpoints that restore a cell at its exact samples-seen position, without unpickling code.

Layout of a checkpoint directory (what `ray.train.report(checkpoint=...)` ships):
  model.safetensors   model weights (safetensors: no code execution on load)
  optimizer.pt        optimizer state, loaded with `torch.load(weights_only=True)`
  rng.pt              torch CPU (and CUDA) RNG states, weights_only as well
  state.json          the loop's position: samples seen, step, branch progress, world sizes
  manifest.json       name -> size in bytes of every file above, written last

A checkpoint counts as complete only when its manifest parses and every file it lists has the
listed size. Ray Train copies a reported checkpoint into storage file by file, in no fixed order,
so a process killed mid-copy leaves a directory that holds some of the files (or a truncated one):
the manifest tells it apart from one that was fully written, without reading the weights.

`is_complete`, `read_state` and `newest_complete_checkpoint` take any storage location (a local
folder or a URI such as s3://bucket/prefix/..., see `vlscale.platform.storage`) and read only
the two JSON files and the file sizes; `load_checkpoint` needs a local folder
(`storage.local_copy` downloads one).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vlscale.platform import storage

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
RNG_FILE = "rng.pt"
STATE_FILE = "state.json"
MANIFEST_FILE = "manifest.json"


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (checkpoints hold the bare weights)."""
    return getattr(model, "module", model)


def save_checkpoint(directory: str | Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = {name: tensor.detach().cpu().contiguous()
               for name, tensor in unwrap(model).state_dict().items()}
    save_file(_untie(weights), directory / MODEL_FILE)
    torch.save(optimizer.state_dict(), directory / OPTIMIZER_FILE)
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    torch.save(rng, directory / RNG_FILE)
    (directory / STATE_FILE).write_text(json.dumps(state, indent=1, sort_keys=True))
    sizes = {name: (directory / name).stat().st_size
             for name in (MODEL_FILE, OPTIMIZER_FILE, RNG_FILE, STATE_FILE)}
    (directory / MANIFEST_FILE).write_text(json.dumps(sizes, sort_keys=True))
    return directory


def is_complete(directory: str | Path) -> bool:
    """True when every file the manifest lists exists with its listed size (see module doc).

    A directory without a parsable manifest is incomplete: it was being copied when its writer
    died (or predates manifests), and resuming from it would fail or load torn weights.
    """
    try:
        sizes = json.loads(storage.read_text(storage.join(directory, MANIFEST_FILE)))
    except (OSError, ValueError):
        return False
    if not isinstance(sizes, dict) or STATE_FILE not in sizes:
        return False
    for name, size in sizes.items():
        if storage.file_size(storage.join(directory, name)) != size:
            return False
    try:
        read_state(directory)
    except ValueError:
        return False
    return True


def newest_complete_checkpoint(
        directories: Iterable[str | Path], *, before_segment: int | None = None
) -> tuple[str | Path, int] | None:
    """The complete checkpoint furthest along (most samples seen) and its position, or None.
    With `before_segment`, only checkpoints of a run not yet past that segment count (a
    completed run's final checkpoint is at segment = the number of segments).

    Positions, not directory names or times, decide: every attempt of a cell reports its
    checkpoints under its own Ray run directory, and a checkpoint being written when the process
    was killed is skipped (`is_complete`), so the newest fully written one is chosen. The
    directory comes back as given (a local path or a storage URI).
    """
    candidates = []
    for directory in directories:
        if is_complete(directory):
            state = read_state(directory)
            if before_segment is not None and int(state["segment"]) >= before_segment:
                continue
            candidates.append(((int(state["segment"]), int(state["samples"])), directory))
    if not candidates:
        return None
    (_, samples), directory = max(candidates, key=lambda candidate: candidate[0])
    return directory, samples


def load_checkpoint(directory: str | Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """Load weights (and optimizer + RNG state) in place; returns the loop state."""
    directory = Path(directory)
    device = next(unwrap(model).parameters()).device
    unwrap(model).load_state_dict(load_file(directory / MODEL_FILE, device=str(device)))
    if optimizer is not None:
        optimizer.load_state_dict(
            torch.load(directory / OPTIMIZER_FILE, map_location=device, weights_only=True))
    rng = torch.load(directory / RNG_FILE, weights_only=True)
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    return json.loads((directory / STATE_FILE).read_text())


def read_state(directory: str | Path) -> dict[str, Any]:
    """The loop state of a checkpoint (its position), without loading any tensor; any location."""
    return json.loads(storage.read_text(storage.join(directory, STATE_FILE)))


def _untie(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share storage (tied weights): give each its own copy."""
    seen: set[int] = set()
    untied = {}
    for name, tensor in weights.items():
        pointer = tensor.untyped_storage().data_ptr()
        untied[name] = tensor.clone() if pointer in seen else tensor
        seen.add(pointer)
    return untied

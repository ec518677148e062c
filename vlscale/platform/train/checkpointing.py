"""Checkpoints that restore a cell at its exact samples-seen position, without unpickling code.

Layout of a checkpoint directory (what `ray.train.report(checkpoint=...)` ships):
  model.safetensors   model weights (safetensors: no code execution on load)
  optimizer.pt        optimizer state, loaded with `torch.load(weights_only=True)`
  rng.pt              torch CPU (and CUDA) RNG states, weights_only as well
  state.json          the loop's position: samples seen, step, branch progress, world sizes
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
RNG_FILE = "rng.pt"
STATE_FILE = "state.json"


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
    return directory


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
    return json.loads((Path(directory) / STATE_FILE).read_text())


def _untie(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share storage (tied weights): give each its own copy."""
    seen: set[int] = set()
    untied = {}
    for name, tensor in weights.items():
        pointer = tensor.untyped_storage().data_ptr()
        untied[name] = tensor.clone() if pointer in seen else tensor
        seen.add(pointer)
    return untied

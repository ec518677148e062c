"""Shards, writers and the input pipeline (Ray window tasks, block references to the ranks).

The public API, imported lazily so that `vlscale data synth` never pays for torch or Ray:

    shards = open_shards("data/synth/train")               # validates; .description to log
    spec = Preprocess.for_shards(shards, image_size=32)     # or Preprocess(32, "bpe", 77)
    # inside the train-loop function, on every worker:
    batches = WorkerBatches(shards, spec, global_batch=256, total_samples=S,
                            world_rank=r, world_size=W, start_samples=resumed_at, seed=seed)
    for batch in batches: ...   # batch["image"], batch["text"] (+ "label", "row_id")
    # evaluation, in process:
    for batch in load_eval_batches("data/synth/eval", spec, max_samples=1000, batch_size=256): ...
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ShardSet": "shards", "open_shards": "shards",
    "Preprocess": "preprocess", "OPENAI_MEAN": "preprocess", "OPENAI_STD": "preprocess",
    "WorkerBatches": "loader",
    "EvalBatches": "evaluation", "load_eval_batches": "evaluation",
    "ray_init_kwargs": "resources",
    "ROWS_PER_SHARD": "schema", "ROWS_PER_GROUP": "schema", "MANIFEST_NAME": "schema",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)

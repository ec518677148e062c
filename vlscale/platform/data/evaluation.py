"""In-process evaluation batches (no Ray): held-out captioned sets and zero-shot classification sets.

The evaluation set is the first `max_samples` usable rows in shard order, so every run and every
evaluation point sees exactly the same samples, in fixed batches (the contrastive loss depends on
the batch size).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from vlscale.platform.data.preprocess import Preprocess, prepare_rows, to_model_images
from vlscale.platform.data.shards import ShardSet, open_shards


class EvalBatches:
    """Re-iterable batches of dicts: "image" float32 [b,3,H,W], "text" int64 [b,L], "row_id"
    int64 [b] (one caption per image, so row_id is the image id for retrieval), and "label"
    int64 [b] when the shards are labelled. Every batch holds `batch_size` rows but the last.
    """

    def __init__(self, shards: ShardSet | str, preprocess: Preprocess, *,
                 max_samples: int | None = None, batch_size: int = 256, device: Any = None):
        self.shards = open_shards(shards) if isinstance(shards, str) else shards
        self.preprocess, self.batch_size, self.device = preprocess, batch_size, device
        self.max_samples = max_samples
        self.samples = 0
        """Samples yielded by the last complete iteration."""
        self.skipped_records = 0
        """Unusable rows passed over by the last iteration."""

    def arrays(self) -> Iterator[dict[str, np.ndarray]]:
        """The same batches as numpy: "image" uint8 [b,H,W,3] (not normalised), "text",
        "label" (-1 when unlabelled), "row_id"."""
        limit = self.max_samples if self.max_samples is not None else self.shards.num_rows
        self.samples = self.skipped_records = 0
        pending: list[dict[str, np.ndarray]] = []
        pending_rows = 0
        for unit in range(len(self.shards.units)):
            if self.samples + pending_rows >= limit:
                break
            raw = self.shards.read_unit(unit)
            rows, images, tokens, labels, usable = prepare_rows(
                raw, np.arange(len(raw.keys)), self.preprocess)
            self.skipped_records += int((~usable).sum())
            keep = min(len(rows), limit - self.samples - pending_rows)
            pending.append({"image": images[:keep], "text": tokens[:keep], "label": labels[:keep],
                            "row_id": self.shards.unit_first_row[unit] + rows[:keep]})
            pending_rows += keep
            while pending_rows >= self.batch_size:
                merged = {k: np.concatenate([p[k] for p in pending]) for k in pending[0]}
                yield {k: v[:self.batch_size] for k, v in merged.items()}
                pending = [{k: v[self.batch_size:] for k, v in merged.items()}]
                pending_rows -= self.batch_size
                self.samples += self.batch_size
        if pending_rows:
            yield {k: np.concatenate([p[k] for p in pending]) for k in pending[0]}
            self.samples += pending_rows

    def __iter__(self) -> Iterator[dict[str, Any]]:
        import torch

        for arrays in self.arrays():
            batch = {"image": to_model_images(arrays["image"], self.preprocess.mean,
                                              self.preprocess.std, self.device),
                     "text": torch.from_numpy(arrays["text"]).to(self.device),
                     "row_id": torch.from_numpy(arrays["row_id"]).to(self.device)}
            if self.shards.has_labels:
                batch["label"] = torch.from_numpy(arrays["label"]).to(self.device)
            yield batch


def load_eval_batches(shards: ShardSet | str, preprocess: Preprocess, *,
                      max_samples: int | None = None, batch_size: int = 256,
                      device: Any = None) -> EvalBatches:
    """The first `max_samples` usable rows of `shards` (all when None) in fixed-size batches."""
    return EvalBatches(shards, preprocess, max_samples=max_samples, batch_size=batch_size,
                       device=device)

"""A DUMMY evaluator for the registry tests: mean cosine of matched held-out image-text pairs.

Importing this module registers the evaluator "alignment" on the cell's captioned eval shards;
its metric "matched_cosine" is listed in no table anywhere. The tests unregister it afterwards.
"""

from __future__ import annotations

import torch

from vlscale.platform.train.evaluate import EvalContext, register_evaluator

NAME = "alignment"


@register_evaluator(NAME, source="eval")
def alignment(context: EvalContext) -> dict[str, float]:
    model = context.task.model
    total, samples = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in context.batches():
            images = model.encode_image(batch["image"].to(context.device), normalize=True)
            texts = model.encode_text(batch["text"].to(context.device), normalize=True)
            total += float((images * texts).sum())
            samples += len(images)
    model.train(was_training)
    return {"matched_cosine": total / samples}

"""Evaluation of a CLIP or MaMMUT model: zero-shot classification, image-text retrieval, held-out
losses. Works with any model exposing `encode_image(images, normalize=True)` and
`encode_text(texts, normalize=True)`; no dataset package, the caller brings the batches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vlscale.errors import UserError

RETRIEVAL_KS: tuple[int, ...] = (1, 5, 10)


@contextlib.contextmanager
def _evaluating(module: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients for the block; the module's train/eval state is restored after."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def zero_shot_classifier(model: nn.Module, class_names: Sequence[str],
                         templates: Sequence[str | Callable[[str], str]], tokenizer,
                         device: str | torch.device = "cpu") -> torch.Tensor:
    """[classes, dim]: per class, the normalised mean of the normalised prompt embeddings.

    A template is a format string with one `{}` ("a photo of a {}.") or a callable name -> prompt.
    """
    if not class_names or not templates:
        raise UserError("zero-shot classification needs at least one class name and one template")
    rows = []
    with _evaluating(model):
        for name in class_names:
            prompts = [template(name) if callable(template) else template.format(name)
                       for template in templates]
            tokens = torch.as_tensor(tokenizer(prompts)).to(device)
            embeddings = model.encode_text(tokens, normalize=True).float()
            rows.append(F.normalize(embeddings.mean(dim=0), dim=-1))
    return torch.stack(rows)


def zero_shot_classification(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                             class_names: Sequence[str],
                             templates: Sequence[str | Callable[[str], str]], tokenizer,
                             device: str | torch.device = "cpu") -> dict[str, float]:
    """Zero-shot accuracy over (images, integer labels) batches.

    Returns "top1", "top5" (top-min(5, classes)) and "mean_per_class_recall" (the mean over the
    classes present of the fraction of their images classified right), all fractions in [0, 1].
    """
    classifier = zero_shot_classifier(model, class_names, templates, tokenizer, device)
    num_classes = len(class_names)
    hits = torch.zeros(num_classes, device=device)
    counts = torch.zeros(num_classes, device=device)
    top1 = top5 = samples = 0
    with _evaluating(model):
        for images, labels in batches:
            labels = labels.to(device)
            outside = int(((labels < 0) | (labels >= num_classes)).sum())
            if outside:
                raise UserError(f"{outside} zero-shot image(s) carry labels outside the "
                                f"{num_classes} class names (0..{num_classes - 1}, labels "
                                f"{int(labels.min())}..{int(labels.max())} in a batch); "
                                "re-import the set with the class names its labels index")
            features = model.encode_image(images.to(device), normalize=True).float()
            ranked = (features @ classifier.T).topk(min(5, num_classes), dim=-1).indices
            correct_top1 = ranked[:, 0] == labels
            top1 += int(correct_top1.sum())
            top5 += int((ranked == labels[:, None]).any(dim=-1).sum())
            samples += len(labels)
            counts.index_add_(0, labels, torch.ones_like(labels, dtype=counts.dtype))
            hits.index_add_(0, labels, correct_top1.to(hits.dtype))
    if samples == 0:
        raise UserError("zero-shot classification got no images; check the classification shards")
    present = counts > 0
    return {
        "top1": top1 / samples,
        "top5": top5 / samples,
        "mean_per_class_recall": float((hits[present] / counts[present]).mean()),
    }


def retrieval_recall(model: nn.Module,
                     batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                     device: str | torch.device = "cpu") -> dict[str, float]:
    """Image<->text recall@k over (images, texts, image_ids) batches of (image, caption) pairs.

    Rows with the same image id are one image with several captions: the image is embedded once,
    and counts as retrieved by image->text if any of its captions is in the top k.
    Returns "image_to_text_R@{1,5,10}" (over unique images) and "text_to_image_R@{1,5,10}" (over
    captions), fractions in [0, 1].
    """
    image_rows: dict[int, int] = {}
    image_features, text_features, caption_owner = [], [], []
    with _evaluating(model):
        for images, texts, image_ids in batches:
            ids = [int(i) for i in image_ids]
            new_rows = []
            for row, image_id in enumerate(ids):
                if image_id not in image_rows:
                    image_rows[image_id] = len(image_rows)
                    new_rows.append(row)
            if new_rows:
                selected = images[torch.tensor(new_rows)].to(device)
                image_features.append(model.encode_image(selected, normalize=True).float())
            text_features.append(model.encode_text(texts.to(device), normalize=True).float())
            caption_owner.extend(image_rows[image_id] for image_id in ids)
    if not text_features:
        raise UserError("retrieval got no image-caption pairs; check the evaluation shards")
    similarity = torch.cat(image_features) @ torch.cat(text_features).T  # [images, captions]
    owner = torch.tensor(caption_owner, device=similarity.device)
    num_images, num_captions = similarity.shape
    texts_ranked = similarity.topk(min(max(RETRIEVAL_KS), num_captions), dim=1).indices
    images_ranked = similarity.T.topk(min(max(RETRIEVAL_KS), num_images), dim=1).indices
    image_index = torch.arange(num_images, device=similarity.device)
    text_hit_rank = owner[texts_ranked] == image_index[:, None]  # [images, k]
    image_hit_rank = images_ranked == owner[:, None]  # [captions, k]
    results = {}
    for k in RETRIEVAL_KS:
        results[f"image_to_text_R@{k}"] = float(text_hit_rank[:, :k].any(dim=1).float().mean())
    for k in RETRIEVAL_KS:
        results[f"text_to_image_R@{k}"] = float(image_hit_rank[:, :k].any(dim=1).float().mean())
    return results


def heldout_losses(task: nn.Module, batches: Iterable[tuple[torch.Tensor, ...]],
                   device: str | torch.device = "cpu") -> dict[str, float]:
    """Sample-weighted mean of the task's losses ("loss", "contrastive_loss", "caption_loss")
    over held-out (images, texts, ...) batches.

    The contrastive loss depends on the batch size, so batches must all have the size of the
    first (the cell's fixed evaluation batch size); a shorter final batch is skipped. The loss
    stays local to this process (no all-gather), so one rank can evaluate alone.
    """
    task = getattr(task, "module", task)  # unwrap DDP
    sums: dict[str, float] = {}
    batch_size = samples = 0
    with _evaluating(task):
        for images, texts, *_ in batches:
            batch_size = batch_size or len(images)
            if len(images) != batch_size:
                continue
            losses = task.compute_losses(images.to(device), texts.to(device), gather=False)
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + float(value) * len(images)
            samples += len(images)
    if samples == 0:
        raise UserError("held-out evaluation got no batches; check the evaluation shards")
    return {name: total / samples for name, total in sums.items()}

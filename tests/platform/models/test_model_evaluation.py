import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vlscale.errors import UserError
from vlscale.platform.config import ModelSpec
from vlscale.platform.models import (
    create_task,
    heldout_losses,
    retrieval_recall,
    tokenizer_for,
    zero_shot_classification,
)

CLASSES = ["cat", "dog", "car", "bus", "owl", "fox", "elk"]
DIM = len(CLASSES) + 1  # one axis per class, one for the template offset


class HandMadeModel(nn.Module):
    """"Images" are their own embeddings; a text is a row index into a table of embeddings."""

    def __init__(self, text_table: torch.Tensor) -> None:
        super().__init__()
        self.text_table = text_table

    def encode_image(self, images, normalize=False):
        return F.normalize(images, dim=-1) if normalize else images

    def encode_text(self, texts, normalize=False):
        embeddings = self.text_table[texts[:, 0]]
        return F.normalize(embeddings, dim=-1) if normalize else embeddings


def prompt_model_and_tokenizer():
    """Prompt "a <class>" / "the <class>" embeds as the class axis +/- a template offset, which
    cancels in the template mean."""
    table = torch.zeros(2 * len(CLASSES), DIM)
    for index in range(len(CLASSES)):
        table[2 * index, index] = table[2 * index + 1, index] = 1.0
        table[2 * index, -1], table[2 * index + 1, -1] = 0.5, -0.5

    def tokenizer(prompts):
        return np.array([[2 * CLASSES.index(p.split()[-1]) + (0 if p.startswith("a ") else 1)]
                         for p in prompts])

    return HandMadeModel(table), tokenizer


def axes(**weights) -> torch.Tensor:
    vector = torch.zeros(DIM)
    for name, weight in weights.items():
        vector[CLASSES.index(name)] = weight
    return vector


def test_zero_shot_metrics_on_hand_made_embeddings():
    images = torch.stack([
        axes(cat=1.0, dog=0.1),  # cat: right
        axes(cat=0.6, dog=1.0),  # cat: looks like a dog first, a cat second
        axes(dog=1.0, car=0.2),  # dog: right
        axes(cat=1.0, dog=1.1, bus=1.2, owl=1.3, fox=1.4, elk=1.5),  # car: ranked last of 7
    ])
    labels = torch.tensor([0, 0, 1, 2])
    model, tokenizer = prompt_model_and_tokenizer()
    batches = [(images[:2], labels[:2]), (images[2:], labels[2:])]
    metrics = zero_shot_classification(model, batches, CLASSES, ["a {}", "the {}"], tokenizer)
    assert metrics["top1"] == pytest.approx(2 / 4)
    assert metrics["top5"] == pytest.approx(3 / 4)
    assert metrics["mean_per_class_recall"] == pytest.approx((1 / 2 + 1 + 0) / 3)


def test_zero_shot_accepts_callable_templates_and_rejects_empty_input():
    model, tokenizer = prompt_model_and_tokenizer()
    images, labels = torch.eye(DIM)[:3], torch.tensor([0, 1, 2])
    metrics = zero_shot_classification(model, [(images, labels)], CLASSES, [lambda c: f"a {c}"], tokenizer)
    assert metrics == {"top1": 1.0, "top5": 1.0, "mean_per_class_recall": 1.0}
    with pytest.raises(UserError, match="no images"):
        zero_shot_classification(model, [], CLASSES, ["a {}"], tokenizer)


def test_retrieval_on_hand_made_embeddings():
    """Images A, B, C (ids 10, 11, 12); captions t0, t1 of A, t2 of B, t3 of C.

    Image->text: A's best caption is t0 (hit); B's is t1 (A's: miss), then t2; C's is t2 (B's:
    miss), then t3. Text->image: t0 -> A (hit); t1 -> B, t2 -> C, t3 -> A (misses at 1).
    """
    e0, e1, e2 = torch.eye(3)
    model = HandMadeModel(torch.stack([e0, e1 + 0.2 * e0, e2 + 0.5 * e1, e0 + 0.3 * e2]))
    image_a, image_b, image_c = e0, e1, e2
    texts = torch.tensor([[0], [1], [2], [3]])
    # A's second row carries a different "image": A must be embedded once, from its first row.
    batches = [
        (torch.stack([image_a, image_b]), texts[[0, 2]], torch.tensor([10, 11])),
        (torch.stack([image_b, image_c]), texts[[1, 3]], torch.tensor([10, 12])),
    ]
    metrics = retrieval_recall(model, batches)
    assert metrics == pytest.approx({
        "image_to_text_R@1": 1 / 3, "image_to_text_R@5": 1.0, "image_to_text_R@10": 1.0,
        "text_to_image_R@1": 1 / 4, "text_to_image_R@5": 1.0, "text_to_image_R@10": 1.0,
    })


def test_retrieval_several_captions_count_once_per_image():
    e0, e1 = torch.eye(2)
    # Image 0 owns captions 0 (which looks more like image 1) and 1; image 1 owns caption 2.
    model = HandMadeModel(torch.stack([e1 + 0.3 * e0, e0, e1]))
    images = torch.stack([e0, e0, e1])
    metrics = retrieval_recall(model, [(images, torch.tensor([[0], [1], [2]]), torch.tensor([0, 0, 1]))])
    assert metrics["image_to_text_R@1"] == 1.0  # image 0 finds caption 1 first: one of its own
    assert metrics["text_to_image_R@1"] == pytest.approx(2 / 3)  # caption 0 finds image 1


@pytest.mark.parametrize("model_type", ["clip", "mammut"])
def test_evaluation_runs_on_both_model_types(model_type):
    torch.manual_seed(0)
    task = create_task(ModelSpec(model_type, "cpu-w32-l1"))
    tokenizer = tokenizer_for(task.profile, ["red", "blue", "circle", "square", "a", "of"])
    images = torch.randn(6, 3, 32, 32)
    texts = torch.as_tensor(tokenizer(["a red circle", "a blue square"] * 3))
    zero_shot = zero_shot_classification(task.model, [(images, torch.tensor([0, 1] * 3))],
                                         ["circle", "square"], ["a {}", "a red {}"], tokenizer)
    retrieval = retrieval_recall(task.model, [(images, texts, torch.arange(6))])
    losses = heldout_losses(task, [(images[:3], texts[:3]), (images[3:], texts[3:]), (images[:1], texts[:1])])
    assert set(zero_shot) == {"top1", "top5", "mean_per_class_recall"}
    assert all(0.0 <= value <= 1.0 for value in (*zero_shot.values(), *retrieval.values()))
    expected = {"loss", "contrastive_loss"} | ({"caption_loss"} if model_type == "mammut" else set())
    assert set(losses) == expected
    assert task.training  # evaluation restores the train mode
    # The shorter final batch is skipped: the result is the mean of the two full batches.
    task.eval()
    with torch.no_grad():
        full = [task.compute_losses(images[i:i + 3], texts[i:i + 3])["loss"].item() for i in (0, 3)]
    assert losses["loss"] == pytest.approx(sum(full) / 2, rel=1e-5)

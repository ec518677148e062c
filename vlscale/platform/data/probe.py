"""A difficulty probe for generated datasets: do bigger models and more samples keep helping?

Trains a few tiny contrastive image/text models of increasing width (plain torch: a ViT image
tower, a transformer text tower, InfoNCE loss) on the training split at a constant learning rate,
and records the held-out contrastive loss (eval split, batch 256) at log-spaced samples-seen
points. A dataset is hard enough for the CPU ladder when the curves keep falling with samples and
sit lower for wider models. Independent of `vlscale.platform.models` on purpose: it checks the
data, not the model code.

    python -m vlscale.platform.data.probe data/synth --plot docs/synth_scaling.png
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vlscale.platform.data.evaluation import load_eval_batches
from vlscale.platform.data.preprocess import Preprocess, to_model_images
from vlscale.platform.data.shards import open_shards


class Tower(nn.Module):
    """Tokens -> pre-norm transformer encoder -> masked mean pool -> projection."""

    def __init__(self, width: int, depth: int, tokens: int, embed_dim: int) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(width, max(1, width // 32), 4 * width, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.position = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
        self.norm = nn.LayerNorm(width)
        self.project = nn.Linear(width, embed_dim, bias=False)

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm(self.encoder(x + self.position, src_key_padding_mask=padding))
        keep = torch.ones(x.shape[:2], device=x.device) if padding is None else (~padding).float()
        pooled = (x * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)
        return F.normalize(self.project(pooled), dim=-1)


class ProbeCLIP(nn.Module):
    def __init__(self, width: int, depth: int, vocab_size: int, context_length: int,
                 image_size: int = 32, patch: int = 4, embed_dim: int = 64) -> None:
        super().__init__()
        self.patchify = nn.Conv2d(3, width, patch, patch)
        self.image = Tower(width, depth, (image_size // patch) ** 2, embed_dim)
        self.embed = nn.Embedding(vocab_size, width)
        self.text = Tower(width, depth, context_length, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        image = self.image(self.patchify(images).flatten(2).transpose(1, 2))
        text = self.text(self.embed(texts), padding=texts == 0)
        logits = self.logit_scale.exp().clamp(max=100) * image @ text.T
        target = torch.arange(len(images))
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _load(path: str, preprocess: Preprocess, limit: int
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 images (normalised per batch: 4x less memory), tokens, labels."""
    parts = list(load_eval_batches(path, preprocess, max_samples=limit, batch_size=4096).arrays())
    return tuple(torch.from_numpy(np.concatenate([p[k] for p in parts]))
                 for k in ("image", "text", "label"))


def _images(pixels: torch.Tensor, preprocess: Preprocess) -> torch.Tensor:
    return to_model_images(pixels, preprocess.mean, preprocess.std)


@torch.no_grad()
def held_out_loss(model: ProbeCLIP, images: torch.Tensor, texts: torch.Tensor,
                  preprocess: Preprocess, batch: int = 256) -> float:
    model.eval()
    losses = [model(_images(images[i:i + batch], preprocess), texts[i:i + batch]).item()
              for i in range(0, len(images) - batch + 1, batch)]
    model.train()
    return float(np.mean(losses))


@torch.no_grad()
def zeroshot_accuracy(model: ProbeCLIP, images: torch.Tensor, labels: torch.Tensor,
                      prompts: torch.Tensor, preprocess: Preprocess) -> float:
    """Top-1 accuracy; `prompts` [classes, templates, L] tokens, embeddings averaged."""
    model.eval()
    classes, templates, length = prompts.shape
    flat = prompts.view(-1, length)
    text = model.text(model.embed(flat), padding=flat == 0).view(classes, templates, -1)
    text = F.normalize(text.mean(1), dim=-1)
    correct = 0
    for i in range(0, len(images), 512):
        pixels = _images(images[i:i + 512], preprocess)
        image = model.image(model.patchify(pixels).flatten(2).transpose(1, 2))
        correct += int(((image @ text.T).argmax(1) == labels[i:i + 512]).sum())
    model.train()
    return correct / len(images)


def run_probe(data: str, widths: list[int], depth: int, points: list[int], batch: int = 256,
              lr: float = 1e-3, eval_samples: int = 2048, seed: int = 0,
              patch: int = 8) -> list[dict]:
    """One run per width; held-out loss at every samples-seen point (constant LR after warm-up)."""
    train = open_shards(f"{data}/train")
    preprocess = Preprocess.for_shards(train, image_size=32, context_length=32)
    vocab_size = len(preprocess.vocabulary) + 4
    images, texts, _ = _load(f"{data}/train", preprocess, max(points))
    eval_images, eval_texts, _ = _load(f"{data}/eval", preprocess, eval_samples)
    zeroshot = open_shards(f"{data}/zeroshot")
    zs_images, _, zs_labels = _load(f"{data}/zeroshot", preprocess, eval_samples)
    tokenizer = preprocess.build_tokenizer()
    prompts = torch.from_numpy(np.stack([tokenizer([t.format(c) for t in zeroshot.templates])
                                         for c in zeroshot.class_names]))
    results = []
    for width in widths:
        torch.manual_seed(seed)
        model = ProbeCLIP(width, depth, vocab_size, preprocess.context_length, patch=patch)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
        warmup = 20
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s, warmup=warmup: min(1, (s + 1) / warmup))
        generator = torch.Generator().manual_seed(seed)
        seen, began = 0, time.perf_counter()
        for point in points:
            while seen < point:
                index = torch.randint(len(images), (batch,), generator=generator)
                loss = model(_images(images[index], preprocess), texts[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                seen += batch
            record = {"width": width, "depth": depth, "patch": patch, "samples_seen": seen,
                      "params": sum(p.numel() for p in model.parameters()),
                      "held_out_loss": held_out_loss(model, eval_images, eval_texts,
                                                     preprocess),
                      "zeroshot_top1": zeroshot_accuracy(model, zs_images, zs_labels, prompts,
                                                         preprocess),
                      "train_seconds": round(time.perf_counter() - began, 1),
                      "dataset_rows": len(images)}
            print(json.dumps(record), flush=True)
            results.append(record)
    return results


def plot(results: list[dict], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for width in sorted({r["width"] for r in results}):
        rows = [r for r in results if r["width"] == width]
        axis.plot([r["samples_seen"] for r in rows], [r["held_out_loss"] for r in rows], "o-",
                  label=f"width {width} ({rows[0]['params'] / 1e3:.0f}k params)")
    axis.set_xscale("log")
    axis.set_xlabel("samples seen")
    axis.set_ylabel("held-out contrastive loss (batch 256)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="folder with train/ and eval/ (from `vlscale data synth`)")
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--points", type=int, nargs="+",
                        default=[6_400, 12_800, 25_600, 51_200, 102_400, 204_800])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--patch", type=int, default=8)
    parser.add_argument("--results", default=None, help="write the records as JSON lines here")
    parser.add_argument("--plot", default=None, help="write the plot (PNG) here")
    parser.add_argument("--replot", action="store_true",
                        help="only plot the records already in --results (no training)")
    parser.add_argument("--title", default=None, help="plot title")
    args = parser.parse_args(argv)
    if args.replot:
        results = [json.loads(line) for line in Path(args.results).read_text().splitlines()]
    else:
        torch.set_num_threads(args.threads)
        results = run_probe(args.data, args.widths, args.depth, sorted(args.points),
                            patch=args.patch)
        if args.results:
            Path(args.results).write_text("".join(json.dumps(r) + "\n" for r in results))
    if args.plot:
        plot(results, args.plot, args.title or f"difficulty probe on {Path(args.data).name}")


if __name__ == "__main__":
    main()

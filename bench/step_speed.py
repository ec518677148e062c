"""Training-step throughput of CLIP and MaMMUT, against open_clip's CoCa measured in the same run.

One step = forward + loss + backward + AdamW step, on a fixed random batch. For each architecture
the three models (vlscale CLIP, vlscale MaMMUT, open_clip CoCa of the same width and depth: text
encoder + multimodal decoder of the architecture's text width/depth, attention-pooled ViT) are timed
in interleaved rounds, and the median round is reported; the ratio MaMMUT/CoCa should be >= 1
(MaMMUT runs one decoder twice, with cross-attention after every 2nd layer only, CoCa a text
encoder plus a decoder with cross-attention after every layer).

On CPU (default: the CPU ladder, fp32) it prints samples/s. On CUDA (default: a few paper-ladder
architectures, bf16 autocast) it adds model FLOP utilisation: 3 x forward FLOPs per sample (true
count, FlopCounterMode) x samples/s / the GPU's peak dense bf16 FLOP/s.

    python bench/step_speed.py                      # CPU ladder
    python bench/step_speed.py --archs cpu-w64-l2 --batch 64 --rounds 5
    python bench/step_speed.py --device cuda --archs ViT-B-32,ViT-B-16 --batch 256
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from open_clip.coca_model import CoCa
from open_clip.loss import CoCaLoss
from torch import nn

from vlscale.platform.config import ModelSpec
from vlscale.platform.models import create_task, list_architectures, model_profile
from vlscale.platform.models.flops import count_forward_flops
from vlscale.platform.models.ladder import model_config

PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.1, "A10G": 70.0}
"""Dense bf16 tensor-core peaks (SXM figures for H100/H200/A100)."""


class CocaTask(nn.Module):
    """open_clip's CoCa with its loss, same loss weights as the MaMMUT task (1, 2)."""

    def __init__(self, arch: str) -> None:
        super().__init__()
        config = model_config("clip", arch)
        text, vision = config["text_cfg"], config["vision_cfg"]
        decoder = {key: text[key]
                   for key in ("context_length", "vocab_size", "width", "heads", "layers")}
        self.model = CoCa(
            embed_dim=config["embed_dim"],
            text_cfg=text | {"embed_cls": True, "output_tokens": True},
            vision_cfg=vision | {"attentional_pool": True, "attn_pooler_heads": text["heads"],
                                 "output_tokens": True},
            multimodal_cfg=decoder,
        )
        self.loss = CoCaLoss(caption_loss_weight=2.0, clip_loss_weight=1.0, pad_id=0)

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.model(images, texts)
        contrastive, caption = self.loss(out["image_features"], out["text_features"], out["logits"],
                                         out["labels"], out["logit_scale"])
        return {"loss": contrastive + caption}


def make_batch(batch_size: int, image_size: int, context_length: int, vocab_size: int, device):
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, image_size, image_size, generator=generator)
    texts = torch.randint(4, vocab_size, (batch_size, context_length), generator=generator)
    texts[:, context_length * 2 // 3:] = 0  # padding, as in real captions
    return images.to(device), texts.to(device)


def coca_forward_flops(arch: str, image_size: int, context_length: int) -> int:
    with torch.device("meta"):
        model = CocaTask(arch).model
    return count_forward_flops(model, image_size, context_length)[0]


def timed_steps(task: nn.Module, optimizer, batch, steps: int, device: torch.device) -> float:
    """Seconds per step over `steps` steps."""
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        with autocast:
            loss = task(*batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def peak_flops(device: torch.device, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tflops * 1e12 for key, tflops in PEAK_BF16_TFLOPS.items() if key in name), None)


def bench_arch(arch: str, args, device: torch.device, peak: float | None) -> dict[str, float]:
    profile = model_profile("clip", arch)
    batch = make_batch(args.batch, profile.image_size, profile.context_length, profile.vocab_size,
                       device)
    torch.manual_seed(0)
    tasks = {
        "clip": create_task(ModelSpec("clip", arch), device=device),
        "mammut": create_task(ModelSpec("mammut", arch), device=device),
        "coca": CocaTask(arch).to(device),
    }
    forward_flops = {
        "clip": profile.gflops_true * 1e9,
        "mammut": model_profile("mammut", arch).gflops_true * 1e9,
        "coca": coca_forward_flops(arch, profile.image_size, profile.context_length),
    }
    optimizers = {name: torch.optim.AdamW(task.parameters(), lr=1e-4)
                  for name, task in tasks.items()}
    for name, task in tasks.items():
        timed_steps(task, optimizers[name], batch, args.warmup, device)
    rounds = {name: [] for name in tasks}
    for _ in range(args.rounds):
        for name, task in tasks.items():
            rounds[name].append(timed_steps(task, optimizers[name], batch, args.steps, device))
    result = {}
    for name, seconds in rounds.items():
        samples_per_s = args.batch / statistics.median(seconds)
        result[f"{name}_samples_per_s"] = samples_per_s
        if peak:
            result[f"{name}_mfu"] = 3 * forward_flops[name] * samples_per_s / peak
    result["mammut_over_coca"] = result["mammut_samples_per_s"] / result["coca_samples_per_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    parser.add_argument("--archs", default=None, help="comma-separated architectures "
                        "(default: the CPU ladder on CPU; ViT-S-32,ViT-B-32,ViT-B-16 on CUDA)")
    parser.add_argument("--batch", type=int, default=None,
                        help="batch size (default: 32 CPU, 128 CUDA)")
    parser.add_argument("--steps", type=int, default=3, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds; the median counts")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="peak bf16 TFLOP/s for MFU (default: looked up from the GPU name)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    on_cuda = device.type == "cuda"
    archs = args.archs.split(",") if args.archs else (
        ["ViT-S-32", "ViT-B-32", "ViT-B-16"] if on_cuda else list_architectures("cpu"))
    args.batch = args.batch or (128 if on_cuda else 32)
    peak = peak_flops(device, args.peak_tflops)
    where = (torch.cuda.get_device_name(device) if on_cuda
             else f"CPU, {torch.get_num_threads()} threads")
    print(f"# step = forward + backward + AdamW; batch {args.batch}; {where}; "
          f"{'bf16 autocast' if on_cuda else 'fp32'}; median of {args.rounds} rounds x "
          f"{args.steps} steps")
    columns = ["clip", "mammut", "coca"]
    header = f"{'arch':<14}" + "".join(f"{name + ' samples/s':>20}" for name in columns)
    if peak:
        header += "".join(f"{name + ' MFU':>12}" for name in columns)
    print(header + f"{'MaMMUT/CoCa':>13}")
    for arch in archs:
        result = bench_arch(arch, args, device, peak)
        line = f"{arch:<14}" + "".join(f"{result[f'{name}_samples_per_s']:>20.1f}"
                                       for name in columns)
        if peak:
            line += "".join(f"{result[f'{name}_mfu']:>12.1%}" for name in columns)
        print(line + f"{result['mammut_over_coca']:>13.2f}", flush=True)


if __name__ == "__main__":
    main()

"""The paper's grid (Nezhurina et al. 2025): CLIP vs MaMMUT, ViT-S-32 .. ViT-L-14, 1.28M .. 3B
samples seen, cosine schedule, on DataComp-style img2dataset shards, for a GPU cluster.

    ray job submit --address http://HEAD:8265 --working-dir . -- \\
        python jobs/clip_vs_mammut_paper.py --data s3://BUCKET/datacomp/shards \\
        --eval-data s3://BUCKET/heldout --zeroshot-data s3://BUCKET/imagenet-zeroshot \\
        --tracking-uri http://HEAD:5000 --storage-path s3://BUCKET/ray_results
    python jobs/clip_vs_mammut_paper.py --data ... --dry-run   # cost before you spend it
"""

from __future__ import annotations

import argparse

from vlscale.platform.config import DataSpec, GridSpec, Procedure, ResourceSpec, SizeSettings
from vlscale.platform.sweep.jobs import main_for_job_file

ARCHITECTURES = ("ViT-S-32", "ViT-M-32", "ViT-S-16", "ViT-B-32", "ViT-M-16", "ViT-B-16",
                 "ViT-L-14")
SAMPLES_SEEN = (1_280_000, 3_072_000, 6_400_000, 12_800_000, 30_720_000, 64_000_000,
                128_000_000, 307_200_000, 640_000_000, 1_280_000_000, 3_072_000_000)
# Per-size LR / warm-up / batch in the spirit of the paper's tuned settings; the global batch
# divides by the 8 GPUs of a cell, as does every samples-seen value's last partial batch.
SIZES = {
    "ViT-S-32": SizeSettings(lr=2e-3, global_batch=4096, warmup_samples=2_000_000),
    "ViT-M-32": SizeSettings(lr=2e-3, global_batch=4096, warmup_samples=2_000_000),
    "ViT-S-16": SizeSettings(lr=2e-3, global_batch=4096, warmup_samples=2_000_000),
    "ViT-B-32": SizeSettings(lr=1e-3, global_batch=8192, warmup_samples=4_000_000),
    "ViT-M-16": SizeSettings(lr=1e-3, global_batch=8192, warmup_samples=4_000_000),
    "ViT-B-16": SizeSettings(lr=1e-3, global_batch=8192, warmup_samples=4_000_000),
    "ViT-L-14": SizeSettings(lr=5e-4, global_batch=16384, warmup_samples=8_000_000),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="training shards (img2dataset parquet)")
    parser.add_argument("--eval-data", help="held-out captioned shards (retrieval, losses)")
    parser.add_argument("--zeroshot-data", help="zero-shot classification shards "
                                                "(e.g. ImageNet-1k with class names)")
    parser.add_argument("--dataset-name", default="datacomp_1b")
    parser.add_argument("--gpus-per-cell", type=int, default=8)
    parser.add_argument("--name", default="clip-vs-mammut-paper", help="sweep id")


def grid(args: argparse.Namespace) -> GridSpec:
    data = DataSpec(args.dataset_name, args.data, args.eval_data, args.zeroshot_data,
                    eval_samples=50_000)
    workers = args.gpus_per_cell
    return GridSpec(
        name=args.name,
        procedures=(Procedure("clip-datacomp-cosine", "clip", data),
                    Procedure("mammut-datacomp-cosine", "mammut", data)),
        architectures=ARCHITECTURES, samples_seen=SAMPLES_SEEN, sizes=SIZES,
        resources=ResourceSpec(min_workers=workers, max_workers=workers, cpus_per_worker=8,
                               gpus_per_worker=1, max_failures=5),
        train_overrides={"checkpoint_every_samples": 50_000_000, "eval_batch_size": 1000,
                         "precision": "bf16"})


if __name__ == "__main__":
    main_for_job_file(__file__)

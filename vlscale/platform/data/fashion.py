"""Real images: Fashion-MNIST items, tinted and placed into captioned scenes.

Products (same layout as synth): OUT/train — scenes composed from the 60k training items
("a red sneaker on the left and a blue bag at the bottom"); OUT/eval — scenes from the 10k test
items (held-out losses and retrieval on unseen items); OUT/zeroshot — every test item as a
one-item scene, labelled with its class (10 classes, their names as class names).
"""

from __future__ import annotations

import functools
import gzip
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vlscale.errors import UserError
from vlscale.platform.data.schema import ROWS_PER_SHARD
from vlscale.platform.data.synth import COLOURS, POSITIONS, encode_jpeg

DEFAULT_SOURCE = "/usr/share/datasets/fashion-mnist"
SOURCE_ENV = "VLSCALE_FASHION_MNIST"
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CLASS_NAMES = ("t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
               "bag", "ankle boot")
CAPTION_TEMPLATES = ("{}", "a picture of {}", "a photo of {}", "an image with {}", "there is {}")
ZEROSHOT_TEMPLATES = ("a photo of a {}.", "a picture of a {}.", "there is a {}.",
                      "an image with a {}.", "a {}.")
ITEM_SCALE = (0.4, 0.55)  # item side as a fraction of the image side
OBJECT_COUNTS, OBJECT_COUNT_P = (1, 2, 3), (0.35, 0.45, 0.2)
P_COLOUR, P_POSITION = 0.85, 0.7
SPLIT_TAGS = {"train": 10, "eval": 11, "zeroshot": 12}
# Bright tints only: the background is dark, and a black item would be invisible.
TINTS = tuple(name for name in COLOURS if name != "black")
RENDER_BYTES_PER_PIXEL = 41
"""Peak working memory of composing one scene, per image pixel (float32 canvas, resized items,
the JPEG): measured with tracemalloc at 256 and 512 pixels a side."""


def find_source(source: str | None = None) -> Path:
    """The folder holding the four idx files (.gz or not); a clear error when it is missing."""
    folder = Path(source or os.environ.get(SOURCE_ENV) or DEFAULT_SOURCE)
    missing = [name for pair in FILES.values() for name in pair
               if not (folder / name).exists() and not (folder / f"{name}.gz").exists()]
    if missing:
        raise UserError(
            f"Fashion-MNIST files not found in {folder} (missing {', '.join(missing)}); install "
            "them with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or pass --source "
            f"DIR (or set ${SOURCE_ENV}) to a folder holding the idx files")
    return folder


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 8:
        raise UserError(f"{path} is not an idx file of unsigned bytes; reinstall the dataset")
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


@functools.lru_cache(maxsize=2)
def load_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [n, 28, 28], labels uint8 [n]) of "train" or "test"."""
    paths = []
    for name in FILES[split]:
        plain = folder / name
        paths.append(plain if plain.exists() else folder / f"{name}.gz")
    images, labels = (_read_idx(path) for path in paths)
    if len(images) != len(labels):
        raise UserError(f"{folder}: {split} images and labels differ in count; reinstall")
    return images, labels


def _compose(items: list[tuple[np.ndarray, str, str]], size: int, rng: np.random.Generator
             ) -> np.ndarray:
    """Paint tinted items (grey level = opacity) onto a dark, slightly noisy background."""
    from PIL import Image

    base = rng.uniform(10, 60) + rng.uniform(-8, 8, 3)
    canvas = np.broadcast_to(base, (size, size, 3)).astype(np.float32).copy()
    cell = size / 3
    for pixels, tint, position in items:
        side = max(8, int(size * rng.uniform(*ITEM_SCALE)))
        item = np.asarray(Image.fromarray(pixels).resize((side, side), Image.Resampling.BICUBIC),
                          dtype=np.float32)[..., None] / 255.0
        column, row, _ = POSITIONS[position]
        x0 = int(np.clip((column + 0.5) * cell - side / 2 + rng.uniform(-0.1, 0.1) * cell,
                         0, size - side))
        y0 = int(np.clip((row + 0.5) * cell - side / 2 + rng.uniform(-0.1, 0.1) * cell,
                         0, size - side))
        colour = np.clip(np.array(COLOURS[tint]) + rng.normal(0, 12, 3), 0, 255)
        region = canvas[y0:y0 + side, x0:x0 + side]
        region += (colour.astype(np.float32) - region) * item
    canvas += 3 * rng.standard_normal(canvas.shape, dtype=np.float32)
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def _caption(items: list[tuple[int, str, str]], rng: np.random.Generator) -> str:
    order = rng.permutation(len(items))
    phrases = []
    for index in order:
        label, tint, position = items[index]
        words = ["a"] + ([tint] if rng.random() < P_COLOUR else []) + [CLASS_NAMES[label]]
        if rng.random() < P_POSITION:
            words.append(POSITIONS[position][2])
        phrases.append(" ".join(words))
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return str(rng.choice(CAPTION_TEMPLATES)).format(listed)


def fashion_rows(shard_index: int, first_row: int, count: int, *, split: str, image_size: int,
                 seed: int, source: str) -> Iterator[dict[str, Any]]:
    """Rows of one shard: scenes ("train" from training items, "eval" from test items) or
    labelled one-item scenes of every test item in order ("zeroshot")."""
    from vlscale.platform.data.writing import shard_rng

    images, labels = load_split(Path(source), "train" if split == "train" else "test")
    rng = shard_rng(seed, SPLIT_TAGS[split], shard_index)
    positions = list(POSITIONS)
    for row in range(first_row, first_row + count):
        if split == "zeroshot":
            picks, cells = [row], [int(rng.integers(len(positions)))]
        else:
            n_items = int(rng.choice(OBJECT_COUNTS, p=OBJECT_COUNT_P))
            picks = rng.integers(len(images), size=n_items).tolist()
            cells = rng.choice(len(positions), size=n_items, replace=False).tolist()
        tints = [TINTS[int(rng.integers(len(TINTS)))] for _ in picks]
        described = [(int(labels[i]), t, positions[c]) for i, t, c in zip(picks, tints, cells)]
        pixels = _compose([(images[i], t, positions[c]) for i, t, c in zip(picks, tints, cells)],
                          image_size, rng)
        label = int(labels[row]) if split == "zeroshot" else None
        caption = (f"a {tints[0]} {CLASS_NAMES[label]}" if label is not None
                   else _caption(described, rng))
        yield {"key": f"{row:09d}", "jpg": encode_jpeg(pixels), "txt": caption, "label": label,
               "meta": '{"items":[%s]}' % ",".join(
                   '{"index":%d,"class":"%s","tint":"%s","position":"%s"}'
                   % (i, CLASS_NAMES[lab], t, pos) for i, (lab, t, pos) in zip(picks, described))}


def vocabulary() -> list[str]:
    from vlscale.platform.models.tokenizers import split_words

    texts = [*CAPTION_TEMPLATES, *ZEROSHOT_TEMPLATES, *CLASS_NAMES, *TINTS, "a and",
             *(phrase for _, _, phrase in POSITIONS.values())]
    return sorted({word for text in texts for word in split_words(text)})


def write_fashion(out: str | Path, *, source: str | None = None, samples: int = 60_000,
                  eval_samples: int = 10_000, zeroshot_samples: int | None = None,
                  image_size: int = 64, seed: int = 0, workers: int | None = None,
                  overwrite: bool = False, rows_per_shard: int = ROWS_PER_SHARD
                  ) -> dict[str, dict]:
    """Write OUT/train, OUT/eval and OUT/zeroshot from the Debian Fashion-MNIST files.

    The zero-shot set holds the first `zeroshot_samples` test items (all 10k when None).
    """
    from vlscale.platform.data.writing import Product, write_products

    folder = find_source(source)
    test_items = len(load_split(folder, "test")[1])
    if zeroshot_samples is not None:
        test_items = min(test_items, zeroshot_samples)
    if samples <= 0 or eval_samples < 0:
        raise UserError("--samples must be positive and --eval-samples non-negative")
    if image_size < 16:
        raise UserError(f"--image-size must be at least 16 pixels, got {image_size}")
    params = {"source": str(folder), "item_scale": list(ITEM_SCALE), "tints": list(TINTS),
              "object_counts": list(OBJECT_COUNTS), "object_count_p": list(OBJECT_COUNT_P),
              "caption_templates": list(CAPTION_TEMPLATES), "p_colour": P_COLOUR,
              "p_position": P_POSITION}
    words = vocabulary()
    products = []
    for split, rows in (("train", samples), ("eval", eval_samples), ("zeroshot", test_items)):
        if not rows:
            continue
        extra: dict[str, Any] = {"vocabulary": words}
        if split == "zeroshot":
            extra.update(class_names=list(CLASS_NAMES), templates=list(ZEROSHOT_TEMPLATES),
                         task="classify the Fashion-MNIST test item (10 classes)")
        products.append(Product(
            split, fashion_rows, {"split": split, "image_size": image_size, "seed": seed,
                                        "source": str(folder)},
            rows, split == "zeroshot",
            dict(writer="fashion", split=split, parameters=params, seed=seed,
                 image_size=image_size, verified=True, **extra)))
    manifests = write_products(out, products, overwrite=overwrite, image_size=image_size,
                               bytes_per_pixel=RENDER_BYTES_PER_PIXEL, workers=workers,
                               rows_per_shard=rows_per_shard, inputs=[folder])
    return {m["split"]: m for m in manifests}

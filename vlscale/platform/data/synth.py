"""Procedural scenes with captions: 1-3 shapes on textured backgrounds, described like alt-text.

Why this is hard enough to show scaling on a CPU ladder (32x32 images, tiny ViTs): small shapes
are a few pixels wide and rotated, colours are jittered and may sit on a similar background,
captions bind attributes to objects ("a small red star at the top and a blue ring on the left"),
name objects in random order with random templates, and drop attributes or whole objects at
random. So the caption loss has an irreducible floor, and a model needs capacity and many samples
to read shapes, bind colours and positions, and ignore the texture.
"""

from __future__ import annotations

import colorsys
import functools
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from vlscale.platform.data.schema import ROWS_PER_SHARD

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross", "ring", "hexagon")
COLOURS = {"red": (215, 40, 40), "orange": (240, 140, 30), "yellow": (235, 215, 45),
           "green": (45, 165, 70), "cyan": (50, 200, 215), "blue": (45, 80, 215),
           "purple": (135, 60, 185), "pink": (240, 135, 190), "white": (240, 240, 240),
           "black": (25, 25, 25)}
SIZES = {"small": 0.09, "medium": 0.14, "large": 0.2}  # radius as a fraction of the image side
POSITIONS = {  # name: (column, row, phrase)
    "top left": (0, 0, "at the top left"), "top": (1, 0, "at the top"),
    "top right": (2, 0, "at the top right"), "left": (0, 1, "on the left"),
    "center": (1, 1, "in the center"), "right": (2, 1, "on the right"),
    "bottom left": (0, 2, "at the bottom left"), "bottom": (1, 2, "at the bottom"),
    "bottom right": (2, 2, "at the bottom right")}
TEXTURES = ("plain", "striped", "checkered", "dotted", "noisy")
CAPTION_TEMPLATES = ("{}", "a picture of {}", "a photo of {}", "an image with {}", "there is {}",
                     "{} in the picture")
ZEROSHOT_TEMPLATES = ("a photo of a {}.", "a picture of a {}.", "there is a {}.",
                      "an image with a {}.", "a {}.")
OBJECT_COUNTS, OBJECT_COUNT_P = (1, 2, 3), (0.3, 0.4, 0.3)
P_COLOUR, P_SIZE, P_POSITION, P_SUBSET, P_BACKGROUND = 0.9, 0.5, 0.6, 0.25, 0.3
SUPERSAMPLE = 4
SPLIT_TAGS = {"train": 0, "eval": 1, "zeroshot": 2}
RENDER_BYTES_PER_PIXEL = 48
"""Peak working memory of rendering one scene, per image pixel (float32 canvas and temporaries,
the cached coordinate grid, the JPEG): measured with tracemalloc at 512 pixels a side."""
_COLOUR_NAMES, _SIZE_NAMES, _POSITION_NAMES = list(COLOURS), list(SIZES), list(POSITIONS)


@dataclass
class SceneObject:
    shape: str
    colour: str
    size: str
    position: str


@dataclass
class Scene:
    objects: list[SceneObject]
    texture: str
    tone: str


def class_names() -> list[str]:
    """Zero-shot classes: every colour x shape, label = shape index * colours + colour index."""
    return [f"{colour} {shape}" for shape in SHAPES for colour in COLOURS]


def vocabulary() -> list[str]:
    """Every word a synthetic caption, class name or prompt template can contain (sorted)."""
    from vlscale.platform.models.tokenizers import split_words

    texts = [*CAPTION_TEMPLATES, *ZEROSHOT_TEMPLATES, *SHAPES, *COLOURS, *SIZES, *TEXTURES,
             *(phrase for _, _, phrase in POSITIONS.values()), "a and on background dark light"]
    return sorted({word for text in texts for word in split_words(text)})


def sample_scene(rng: np.random.Generator, count: int | None = None,
                 shape: str | None = None, colour: str | None = None) -> Scene:
    count = count or OBJECT_COUNTS[int(rng.choice(len(OBJECT_COUNTS), p=OBJECT_COUNT_P))]
    cells = rng.choice(len(_POSITION_NAMES), size=count, replace=False)
    objects = [SceneObject(shape or SHAPES[rng.integers(len(SHAPES))],
                           colour or _COLOUR_NAMES[rng.integers(len(_COLOUR_NAMES))],
                           _SIZE_NAMES[rng.integers(len(_SIZE_NAMES))], _POSITION_NAMES[cell])
               for cell in cells]
    return Scene(objects, TEXTURES[rng.integers(len(TEXTURES))], "")


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    return y, x


def _background(rng: np.random.Generator, size: int, texture: str) -> tuple[np.ndarray, str]:
    hue, saturation, value = rng.random(), rng.uniform(0.05, 0.45), rng.uniform(0.15, 0.85)
    base = np.array(colorsys.hsv_to_rgb(hue, saturation, value)) * 255
    other = np.array(colorsys.hsv_to_rgb(hue, saturation, np.clip(
        value + rng.choice([-1, 1]) * rng.uniform(0.08, 0.2), 0, 1))) * 255
    y, x = _grid(size)
    period = rng.uniform(3, 8) * size / 32
    if texture == "striped":
        angle = rng.choice([0, np.pi / 4, np.pi / 2, 3 * np.pi / 4])
        mix = np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period
                     + rng.uniform(0, 2 * np.pi)) > 0
    elif texture == "checkered":
        mix = ((x // period + y // period) % 2) > 0
    elif texture == "dotted":
        mix = (np.hypot((x % period) - period / 2, (y % period) - period / 2)) < period / 4
    elif texture == "noisy":
        mix = rng.random((size, size)) < 0.5
    else:
        mix = np.zeros((size, size), dtype=bool)
    canvas = np.where(mix[..., None], other.astype(np.float32), base.astype(np.float32))
    return canvas, "dark" if value < 0.5 else "light"


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        points = [(1, 1), (-1, 1), (-1, -1), (1, -1)]
        radii = [r * 0.8] * 4
        angles = [np.arctan2(py, px) for px, py in points]
    elif shape == "diamond":
        angles, radii = [0, np.pi / 2, np.pi, 3 * np.pi / 2], [r * 0.75, r, r * 0.75, r]
    elif shape == "triangle":
        angles, radii = [-np.pi / 2 + k * 2 * np.pi / 3 for k in range(3)], [r * 1.1] * 3
    elif shape == "star":
        angles = [-np.pi / 2 + k * np.pi / 5 for k in range(10)]
        radii = [r * 1.1 if k % 2 == 0 else r * 0.45 for k in range(10)]
    elif shape == "hexagon":
        angles, radii = [k * np.pi / 3 for k in range(6)], [r] * 6
    else:  # cross: a plus sign of arm half-width 0.33 r
        t = 0.33
        outline = [(t, 1), (-t, 1), (-t, t), (-1, t), (-1, -t), (-t, -t), (-t, -1), (t, -1),
                   (t, -t), (1, -t), (1, t), (t, t)]
        angles = [np.arctan2(py, px) for px, py in outline]
        radii = [r * np.hypot(px, py) / np.sqrt(1 + t * t) for px, py in outline]
    return [(cx + rad * np.cos(a + angle), cy + rad * np.sin(a + angle))
            for a, rad in zip(angles, radii)]


def _paint(canvas: np.ndarray, shape: str, cx: float, cy: float, r: float, angle: float,
           colour: np.ndarray) -> None:
    """Alpha-blend an anti-aliased shape into `canvas` (drawn supersampled in its bounding box)."""
    size = canvas.shape[0]
    x0, y0 = max(0, int(cx - 1.2 * r)), max(0, int(cy - 1.2 * r))
    x1, y1 = min(size, int(cx + 1.2 * r) + 2), min(size, int(cy + 1.2 * r) + 2)
    mask = Image.new("L", ((x1 - x0) * SUPERSAMPLE, (y1 - y0) * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy, r = (cx - x0) * SUPERSAMPLE, (cy - y0) * SUPERSAMPLE, r * SUPERSAMPLE
    if shape in ("circle", "ring"):
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        if shape == "ring":
            inner = r * 0.55
            draw.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=0)
    else:
        draw.polygon(_polygon(shape, cx, cy, r, angle), fill=255)
    alpha = np.asarray(mask.reduce(SUPERSAMPLE), dtype=np.float32)[..., None] / 255.0
    region = canvas[y0:y1, x0:x1]
    region += (colour - region) * alpha


def render(scene: Scene, size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 [size, size, 3]; updates `scene.tone` from the background actually drawn."""
    canvas, scene.tone = _background(rng, size, scene.texture)
    cell = size / 3
    for obj in scene.objects:
        column, row, _ = POSITIONS[obj.position]
        cx = (column + 0.5) * cell + rng.uniform(-0.18, 0.18) * cell
        cy = (row + 0.5) * cell + rng.uniform(-0.18, 0.18) * cell
        radius = SIZES[obj.size] * size * rng.uniform(0.9, 1.1)
        colour = np.clip(np.array(COLOURS[obj.colour]) + rng.normal(0, 12, 3), 0, 255)
        _paint(canvas, obj.shape, cx, cy, radius, rng.uniform(-0.26, 0.26),
               colour.astype(np.float32))
    canvas += 3 * rng.standard_normal(canvas.shape, dtype=np.float32)
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def describe(scene: Scene, rng: np.random.Generator) -> str:
    """A caption: objects in random order, attributes and objects sometimes left out."""
    objects = list(scene.objects)
    rng.shuffle(objects)
    if len(objects) > 1 and rng.random() < P_SUBSET:
        objects = objects[:int(rng.integers(1, len(objects)))]
    phrases = []
    for obj in objects:
        words = ["a"]
        if rng.random() < P_SIZE:
            words.append(obj.size)
        if rng.random() < P_COLOUR:
            words.append(obj.colour)
        words.append(obj.shape)
        if rng.random() < P_POSITION:
            words.append(POSITIONS[obj.position][2])
        phrases.append(" ".join(words))
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    caption = str(rng.choice(CAPTION_TEMPLATES)).format(listed)
    if rng.random() < P_BACKGROUND:
        tone = f"{scene.tone} " if rng.random() < 0.5 else ""
        caption += f" on a {tone}{scene.texture} background"
    return caption


def encode_jpeg(pixels: np.ndarray) -> bytes:
    """JPEG q95 without chroma subsampling: a 3-pixel shape keeps its colour."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95, subsampling=0)
    return buffer.getvalue()


def synth_rows(shard_index: int, first_row: int, count: int, *, split: str, image_size: int,
               seed: int) -> Iterator[dict[str, Any]]:
    """The rows of one shard of a split ("train", "eval": captioned; "zeroshot": labelled)."""
    from vlscale.platform.data.writing import shard_rng

    rng = shard_rng(seed, SPLIT_TAGS[split], shard_index)
    colours = list(COLOURS)
    for row in range(first_row, first_row + count):
        label = None
        if split == "zeroshot":
            label = row % (len(SHAPES) * len(colours))
            shape, colour = SHAPES[label // len(colours)], colours[label % len(colours)]
            scene = sample_scene(rng, 1, shape, colour)
        else:
            scene = sample_scene(rng)
        pixels = render(scene, image_size, rng)
        caption = f"a {colour} {shape}" if label is not None else describe(scene, rng)
        meta = {"objects": [vars(o) for o in scene.objects], "texture": scene.texture,
                "tone": scene.tone}
        yield {"key": f"{row:09d}", "jpg": encode_jpeg(pixels), "txt": caption, "label": label,
               "meta": json.dumps(meta, separators=(",", ":"))}


def write_synth(out: str | Path, *, samples: int, image_size: int = 32, seed: int = 0,
                eval_samples: int = 10_000, zeroshot_samples: int = 10_000,
                workers: int | None = None, overwrite: bool = False,
                rows_per_shard: int = ROWS_PER_SHARD) -> dict[str, dict[str, Any]]:
    """Write OUT/train, OUT/eval (same distribution, own seed stream) and OUT/zeroshot."""
    from vlscale.errors import UserError
    from vlscale.platform.data.writing import Product, write_products

    if samples <= 0 or eval_samples < 0 or zeroshot_samples < 0:
        raise UserError("--samples must be positive and the held-out sizes non-negative")
    if image_size < 8:
        raise UserError(f"--image-size must be at least 8 pixels, got {image_size}")
    words = vocabulary()
    params = {"object_counts": list(OBJECT_COUNTS), "object_count_p": list(OBJECT_COUNT_P),
              "shapes": list(SHAPES), "colours": list(COLOURS), "sizes": SIZES,
              "textures": list(TEXTURES), "caption_templates": list(CAPTION_TEMPLATES),
              "p_colour": P_COLOUR, "p_size": P_SIZE, "p_position": P_POSITION,
              "p_subset": P_SUBSET, "p_background": P_BACKGROUND}
    products = []
    for split, rows in (("train", samples), ("eval", eval_samples),
                        ("zeroshot", zeroshot_samples)):
        if not rows:
            continue
        extra: dict[str, Any] = {"vocabulary": words}
        if split == "zeroshot":
            extra.update(class_names=class_names(), templates=list(ZEROSHOT_TEMPLATES),
                         task="classify the colour and shape of the one object in the scene")
        products.append(Product(
            split, synth_rows, {"split": split, "image_size": image_size, "seed": seed},
            rows, split == "zeroshot",
            dict(writer="synth", split=split, parameters=params, seed=seed,
                 image_size=image_size, verified=True, **extra)))
    manifests = write_products(out, products, overwrite=overwrite, image_size=image_size,
                               bytes_per_pixel=RENDER_BYTES_PER_PIXEL, workers=workers,
                               rows_per_shard=rows_per_shard)
    return {manifest["split"]: manifest for manifest in manifests}

"""Image decoding and caption tokenization, identical to open_clip's evaluation transform.

open_clip's `image_transform(size, is_train=False)` is Resize(shortest edge, bicubic) ->
CenterCrop -> convert("RGB") -> ToTensor -> Normalize. The pipeline splits it in two:

- `decode_image` (in the window tasks) does the PIL part with the same arithmetic as
  torchvision and returns uint8 HWC — 4x less to move through the object store than float32;
- `to_model_images` (in the consumer, vectorised: numpy on CPU, torch on a GPU) does ToTensor +
  Normalize.

The composition equals open_clip's transform up to float rounding (atol 1e-6;
tests/platform/data/test_data_preprocess.py).
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from vlscale.platform.data.shards import RawRows, ShardSet

if TYPE_CHECKING:
    import torch

    from vlscale.platform.models.tokenizers import Tokenizer

# open_clip.constants.OPENAI_DATASET_MEAN / _STD, copied so that Ray tasks need not import torch.
OPENAI_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
DECODE_ERRORS = (OSError, ValueError, SyntaxError, TypeError, Image.DecompressionBombError,
                 EOFError, MemoryError)


@dataclass(frozen=True)
class Preprocess:
    """How raw rows become model inputs: image size, tokenizer, normalisation."""

    image_size: int
    """Side of the square model input (shortest-edge resize, then center crop)."""
    tokenizer: str = "words"
    """"words" (the dataset's word vocabulary from dataset.json) or "bpe" (open_clip's BPE)."""
    context_length: int = 32
    """Tokens per caption, including start and end tokens; padded with id 0."""
    vocabulary: tuple[str, ...] | None = None
    """Word list for the "words" tokenizer (from `ShardSet.vocabulary`)."""
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def for_shards(cls, shards: ShardSet, image_size: int, tokenizer: str = "words",
                   context_length: int = 32, mean: Sequence[float] = OPENAI_MEAN,
                   std: Sequence[float] = OPENAI_STD) -> Preprocess:
        """A spec that takes the word vocabulary from the shard set's dataset.json."""
        vocabulary = (tuple(shards.vocabulary) if tokenizer == "words" and shards.vocabulary
                      else None)
        spec = cls(image_size, tokenizer, context_length, vocabulary, tuple(mean), tuple(std))
        spec.build_tokenizer()  # fail now, on the driver, if the vocabulary is missing
        return spec

    def build_tokenizer(self) -> Tokenizer:
        if "tokenizer" not in self._cache:
            self._cache["tokenizer"] = _tokenizer(self.tokenizer, self.context_length,
                                                  self.vocabulary)
        return self._cache["tokenizer"]

    def describe(self) -> dict[str, Any]:
        """Flat parameters to log (the vocabulary as its size)."""
        return {"image_size": self.image_size, "tokenizer": self.tokenizer,
                "context_length": self.context_length,
                "vocabulary_size": len(self.vocabulary) if self.vocabulary else None,
                "mean": list(self.mean), "std": list(self.std)}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": {}}


@functools.lru_cache(maxsize=8)
def _tokenizer(kind: str, context_length: int, vocabulary: tuple[str, ...] | None) -> Tokenizer:
    from vlscale.platform.models.tokenizers import build_tokenizer

    return build_tokenizer(kind, context_length, vocabulary)


def open_image(data: bytes | None) -> Image.Image | None:
    """The fully decoded image, or None when the bytes are missing, truncated or not an image."""
    if not data:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's EXIF / palette warnings on web images
            image = Image.open(io.BytesIO(data))
            image.load()
        return image
    except DECODE_ERRORS:
        return None


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """torchvision's Resize(size, BICUBIC) + CenterCrop(size) on a PIL image, same arithmetic."""
    width, height = image.size
    if width == height == size:  # torchvision would make an identical copy
        return image
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    if (top, left, new_w, new_h) != (0, 0, size, size):
        image = image.crop((left, top, left + size, top + size))
    return image


def decode_image(data: bytes | None, size: int) -> np.ndarray | None:
    """uint8 [size, size, 3] RGB, or None for a missing or undecodable image."""
    image = open_image(data)
    if image is None:
        return None
    try:
        image = resize_center_crop(image, size)
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except DECODE_ERRORS:
        return None


def row_usable(status_ok: bool, caption: str | None) -> bool:
    """The checks that need no decoding: a success status and a non-blank caption."""
    return bool(status_ok) and caption is not None and bool(caption.strip())


def prepare_rows(raw: RawRows, order: np.ndarray, preprocess: Preprocess
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decode the rows `order` (in that order); keep the usable ones.

    Returns (kept row indices, images uint8 [n,S,S,3], tokens int64 [n,L], labels int64 [n],
    usable mask over `order`). Labels are -1 when the shards have none.
    """
    size = preprocess.image_size
    usable = np.zeros(len(order), dtype=bool)
    images = np.empty((len(order), size, size, 3), dtype=np.uint8)
    kept = 0
    for position, row in enumerate(order):
        if not row_usable(raw.status_ok[row], raw.captions[row]):
            continue
        pixels = decode_image(raw.images[row], size)
        if pixels is None:
            continue
        images[kept] = pixels
        usable[position] = True
        kept += 1
    rows = order[usable]
    tokens = preprocess.build_tokenizer()([raw.captions[r] for r in rows])
    labels = raw.labels[rows] if raw.labels is not None else np.full(len(rows), -1, np.int64)
    return rows, images[:kept], tokens, labels, usable


def to_model_images(images: np.ndarray | torch.Tensor, mean: Sequence[float],
                    std: Sequence[float], device: Any = None) -> torch.Tensor:
    """uint8 [n,H,W,3] -> normalised float32 [n,3,H,W] (ToTensor + Normalize), on `device`.

    Computed as x * (1 / (255 std)) - mean / std, equal to (x / 255 - mean) / std up to float
    rounding. On CPU it runs in numpy, single-threaded on purpose: torch's intra-op threads
    spin-wait, which cost 4x the CPU of the conversion itself next to busy data tasks.
    """
    import torch

    std64, mean64 = np.asarray(std, np.float64), np.asarray(mean, np.float64)
    scale = (1.0 / (255.0 * std64)).astype(np.float32).reshape(1, 3, 1, 1)
    shift = (-mean64 / std64).astype(np.float32).reshape(1, 3, 1, 1)
    if device is None or torch.device(device).type == "cpu":
        pixels = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        normalised = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32)
        normalised *= scale
        normalised += shift
        return torch.from_numpy(normalised)
    with warnings.catch_warnings():  # read-only arrays from the object store: never written to
        warnings.simplefilter("ignore", UserWarning)
        pixels = torch.as_tensor(images).to(device, non_blocking=True)
    pixels = pixels.permute(0, 3, 1, 2).contiguous().float()
    return pixels.mul_(torch.from_numpy(scale).to(pixels.device)).add_(
        torch.from_numpy(shift).to(pixels.device))

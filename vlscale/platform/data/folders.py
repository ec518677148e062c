"""A class-folder image set (ImageNet / torchvision `ImageFolder` layout) as import rows.

`root/<class>/<image files>` (images may sit in sub-folders of a class folder): classes are the
non-hidden sub-folders of `root` in sorted order, so label i is the i-th folder, as in
`ImageFolder` and in ImageNet's class index (its class folders are WordNet ids whose sorted order
is the class order). The rows come out in a seeded random order: the evaluator reads the first
`eval_samples` rows of a set, which in folder order would all be the first classes.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlscale.errors import UserError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
"""Files read as images (case-insensitive: ImageNet's are .JPEG); other files are counted as
skipped ("not_image")."""
WORDNET_ID = re.compile(r"n\d{8}")


@dataclass(frozen=True)
class ClassFolders:
    """The classes (sorted folder names) and every image file's path and label."""

    root: Path
    folders: tuple[str, ...]
    files: tuple[tuple[str, int], ...]
    """(path relative to root, label), in folder order."""
    skipped: dict[str, int]

    @property
    def wordnet_ids(self) -> bool:
        """True when every class folder is named like a WordNet id (n01440764): ImageNet."""
        return all(WORDNET_ID.fullmatch(name) for name in self.folders)

    def default_class_names(self) -> list[str]:
        """The folder names with underscores as spaces ("ankle_boot" -> "ankle boot")."""
        return [name.replace("_", " ").strip() for name in self.folders]


def class_folders(root: Path) -> list[str]:
    """The class folder names under `root` (non-hidden sub-folders), sorted."""
    return sorted(entry.name for entry in os.scandir(root)
                  if entry.is_dir() and not entry.name.startswith("."))


def list_class_folders(root: Path) -> ClassFolders:
    """Walk every class folder (following links, in sorted order) for image files."""
    folders = class_folders(root)
    files: list[tuple[str, int]] = []
    skipped: Counter[str] = Counter()
    for label, folder in enumerate(folders):
        for directory, subdirs, names in os.walk(root / folder, followlinks=True):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            relative = Path(directory).relative_to(root)
            for name in sorted(names):
                if name.startswith("."):
                    continue
                if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                    files.append(((relative / name).as_posix(), label))
                else:
                    skipped["not_image"] += 1
    if not files:
        raise UserError(f"the class folders of {root} ({', '.join(folders[:3])}, ...) hold no "
                        f"image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return ClassFolders(root, tuple(folders), tuple(files), dict(skipped))


def shuffled_files(listing: ClassFolders, seed: int) -> list[tuple[str, int]]:
    """Every (relative path, label) of the listing in a random order drawn from `seed`: the
    import's row order (the evaluator reads a set's first rows, which must span the classes)."""
    order = np.random.default_rng(seed).permutation(len(listing.files))
    return [listing.files[index] for index in order]


def file_rows(root: Path, files: Sequence[tuple[str, int]], class_names: Sequence[str]
              ) -> Iterator[dict[str, Any]]:
    """One import row per (relative path, label) of `files`, in that order: key = path without
    suffix, caption = the class name, label = the folder's index, meta = the relative path."""
    for relative, label in files:
        path = root / relative
        try:
            image = path.read_bytes()
        except OSError as error:
            raise UserError(f"cannot read {path} ({error.strerror or error}); fix its "
                            "permissions or move it out of the folder, and run again") from error
        yield {"key": relative.rsplit(".", 1)[0], "image": image, "caption": class_names[label],
               "status": None, "label": label, "meta": {"path": relative}}

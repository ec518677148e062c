"""`vlscale data check`: what a shard folder holds and how much of it the pipeline can use."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from vlscale.platform.data.importer import SOURCE_READ_ERRORS, unreadable
from vlscale.platform.data.preprocess import open_image, row_usable
from vlscale.platform.data.shards import ShardSet, open_shards
from vlscale.platform.models.tokenizers import split_words

CAPTION_BINS = ((0, 0), (1, 4), (5, 8), (9, 16), (17, 32), (33, 76), (77, None))


@dataclass
class CheckReport:
    location: str
    shards: int
    rows: int
    checked: int = 0
    usable: int = 0
    skipped: Counter = field(default_factory=Counter)
    """Unusable rows by reason: status, no_caption, no_image, bad_image."""
    caption_words: Counter = field(default_factory=Counter)
    """Caption length in words -> rows (usable rows only)."""
    schemas: dict[str, list[str]] = field(default_factory=dict)
    """Column set -> the shard files that have it."""
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def decodable_ratio(self) -> float:
        with_bytes = self.checked - self.skipped["no_image"] - self.skipped["status"]
        return 1.0 - self.skipped["bad_image"] / with_bytes if with_bytes else 0.0

    def histogram(self) -> list[tuple[str, int]]:
        bins = []
        for low, high in CAPTION_BINS:
            count = sum(n for words, n in self.caption_words.items()
                        if words >= low and (high is None or words <= high))
            bins.append((f"{low}+" if high is None else f"{low}-{high}", count))
        return bins

    def render(self) -> str:
        lines = [f"{self.location}: {self.shards} shard(s), {self.rows} rows"]
        if self.manifest:
            lines.append(f"  dataset.json: writer={self.manifest.get('writer')} "
                         f"split={self.manifest.get('split')} seed={self.manifest.get('seed')} "
                         f"image_size={self.manifest.get('image_size')} "
                         f"verified={self.manifest.get('verified')}")
        else:
            lines.append("  no dataset.json (shards not written by vlscale)")
        for columns, files in self.schemas.items():
            lines.append(f"  columns [{columns}]: {len(files)} shard(s)")
        sample = "" if self.checked == self.rows else f" (first {self.checked} rows checked)"
        lines.append(f"  usable rows: {self.usable} of {self.checked}{sample}")
        lines.append(f"  decodable images: {self.decodable_ratio:.1%} of rows with image bytes")
        if self.skipped:
            reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items()))
            lines.append(f"  skipped: {reasons}")
        lines.append("  caption length (words): " + ", ".join(
            f"{label}: {count}" for label, count in self.histogram()))
        return "\n".join(lines)


def check_shards(location: str | ShardSet, max_rows: int | None = None) -> CheckReport:
    """Read the shards row group by row group (in process) and count what is usable."""
    shards = open_shards(location) if isinstance(location, str) else location
    report = CheckReport(shards.location, len(shards.files), shards.num_rows,
                         manifest={k: v for k, v in shards.manifest.items()
                                   if k not in ("vocabulary", "shards")})
    for shard in shards.files:
        columns = ", ".join(c for c in (shard.image_column, shard.caption_column) if c)
        extras = [name for name, present in (("key", shard.has_key), ("status", shard.has_status),
                                             ("label", shard.has_label)) if present]
        report.schemas.setdefault(", ".join(filter(None, [columns, *extras])) or "none",
                                  []).append(shard.path)
    limit = shards.num_rows if max_rows is None else max_rows
    for unit in range(len(shards.units)):
        if report.checked >= limit:
            break
        try:
            raw = shards.read_unit(unit)
        except SOURCE_READ_ERRORS as error:  # a damaged page: name the file, no traceback
            raise unreadable(shards.files[shards.units[unit][0]].path, error) from error
        for row in range(min(len(raw.keys), limit - report.checked)):
            report.checked += 1
            caption = raw.captions[row]
            if not raw.status_ok[row]:
                report.skipped["status"] += 1
            elif not raw.images[row]:
                report.skipped["no_image"] += 1
            elif not row_usable(True, caption):
                report.skipped["no_caption"] += 1
            elif open_image(raw.images[row]) is None:
                report.skipped["bad_image"] += 1
            else:
                report.usable += 1
                report.caption_words[len(split_words(caption))] += 1
    return report


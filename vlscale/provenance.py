"""Where a cell's per-size settings came from: the `train.settings_source` text both sides read.

Why: a law fitted over cells whose learning rate and batch were not tuned for their size
measures the tuning, not the procedure (Porian et al. 2024), so a report must be able to say
how each procedure's settings were chosen. The platform writes the text when it builds a cell
from `SizeSettings`; the analysis parses it back from the run's parameter. Kept free of every
dependency (the analysis may not import the platform, the platform may not import the
analysis).

Format: `setting=kind[:detail][!edge]` items joined by ";", e.g.
`lr=tuned:tune-cpu@8192!edge;global_batch=tuned:tune-cpu@8192;warmup_samples=manual`.
`kind` is one of `KINDS`; `detail` names the tuning sweep (and budget); `!edge` marks a tuned
value that sat at the edge of the searched range (the optimum may lie outside it). An empty
text means every setting was set by hand (cells logged before provenance existed read so too).
"""

from __future__ import annotations

from dataclasses import dataclass

MANUAL, TUNED, LAW = "manual", "tuned", "law"
KINDS = (MANUAL, TUNED, LAW)
"""manual: written in the job file; tuned: the best point of a tuning sweep for this size;
law: predicted for an untuned size by the fitted optimum law of a tuning sweep."""
SETTINGS = ("lr", "global_batch", "warmup_samples", "beta2")
"""The per-size settings a tuning sweep searches (TrainSpec field names)."""
EDGE_MARK = "!edge"


@dataclass(frozen=True)
class SettingSource:
    kind: str
    detail: str = ""
    edge: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown settings source kind {self.kind!r}; use one of "
                             f"{', '.join(KINDS)}")

    def __str__(self) -> str:
        text = self.kind + (f":{self.detail}" if self.detail else "")
        return text + (EDGE_MARK if self.edge else "")


def format_sources(sources: dict[str, SettingSource]) -> str:
    """The `train.settings_source` text of `{setting: source}` (settings in `SETTINGS` order)."""
    unknown = set(sources) - set(SETTINGS)
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; use {', '.join(SETTINGS)}")
    return ";".join(f"{name}={sources[name]}" for name in SETTINGS if name in sources)


def parse_sources(text: str) -> dict[str, SettingSource]:
    """`{setting: SettingSource}` of a `train.settings_source` text; every setting absent from
    it (all of them for "") was set by hand. Raises ValueError on a malformed text."""
    sources = {name: SettingSource(MANUAL) for name in SETTINGS}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        name, sep, value = item.partition("=")
        if not sep or name not in SETTINGS:
            raise ValueError(f"malformed settings source item {item!r} in {text!r}")
        edge = value.endswith(EDGE_MARK)
        kind, _, detail = value.removesuffix(EDGE_MARK).partition(":")
        sources[name] = SettingSource(kind, detail, edge)
    return sources

"""The ledger: every declared cell of a sweep, classified from MLflow alone.

A cell is finished, failed, running, stale (running but its heartbeat stopped, or its sweep
driver is gone) or missing (no run). A sweep launches only missing, failed and stale cells, so it
can be re-run after its driver, its Tune experiment directory or its head node was lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vlscale import tracking
from vlscale.platform.config import Cell, format_count

FINISHED, FAILED, RUNNING = tracking.STATUS_FINISHED, tracking.STATUS_FAILED, tracking.STATUS_RUNNING
STALE, MISSING = tracking.STATE_STALE, "missing"
TO_LAUNCH = (MISSING, FAILED, STALE)
_PREFERENCE = {FINISHED: 0, RUNNING: 1, STALE: 2, FAILED: 3}


@dataclass(frozen=True)
class LedgerEntry:
    cell: Cell
    state: str
    record: tracking.CellRunRecord | None
    gflops_per_sample: float

    @property
    def compute(self) -> float:
        """GFLOPs of the cell's model at its samples seen (the compute axis)."""
        return self.gflops_per_sample * self.cell.train.samples_seen

    @property
    def accelerator_hours(self) -> float:
        if self.record is None:
            return 0.0
        return float(self.record.metrics.get(tracking.METRIC_ACCELERATOR_HOURS, 0.0))


def classify(cells: Sequence[Cell], records: Sequence[tracking.CellRunRecord],
             gflops: dict[str, float], *, stale_after_s: float = tracking.STALE_AFTER_S,
             driver_gone: bool = False, now: float | None = None) -> list[LedgerEntry]:
    """One entry per cell. `driver_gone`: the driver that launched the running cells is dead,
    so they are stale whatever their heartbeat says (their processes died with it)."""
    best: dict[str, tracking.CellRunRecord] = {}
    for record in records:
        state = record.state(stale_after_s, now)
        current = best.get(record.cell_hash)
        if current is None or _PREFERENCE[state] < _PREFERENCE[current.state(stale_after_s, now)]:
            best[record.cell_hash] = record
    entries = []
    for cell in cells:
        record = best.get(cell.cell_hash)
        state = MISSING if record is None else record.state(stale_after_s, now)
        if state == RUNNING and driver_gone:
            state = STALE
        entries.append(LedgerEntry(cell, state, record,
                                   gflops[cell.model.key]))
    return entries


def to_launch(entries: Sequence[LedgerEntry]) -> list[LedgerEntry]:
    """Cells to (re)launch, cheapest first so early fits come while big cells still run."""
    return sorted((e for e in entries if e.state in TO_LAUNCH), key=lambda e: e.compute)


def format_ledger(entries: Sequence[LedgerEntry]) -> str:
    """The status table with compute and accelerator-hour totals per state."""
    lines = [f"{'cell':<14}{'procedure':<26}{'run':<30}{'state':<10}{'GFLOPs':>12}{'acc-h':>9}"]
    for e in sorted(entries, key=lambda e: (e.cell.procedure, e.compute)):
        lines.append(f"{e.cell.cell_hash:<14}{e.cell.procedure[:25]:<26}"
                     f"{e.cell.run_name[:29]:<30}{e.state:<10}{e.compute:>12.4g}"
                     f"{e.accelerator_hours:>9.3f}")
    lines.append("")
    for state in (FINISHED, RUNNING, STALE, FAILED, MISSING):
        group = [e for e in entries if e.state == state]
        if group:
            lines.append(f"{state:<10}{len(group):>4} cells  {sum(e.compute for e in group):>12.4g}"
                         f" GFLOPs  {sum(e.accelerator_hours for e in group):>8.3f} acc-h")
    total = sum(e.compute for e in entries)
    done = sum(e.compute for e in entries if e.state == FINISHED)
    lines.append(f"{'total':<10}{len(entries):>4} cells  {total:>12.4g} GFLOPs  "
                 f"({done / total:.0%} of compute finished)" if total else "total 0 cells")
    return "\n".join(lines)


def describe_cell(entry: LedgerEntry) -> str:
    return (f"{entry.cell.run_name} [{entry.cell.procedure}] "
            f"{format_count(entry.compute)} GFLOPs")

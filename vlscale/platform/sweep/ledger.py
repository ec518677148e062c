"""The ledger: every declared cell of a sweep, classified from MLflow alone.

A cell is finished, stopped (ended early by a tuning search's scheduler: done, never
relaunched), failed, running, stale (running but its heartbeat stopped, its owning
process is provably dead, or its sweep driver is gone) or missing (no run). A sweep launches only
missing, failed and stale cells, so it can be re-run after its driver, its Tune experiment
directory or its head node was lost. Every running cell it skips and every stale cell it
relaunches gets one line saying why (`explain`).

Owner check: a running cell records the process that trains it (`TAG_OWNER`, host:pid:start).
When that process ran on this host and the process table no longer has it (or the pid now belongs
to a process started at another time), the cell is relaunched at once instead of after
`--stale-after` seconds of silence (e.g. Ctrl-C then a kill of the driver, which clears the
driver lock but leaves its cells marked running). Cells owned on another host wait for the
heartbeat to go stale, since their process table cannot be read from here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from vlscale import tracking
from vlscale.platform.config import Cell, format_count

FINISHED, FAILED = tracking.CellState.FINISHED, tracking.CellState.FAILED
RUNNING, STALE = tracking.CellState.RUNNING, tracking.CellState.STALE
STOPPED = tracking.CellState.STOPPED
DONE = (FINISHED, STOPPED)
"""States a sweep is complete with: a stopped trial did what its search asked of it."""
MISSING = "missing"
"""A declared cell without a run (not a `CellState`: nothing in the store has this state)."""
TO_LAUNCH = (MISSING, FAILED, STALE)
_PREFERENCE = {FINISHED: 0, STOPPED: 1, RUNNING: 2, STALE: 3, FAILED: 4}


@dataclass(frozen=True)
class LedgerEntry:
    cell: Cell
    state: str
    record: tracking.CellRunRecord | None
    gflops_per_sample: float
    reason: str = ""
    """Why a running cell is skipped, or why a stale one is relaunched (empty otherwise)."""

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
    so they are stale whatever their heartbeat says (their processes died with it). A running
    cell whose owner process is provably dead (`tracking.process_alive`) is stale as well."""
    now = time.time() if now is None else now
    best: dict[str, tracking.CellRunRecord] = {}
    for record in records:
        state = record.state(stale_after_s, now)
        current = best.get(record.cell_hash)
        if current is None or _PREFERENCE[state] < _PREFERENCE[current.state(stale_after_s, now)]:
            best[record.cell_hash] = record
    entries = []
    for cell in cells:
        record = best.get(cell.cell_hash)
        if record is None:
            entries.append(LedgerEntry(cell, MISSING, None, gflops[cell.model.key]))
            continue
        state, reason = _judge(record, stale_after_s, now, driver_gone)
        entries.append(LedgerEntry(cell, state, record, gflops[cell.model.key], reason))
    return entries


def _judge(record: tracking.CellRunRecord, stale_after_s: float, now: float,
           driver_gone: bool) -> tuple[str, str]:
    """(state, reason) of one cell's run; the reason is set for running and stale cells."""
    state = record.state(stale_after_s, now)
    age = now - record.last_sign_of_life
    owner = record.owner or "unrecorded"
    if state == STALE:
        return STALE, (f"silent for {age:.0f} s (over --stale-after {stale_after_s:.0f} s), "
                       f"owner {owner}")
    if state != RUNNING:
        return state, ""
    if driver_gone:
        return STALE, f"the sweep driver that launched it is gone (owner {owner})"
    alive = tracking.process_alive(record.owner) if record.owner else None
    if alive is False:
        return STALE, f"its owner {owner} is gone from this host's process table"
    where = "alive on this host" if alive else "not checkable from this host"
    due = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.last_sign_of_life
                                                            + stale_after_s))
    return RUNNING, (f"owner {owner} ({where}), last heartbeat {age:.0f} s ago; relaunched if "
                     f"still silent at {due} (--stale-after {stale_after_s:.0f} s)")


def explain(entries: Sequence[LedgerEntry]) -> list[str]:
    """One line per running cell a sweep skips and per stale cell it relaunches, saying why."""
    verbs = {RUNNING: "skipping", STALE: "relaunching"}
    return [f"{verbs[e.state]} {e.cell.cell_hash} ({e.cell.run_name}): {e.reason}"
            for e in sorted(entries, key=lambda e: e.cell.cell_hash)
            if e.state in verbs and e.reason]


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
    for state in (FINISHED, STOPPED, RUNNING, STALE, FAILED, MISSING):
        group = [e for e in entries if e.state == state]
        if group:
            lines.append(f"{state:<10}{len(group):>4} cells  {sum(e.compute for e in group):>12.4g}"
                         f" GFLOPs  {sum(e.accelerator_hours for e in group):>8.3f} acc-h")
    total = sum(e.compute for e in entries)
    done = sum(e.compute for e in entries if e.state in DONE)
    lines.append(f"{'total':<10}{len(entries):>4} cells  {total:>12.4g} GFLOPs  "
                 f"({done / total:.0%} of compute finished)" if total else "total 0 cells")
    return "\n".join(lines + explain(entries))


def describe_cell(entry: LedgerEntry) -> str:
    return (f"{entry.cell.run_name} [{entry.cell.procedure}] "
            f"{format_count(entry.compute)} GFLOPs")

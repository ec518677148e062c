"""Run a grid on Ray Tune: one trial per cell, resumable from MLflow, ending with a report.

Before launching, the ledger (`ledger.py`) reads the sweep's MLflow runs; only missing, failed
and stale cells are launched, cheapest first. A single-worker cell trains inside its Tune trial's
process (no Train worker group to start); an elastic or multi-worker cell drives a `TorchTrainer`
from its trial (the Ray Train V2 + Tune pattern). The driver keeps a heartbeat on the sweep's
parent run (`lock.DriverLock`), so a re-started driver knows that cells marked running died with
its predecessor.
"""

from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlscale import settings, tracking
from vlscale.errors import UserError
from vlscale.platform.config import Cell, GridSpec, cell_from_dict
from vlscale.platform.sweep import cells_status, ledger
from vlscale.platform.sweep.lock import DriverLock
from vlscale.platform.sweep.progress import SweepProgress
from vlscale.platform.sweep.tuning import SEARCHES, TuningSpec

SweepSpec = GridSpec | TuningSpec
"""What a sweep runs: a scaling-law grid or a per-size tuning search (both give cells, a name,
the parent run's params, and say which report ends them)."""


@dataclass
class SweepOptions:
    tracking_uri: str | None = None
    address: str | None = None
    max_concurrent: int = 0
    """Trials at once (0: as many as leave one CPU for Ray Data's decoding)."""
    refit_every: int = 0
    """Refit and re-log the report after every N finished cells (0: only at the end)."""
    stale_after_s: float = tracking.STALE_AFTER_S
    storage_path: str | None = None
    report: bool = True
    report_dir: str | None = None


@dataclass
class SweepOutcome:
    entries: list[ledger.LedgerEntry]
    launched: int
    report_path: Path | None = None
    verdicts: list[str] = field(default_factory=list)


TUNE_LOGGERS_ENV = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"
"""Ray Tune's public switch for its default result loggers (CSV, JSON, TensorBoard); the sweep
adds the JSON one back itself."""


def architecture_gflops(cells: list[Cell]) -> dict[str, float]:
    from vlscale.platform.models import model_profile

    return {c.model.key:
            model_profile(c.model.model_type, c.model.arch).gflops for c in cells}


def validate_grid(grid: SweepSpec, check_data: bool = True) -> list[Cell]:
    """Every cell valid, known and runnable (data present), before anything is launched."""
    from vlscale.platform.models import list_architectures
    from vlscale.platform.train.runner import check_cell

    cells = grid.validate(set(list_architectures()))
    for cell in cells:
        check_cell(cell, check_data=check_data)
    return cells


def read_ledger(grid: SweepSpec, cells: list[Cell], options: SweepOptions,
                driver_gone: bool = False) -> list[ledger.LedgerEntry]:
    records = tracking.list_cell_runs(settings.tracking_uri(options.tracking_uri), grid.name)
    return ledger.classify(cells, records, architecture_gflops(cells),
                           stale_after_s=options.stale_after_s, driver_gone=driver_gone)


def validate_and_open_store(grid: SweepSpec, tracking_uri: str) -> list[Cell]:
    """The grid's cells (`validate_grid`), then the tracking store opened (`tracking.connect`),
    then Ray Tune imported: the part of a sweep's start that runs while Ray starts (see
    `run_sweep`)."""
    cells = validate_grid(grid)
    tracking.connect(tracking_uri)
    import ray.tune  # noqa: F401  (~1.5 s of imports that would otherwise follow Ray's start)

    return cells


def run_sweep(grid: SweepSpec, options: SweepOptions) -> SweepOutcome:
    from vlscale.platform.cluster import (
        check_shared_state,
        cluster_address,
        cluster_cpus,
        ensure_ray,
    )

    uri = settings.tracking_uri(options.tracking_uri)
    # Ray's start (its processes boot while this one mostly waits) overlaps the driver's own
    # set-up, which needs no Ray: validating the grid (torch/open_clip imports, shard checks)
    # and opening the tracking store (a new SQLite store creates and migrates its schema here,
    # once per sweep; every later call of this process reuses MLflow's cached store). On an
    # existing cluster the store is opened only once `check_shared_state` has passed, so a
    # multi-node run refused for node-local state writes nothing; an embedded Ray is one node.
    embedded = cluster_address(options.address) is None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vlscale-sweep-setup") as pool:
        setup = (pool.submit(validate_and_open_store, grid, uri) if embedded
                 else pool.submit(validate_grid, grid))
        try:
            ensure_ray(options.address)
        except BaseException:
            if setup.exception() is not None:  # the grid's or store's error first, as before
                setup.result()
            raise
        cells = setup.result()
    check_shared_state(tracking_uri=options.tracking_uri, storage_path=options.storage_path)
    if not embedded:
        tracking.connect(uri)
    from vlscale.platform.train.runner import check_cluster_fits

    for cell in cells:  # refuse resources the cluster lacks instead of waiting forever
        check_cluster_fits(cell)
    sweep = tracking.start_sweep_parent(uri, grid.name, params=grid.sweep_params(cells),
                                        tags=report_tags(grid), kind=grid.kind)
    with DriverLock(sweep) as lock:
        sweep.log_grid(tracking.grid_manifest(cells, architecture_gflops(cells)))
        entries = read_ledger(grid, cells, options, driver_gone=bool(lock.previous))
        print(ledger.format_ledger(entries), flush=True)
        launch = ledger.to_launch(entries)
        progress = SweepProgress(entries, launch)
        if launch:
            _run_tune(grid, launch, sweep, options, cluster_cpus(), progress)
        entries = read_ledger(grid, cells, options)
        outcome = SweepOutcome(entries, launched=len(launch))
        print(ledger.format_ledger(entries), flush=True)
        if options.report and (result := _report(grid, sweep, options)) is not None:
            outcome.report_path, outcome.verdicts = result
        complete = all(e.state in ledger.DONE for e in entries)
        sweep.finish(tracking.CellState.FINISHED if complete else tracking.CellState.FAILED)
        return outcome


def trial_resources(cell: Cell) -> dict[str, float]:
    """In-process cells reserve their worker's resources; Train-driving trials a sliver (their
    workers reserve their own; a zero request is refused by Tune)."""
    if runs_in_process(cell):
        return cell.resources.per_worker()
    return {"CPU": 0.01}


def runs_in_process(cell: Cell) -> bool:
    return cell.resources.max_workers == 1


def default_concurrency(cells: list[Cell], cpus: float) -> int:
    """As many trials as leave one CPU free for the decode tasks (`data.stream`), which run
    outside the trials' placement groups."""
    per_trial = max(c.resources.max_workers * c.resources.cpus_per_worker + 0.01 for c in cells)
    return max(1, int((cpus - 1) // per_trial)) if cpus > 1 else 1


def cell_trial(config: dict[str, Any]) -> None:
    """The Tune trainable of one cell (module level, so Ray workers can import it)."""
    from vlscale.platform.train.loop import train_cell
    from vlscale.platform.train.runner import TrackingTarget, build_trainer, raise_reported_user_error
    from vlscale.platform.train.session import TuneTrialSession

    cell = cell_from_dict(config["cell"])
    if runs_in_process(cell):
        session = TuneTrialSession(use_gpu=bool(cell.resources.gpus_per_worker),
                                   resume_from=config.get("resume_from"))
        # A retried trial (its node was lost) resumes from the newest complete checkpoint on
        # storage, which Tune's restored one may lag (loop.furthest_checkpoint).
        train_cell(config | {"checkpoint_storage": config["storage_path"]}, session)
        return
    from ray.tune.integration.ray_train import TuneReportCallback

    trainer = build_trainer(cell, TrackingTarget(**config["tracking"]),
                            storage_path=config["storage_path"],
                            callbacks=[TuneReportCallback()])
    raise_reported_user_error(trainer.fit())  # a worker's setup UserError fails the trial


def latest_checkpoint(storage: str | Path, cell: Cell) -> str | None:
    """The newest complete checkpoint an earlier driver's trial of this cell left on this storage
    (a local folder or a URI; `checkpointing.newest_complete_checkpoint`: one being written when
    its writer died is skipped, so a resume never loads torn weights)."""
    from vlscale.platform import storage as locations
    from vlscale.platform.train.checkpointing import newest_complete_checkpoint

    found = newest_complete_checkpoint(
        locations.cell_checkpoints(str(storage), cell.cell_hash, nested=True))
    return str(found[0]) if found is not None and found[1] > 0 else None


def _run_tune(grid: SweepSpec, launch: list[ledger.LedgerEntry], sweep: tracking.SweepRun,
              options: SweepOptions, cpus: float, progress: SweepProgress) -> None:
    from ray import tune

    from vlscale.platform import storage as locations

    storage = locations.resolve(options.storage_path)  # a local folder or a URI (s3://...)
    locations.ensure_dir(storage)
    cells = [entry.cell for entry in launch]
    target = {"uri": sweep.tracking_uri, "sweep": dataclasses.asdict(sweep), "experiment": None}
    configs = [{"cell": c.config_dict(), "cell_hash": c.cell_hash, "tracking": target,
                "storage_path": str(storage), "resume_from": latest_checkpoint(storage, c),
                "log_every_steps": 10}
               for c in cells]
    by_hash = {c.cell_hash: c for c in cells}
    trainable = tune.with_resources(
        _unwrap_trial, lambda config: trial_resources(by_hash[config["trial"]["cell_hash"]]))
    concurrency = options.max_concurrent or default_concurrency(cells, cpus)
    progress.refit = (lambda: _refit(grid, sweep, options)) if options.refit_every else None
    progress.refit_every = options.refit_every
    scheduler = (SEARCHES.get(grid.search).scheduler(grid) if isinstance(grid, TuningSpec)
                 else None)
    # Tune's own CSV and TensorBoard result files duplicate what MLflow records, and cost the
    # driver a tensorboardX import and writes at every report: off unless the user set it. The
    # JSON one (a line per report) stays: Tune's result grid reads it at the end of `fit` and
    # warns, one line per trial, when no trial has it.
    os.environ.setdefault(TUNE_LOGGERS_ENV, "1")
    from ray.tune.logger import JsonLoggerCallback
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(configs)},
        tune_config=tune.TuneConfig(
            # A stopped trial's training thread runs on until its next report, so its actor
            # cannot be reset for another trial (Tune then stalls): fresh actors under a scheduler.
            max_concurrent_trials=concurrency, reuse_actors=scheduler is None,
            scheduler=scheduler,
            trial_name_creator=lambda trial: f"cell-{trial.config['trial']['cell_hash']}",
            trial_dirname_creator=lambda trial: f"cell-{trial.config['trial']['cell_hash']}"),
        run_config=tune.RunConfig(
            name=f"sweep-{grid.name}-{int(time.time())}", storage_path=str(storage),
            failure_config=tune.FailureConfig(max_failures=max(
                c.resources.max_failures for c in cells)),
            callbacks=[progress, cells_status.CellsStatusCallback(sweep, progress.total_cells),
                       JsonLoggerCallback()],
            verbose=0),
    )
    results = tuner.fit()
    if scheduler is not None:
        _mark_stopped(results, sweep)


def _mark_stopped(results, sweep: tracking.SweepRun) -> None:
    """Mark the runs of trials the scheduler stopped early `stopped`: such a trial ended without
    an error and without its final report, and its process may have been torn down before it
    could mark its run itself (a running run would be relaunched by the next sweep)."""
    for result in results:
        if result.error is not None or (result.metrics or {}).get("final"):
            continue
        samples = (result.metrics or {}).get("samples_seen", 0)
        reason = f"stopped early by the tuning search at {samples} samples seen"
        if tracking.mark_cell_stopped(sweep.tracking_uri, sweep.sweep_id,
                                      result.config["trial"]["cell_hash"], reason):
            print(f"stopped   {result.config['trial']['cell_hash']}: {reason}", flush=True)


def _unwrap_trial(config: dict[str, Any]) -> None:
    """Tune passes the grid point as config["trial"]."""
    cell_trial(config["trial"])


def _print_line(text: str) -> None:
    print(text, flush=True)


def _refit(grid: SweepSpec, sweep: tracking.SweepRun, options: SweepOptions) -> None:
    _report(grid, sweep, options, quiet=True)


def report_tags(grid: SweepSpec) -> dict[str, str]:
    """The report task, metric and frontier the job declared, as parent-run tags, so that a
    notebook or `vlscale report` on the sweep compares what the sweep's own report compares
    (`vlscale.analysis.declared_report` reads them); "" where the job left the default."""
    if isinstance(grid, TuningSpec):
        task, metric, frontier = grid.task, grid.metric, ""
    else:
        task, metric, frontier = grid.report_task, grid.report_metric, grid.report_frontier
    return {tracking.TAG_REPORT_TASK: task, tracking.TAG_REPORT_METRIC: metric,
            tracking.TAG_REPORT_FRONTIER: frontier}


def _report(grid: SweepSpec, sweep: tracking.SweepRun, options: SweepOptions,
            quiet: bool = False) -> tuple[Path, list] | None:
    """Fit, validate and compare from MLflow; write the report and log it on the parent run.
    Returns the report's HTML path and verdicts, or None when the runs cannot support a report (said why).
    A tuning sweep's report is the tuning report instead (best settings, optimum laws)."""
    from vlscale.analysis import load_results, write_report, write_tuning_report

    out = Path(options.report_dir or settings.state_dir() / "reports" / grid.name)
    if isinstance(grid, TuningSpec):
        try:
            tuning = write_tuning_report(
                load_results(sweep.tracking_uri, sweep.sweep_id, refresh=True), out,
                task=grid.task, metric=grid.metric, space=grid.space.as_dict(),
                sweep_id=grid.name)
        except UserError as error:
            print(f"report: not written: {error}", flush=True)
            return None
        sweep.log_artifact(tuning.json, tracking.ARTIFACT_TUNING_DIR)
        sweep.log_artifact(out, tracking.ARTIFACT_REPORT_DIR)
        for warning in tuning.warnings:
            print(f"warning: {warning}", flush=True)
        print(f"report: {tuning.html}", flush=True)
        return tuning.html, []
    try:
        result = write_report(None, out, sweep=sweep, tracking_uri=sweep.tracking_uri,
                              task=grid.report_task or None,
                              metric=grid.report_metric or None,
                              frontier=grid.report_frontier,
                              progress=None if quiet else _print_line)
    except UserError as error:
        print(f"report: not written: {error}", flush=True)
        return None
    if not quiet:
        for verdict in result.verdicts:
            print(f"verdict: {verdict}", flush=True)
        print(f"report: {result.html}", flush=True)
    return result.html, list(result.verdicts)

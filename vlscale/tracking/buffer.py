"""A background sender that batches one run's metrics and tags and survives tracking outages.

Why not `MlflowClient.log_metric` from the training loop: a synchronous call costs ~54 ms (a
batch of 100 ~68 ms), and while the tracking server is unreachable every call blocks for the
client's retry budget (~4 minutes with MLflow's defaults) and then raises. The buffer turns
logging into an in-memory append (microseconds); a daemon thread sends `log_batch` calls of at most
`MAX_METRICS_PER_CALL` metrics every `flush_interval_s` seconds or `flush_max_metrics` metrics.
On a transient failure (connection refused, timeout, 5xx) it keeps the batch and retries with
capped exponential backoff; entries leave the buffer only after the store accepted them.

Re-sending a batch whose response was lost is harmless: the store drops a metric identical in
(key, value, timestamp, step) to one it holds, and the timestamp is fixed when the metric is
buffered. Tags are last-value-wins and sent along with the metrics.

What `close()` cannot send before its deadline is written to `spill_path` (JSON lines); a later
buffer for the same run with the same `spill_path` loads and re-sends it first.

This module knows no vlscale names; `vlscale.tracking.runs` owns those.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag
from mlflow.exceptions import MlflowException

_logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_METRICS_PER_CALL = 1000
"""MLflow accepts at most 1000 metrics, and 1000 metrics + params + tags, per `log_batch`
request; each send stays within both so that it is exactly one request."""
MAX_TAGS_PER_CALL = 100
"""MLflow accepts at most 100 params + tags per `log_batch` request."""

_PROGRAMMING_ERRORS = (TypeError, ValueError, AttributeError, KeyError, NotImplementedError)


def is_transient(error: BaseException) -> bool:
    """True for failures worth retrying: unreachable server, timeouts, 5xx, 429, locked database.

    A 4xx answer (invalid value, deleted or unknown run, permission) or a programming error
    (e.g. a value JSON cannot encode) fails the same way on every retry, so it is permanent.
    Unknown errors count as transient: artifact stores (S3, GCS) raise their own network errors.
    """
    if isinstance(error, MlflowException):
        status = error.get_http_status_code()
        return status >= 500 or status in (408, 429)
    return not isinstance(error, _PROGRAMMING_ERRORS)


def backoff_delay(failures: int, base_s: float, cap_s: float) -> float:
    """Exponential backoff: base, 2 x base, 4 x base, ... capped at `cap_s`."""
    return min(cap_s, base_s * 2 ** max(0, failures - 1))


def call_with_retry(call: Callable[[], T], deadline_s: float, what: str,
                    base_s: float = 0.5, cap_s: float = 10.0) -> tuple[bool, T | None]:
    """Run `call`, retrying transient failures until `deadline_s` seconds have passed.

    Returns (succeeded, result) and never raises: it serves uploads and status changes that must
    not kill training when the server is briefly down. A permanent error is logged and ends it.
    """
    deadline = time.monotonic() + deadline_s
    for attempt in itertools.count(1):
        try:
            return True, call()
        except Exception as error:  # noqa: BLE001 - logging must never kill training
            delay = backoff_delay(attempt, base_s, cap_s)
            if not is_transient(error) or time.monotonic() + delay > deadline:
                _logger.warning("MLflow: giving up on %s after %d attempt(s): %s",
                                what, attempt, error)
                return False, None
            time.sleep(delay)
    raise AssertionError("unreachable")


class MetricBuffer:
    """Buffers metrics and tags for one MLflow run and sends them from a daemon thread."""

    def __init__(self, client: MlflowClient, run_id: str, *, flush_interval_s: float = 10.0,
                 flush_max_metrics: int = 500, backoff_base_s: float = 1.0,
                 backoff_cap_s: float = 60.0, spill_path: Path | None = None) -> None:
        self.client = client
        self.run_id = run_id
        self.flush_interval_s = flush_interval_s
        self.flush_max_metrics = min(flush_max_metrics, MAX_METRICS_PER_CALL)
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.spill_path = spill_path
        self.sent_metrics = 0
        self.dropped_metrics = 0
        self.consecutive_failures = 0
        self.last_error: BaseException | None = None
        self._metrics: deque[Metric] = deque()
        self._tags: dict[str, str] = {}
        self._cond = threading.Condition()
        self._flush_requested = False
        self._stop_deadline: float | None = None
        self._retry_at = 0.0
        self._load_spill()
        self._thread = threading.Thread(target=self._run, name=f"mlflow-buffer-{run_id[:8]}",
                                        daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Metrics buffered but not yet accepted by the store."""
        with self._cond:
            return len(self._metrics)

    def add_metrics(self, metrics: Mapping[str, float], step: int,
                    timestamp_ms: int | None = None) -> None:
        """Buffer metrics at `step`. Only appends under a lock: never blocks on the network."""
        timestamp_ms = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        entries = [Metric(key, float(value), timestamp_ms, int(step))
                   for key, value in metrics.items()]
        with self._cond:
            if self._stop_deadline is not None:
                _logger.warning("MLflow: metrics logged after close of run %s are ignored",
                                self.run_id)
                return
            self._metrics.extend(entries)
            if len(self._metrics) >= self.flush_max_metrics:
                self._cond.notify_all()

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Buffer tags; a later value for the same key replaces an unsent earlier one."""
        with self._cond:
            self._tags.update({key: str(value) for key, value in tags.items()})

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Ask for an immediate send and wait until the buffer is empty (True) or timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._flush_requested = True
            self._retry_at = 0.0
            self._cond.notify_all()
            while self._metrics or self._tags:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.5))
            return True

    def close(self, timeout_s: float = 120.0) -> int:
        """Send what is left, retrying until `timeout_s`; spill the rest. Returns metrics unsent."""
        with self._cond:
            self._stop_deadline = time.monotonic() + timeout_s
            self._retry_at = 0.0
            self._cond.notify_all()
        self._thread.join(timeout_s + 5.0)
        with self._cond:
            unsent_metrics, unsent_tags = list(self._metrics), dict(self._tags)
            self._metrics.clear()
            self._tags.clear()
        if unsent_metrics or unsent_tags:
            self._spill(unsent_metrics, unsent_tags)
        return len(unsent_metrics)

    def _run(self) -> None:
        last_send = 0.0
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    has_data = bool(self._metrics or self._tags)
                    deadline = self._stop_deadline
                    stopping = deadline is not None
                    if deadline is not None and (now >= deadline or not has_data):
                        return
                    if not has_data:
                        self._flush_requested = False
                    urgent = (stopping or self._flush_requested
                              or len(self._metrics) >= self.flush_max_metrics)
                    send_at = max(self._retry_at,
                                  now if urgent else last_send + self.flush_interval_s)
                    if has_data and now >= send_at:
                        break
                    wake_at = send_at if has_data else now + self.flush_interval_s
                    if deadline is not None:
                        wake_at = min(wake_at, deadline)
                    self._cond.wait(max(0.01, wake_at - now))
                tags = dict(itertools.islice(self._tags.items(), MAX_TAGS_PER_CALL))
                metrics = list(itertools.islice(self._metrics, MAX_METRICS_PER_CALL - len(tags)))
            last_send = time.monotonic()
            self._send(metrics, tags)

    def _send(self, metrics: list[Metric], tags: dict[str, str]) -> None:
        try:
            self.client.log_batch(self.run_id, metrics=metrics,
                                  tags=[RunTag(k, v) for k, v in tags.items()], synchronous=True)
        except Exception as error:  # noqa: BLE001 - the training loop must not see it
            self.last_error = error
            if is_transient(error):
                self.consecutive_failures += 1
                delay = backoff_delay(self.consecutive_failures, self.backoff_base_s,
                                      self.backoff_cap_s)
                if self.consecutive_failures == 1:
                    _logger.warning("MLflow unreachable for run %s (%s); buffering, retrying "
                                    "every <= %.0f s", self.run_id, error, self.backoff_cap_s)
                with self._cond:
                    self._retry_at = time.monotonic() + delay
                return
            _logger.error("MLflow rejected %d metric(s) and %d tag(s) of run %s, dropping "
                          "them: %s", len(metrics), len(tags), self.run_id, error)
            self.dropped_metrics += len(metrics)
        else:
            if self.consecutive_failures:
                _logger.warning("MLflow reachable again for run %s after %d failed attempt(s)",
                                self.run_id, self.consecutive_failures)
            self.consecutive_failures = 0
            self.sent_metrics += len(metrics)
        with self._cond:
            for metric in metrics:  # close() may have taken them already
                if self._metrics and self._metrics[0] is metric:
                    self._metrics.popleft()
            for key, value in tags.items():
                if self._tags.get(key) == value:
                    del self._tags[key]
            if not (self._metrics or self._tags):
                self._flush_requested = False
            self._cond.notify_all()

    def _spill(self, metrics: list[Metric], tags: dict[str, str]) -> None:
        if self.spill_path is None:
            _logger.error("MLflow: %d metric(s) of run %s could not be sent and are lost",
                          len(metrics), self.run_id)
            return
        self.spill_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spill_path.open("a") as spill:
            for m in metrics:
                spill.write(json.dumps({"key": m.key, "value": m.value,
                                        "timestamp": m.timestamp, "step": m.step}) + "\n")
            if tags:
                spill.write(json.dumps({"tags": tags}) + "\n")
        _logger.error("MLflow unreachable at close: %d metric(s) of run %s written to %s; they "
                      "are re-sent when this run is opened again", len(metrics), self.run_id,
                      self.spill_path)

    def _load_spill(self) -> None:
        if self.spill_path is None or not self.spill_path.is_file():
            return
        for line in self.spill_path.read_text().splitlines():
            entry: dict[str, Any] = json.loads(line)
            if "tags" in entry:
                self._tags.update(entry["tags"])
            else:
                self._metrics.append(Metric(entry["key"], entry["value"], entry["timestamp"],
                                            entry["step"]))
        _logger.warning("MLflow: re-sending %d spilled metric(s) of run %s from %s",
                        len(self._metrics), self.run_id, self.spill_path)
        self.spill_path.unlink()

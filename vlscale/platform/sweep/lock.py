"""One live driver per sweep: the driver lock kept on the sweep's parent run.

A driver records itself (`TAG_DRIVER` = host:pid:start) and refreshes the parent's heartbeat
every `HEARTBEAT_EVERY_S`. A second driver refuses to start while the first is alive: on the same
host the process table says so exactly, elsewhere a heartbeat younger than `DRIVER_FRESH_S` does.
A driver that finds a dead predecessor knows the cells that one left running died with it.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from vlscale import tracking
from vlscale.errors import UserError

DRIVER_FRESH_S = 60.0
"""A driver whose heartbeat is younger than this is alive: a second driver refuses to start."""
HEARTBEAT_EVERY_S = 10.0


def driver_alive(driver: str, heartbeat: float | None) -> bool:
    """Is the driver recorded on the parent run still running? On this host the process table
    says so exactly (pid and start time); elsewhere a fresh heartbeat does."""
    alive = tracking.process_alive(driver)
    if alive is not None:
        return alive
    return bool(heartbeat) and time.time() - heartbeat < DRIVER_FRESH_S


class DriverLock:
    """`with DriverLock(sweep) as lock:` holds the sweep for this process and keeps its heartbeat.

    Entering raises UserError when another live driver holds the sweep; `lock.previous` is the
    driver recorded before (a dead one, or "" after a clean exit). Leaving stops the heartbeat
    and clears `TAG_DRIVER`. If the body raised, that error is what propagates: a failure to
    release is added to it as a note instead of replacing it.
    """

    def __init__(self, sweep: tracking.SweepRun, driver: str | None = None,
                 heartbeat_every_s: float = HEARTBEAT_EVERY_S) -> None:
        self.sweep = sweep
        self.driver = driver or tracking.process_identity()
        self.previous: str = ""
        self._every_s = heartbeat_every_s
        self._stop = threading.Event()
        self._beater: threading.Thread | None = None

    def __enter__(self) -> DriverLock:
        previous, beat = self.sweep.driver_state()
        if previous and previous != self.driver and driver_alive(previous, beat):
            raise UserError(f"sweep {self.sweep.sweep_id!r} is being run by another driver "
                            f"({previous}, alive {time.time() - (beat or 0.0):.0f} s ago); stop "
                            "it or wait for it")
        self.previous = previous or ""
        self.sweep.beat(self.driver)
        self._beater = threading.Thread(target=self._keep_beating, daemon=True,
                                        name="sweep-heartbeat")
        self._beater.start()
        return self

    def _keep_beating(self) -> None:
        while not self._stop.wait(self._every_s):
            self.sweep.beat(self.driver)

    def release(self) -> None:
        """Stop the heartbeat and clear `TAG_DRIVER` (a clean exit: no driver owns the sweep)."""
        self._stop.set()
        if self._beater is not None:
            self._beater.join(timeout=5)
        self.sweep.set_tags({tracking.TAG_DRIVER: ""})

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if exc is None:
            self.release()
            return
        try:
            self.release()
        except Exception as error:  # noqa: BLE001 - the body's error matters more; keep both
            exc.add_note(f"while handling it, releasing the driver lock of sweep "
                         f"{self.sweep.sweep_id!r} failed too: {type(error).__name__}: {error}")

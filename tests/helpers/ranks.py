"""Consuming several ranks' batch iterators at once, one thread per rank, as separate workers
would (a rank's iterator blocks on the shared coordinator until the others have asked)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any


def run_ranks(workers: Sequence[Any], consume: Callable[[int, Any], None]) -> None:
    """Call `consume(rank, worker)` for every worker in its own thread; the first error any
    thread raised is re-raised here, after all have ended."""
    errors: list[BaseException] = []

    def run(rank: int) -> None:
        try:
            consume(rank, workers[rank])
        except BaseException as error:  # re-raised in the calling thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]

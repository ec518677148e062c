"""Connect to the Ray cluster: the one named by `--address`/`$RAY_ADDRESS` (e.g. inside `ray job
submit`), else an embedded single-node cluster sized for this machine."""

from __future__ import annotations

import logging
import os

from vlscale.errors import UserError

log = logging.getLogger(__name__)


def ensure_ray(address: str | None = None) -> None:
    """Initialise Ray once per process; a later call is a no-op."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    # A local ray.init() writes ~/.ray/auth_token and a later `ray start` then turns token auth
    # on silently; be explicit so local and submitted runs behave the same.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Workers have no .git: hand them the driver's code version to log with every cell.
    from vlscale.tracking.store import CODE_VERSION_ENV, code_version

    if CODE_VERSION_ENV not in os.environ and (version := code_version()):
        os.environ[CODE_VERSION_ENV] = version
    if address:
        try:
            ray.init(address=address, log_to_driver=True)
        except ConnectionError as error:
            raise UserError(f"cannot reach the Ray cluster at {address} ({error}); check the "
                            "address or unset RAY_ADDRESS to run on an embedded cluster") from None
        return
    from vlscale.platform.data import ray_init_kwargs

    kwargs = ray_init_kwargs()
    log.info("starting an embedded Ray cluster (%d CPUs)", kwargs["num_cpus"])
    ray.init(address="local", include_dashboard=False, log_to_driver=True, **kwargs)


def cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 0.0))

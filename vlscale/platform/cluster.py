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


def describe_shortfall(per_worker: dict[str, float], workers: int) -> str | None:
    """What a group of `workers` workers needing `per_worker` each lacks on this cluster, as
    "asks for ... but the cluster has ..." (None when it fits). A worker must fit on one node,
    so the per-node maximum counts too. Uses `ray.cluster_resources()` and `ray.nodes()`."""
    import ray

    total = ray.cluster_resources()
    biggest: dict[str, float] = {}
    for node in ray.nodes():
        if node.get("Alive"):
            for name, amount in node.get("Resources", {}).items():
                biggest[name] = max(biggest.get(name, 0.0), float(amount))
    asked = " + ".join(f"{amount:g} {name}" for name, amount in per_worker.items() if amount)
    has = ", ".join(f"{float(total.get(name, 0.0)):g} {name}" for name in per_worker)
    for name, amount in per_worker.items():
        if amount and (float(total.get(name, 0.0)) < amount * workers
                       or biggest.get(name, 0.0) < amount):
            return (f"asks for {workers} worker(s) x {asked} but the cluster has {has} "
                    f"(largest node: {biggest.get(name, 0.0):g} {name})")
    return None

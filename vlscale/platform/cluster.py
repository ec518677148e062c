"""Connect to the Ray cluster: the one named by `--address`/`$RAY_ADDRESS` (e.g. inside `ray job
submit`), else an embedded single-node cluster sized for this machine."""

from __future__ import annotations

import logging
import os

from vlscale.errors import UserError

log = logging.getLogger(__name__)


def cluster_address(address: str | None = None) -> str | None:
    """The cluster to connect to: `address`, else `$RAY_ADDRESS` (set inside `ray job submit`);
    None means an embedded single-node cluster."""
    return address or os.environ.get("RAY_ADDRESS") or None


def ensure_ray(address: str | None = None) -> None:
    """Initialise Ray once per process; a later call is a no-op."""
    import ray

    if ray.is_initialized():
        return
    address = cluster_address(address)
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


def alive_nodes() -> int:
    """How many nodes of the connected Ray cluster are alive (`ray.nodes()`)."""
    import ray

    return sum(1 for node in ray.nodes() if node.get("Alive"))


def check_shared_state(*, tracking_uri: str | None, storage_path: str | None) -> None:
    """Refuse a multi-node run whose results would stay on one node.

    The defaults are node-local: the embedded SQLite store and the checkpoint folder live in
    the state directory of the machine that runs the driver, so a worker on another node would
    log and checkpoint into its own copy (or fail), and a restarted worker elsewhere could not
    find its checkpoint. On a cluster of more than one node both must be chosen explicitly
    (`tracking_uri`: the shared tracking server, e.g. `vlscale server`; `storage_path`: a
    folder every node mounts, or object storage); what the user names is trusted. `None` means
    "not given" (neither the option nor `$MLFLOW_TRACKING_URI` set)."""
    from vlscale import settings

    nodes = alive_nodes()
    if nodes <= 1:
        return
    missing = []
    if tracking_uri is None and not os.environ.get(settings.TRACKING_URI_ENV):
        missing.append(f"--tracking-uri (the MLflow store defaults to {settings.state_dir()}"
                       "/mlflow.db on this node; start the shared one with `vlscale server`)")
    if storage_path is None:
        missing.append(f"--storage-path (checkpoints default to {settings.state_dir()}"
                       "/ray_results on each node; give a folder every node mounts)")
    if missing:
        raise UserError(f"this Ray cluster has {nodes} nodes but the run's state would stay on "
                        f"one of them: set {' and '.join(missing)}")

"""Shared fixtures: one local Ray cluster per test session, the anchors folder, GPU skipping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ANCHORS_DIR = Path(__file__).resolve().parents[2] / "shared" / "anchors"
# Ray token auth turns itself on after a local ray.init() wrote ~/.ray/auth_token; be explicit.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
# Two cores shared by the test process, Ray workers and data tasks: one math thread each.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def anchors_dir() -> Path:
    """The published scaling-law tables (../shared/anchors); tests skip when it is absent."""
    if not ANCHORS_DIR.is_dir():
        pytest.skip(f"published anchor tables not found at {ANCHORS_DIR}")
    return ANCHORS_DIR


@pytest.fixture(scope="session")
def ray_cluster():
    """One embedded 2-CPU Ray cluster shared by every Ray test of the session."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False,
             object_store_memory=256 * 2**20, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path, monkeypatch):
    """Every test gets its own vlscale state directory (and so its own embedded MLflow store)."""
    monkeypatch.setenv("VLSCALE_HOME", str(tmp_path / "vlscale-home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def pytest_collection_modifyitems(config, items):
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)

"""A cell's training shards as an MLflow dataset input, so the UI's runs table ("Dataset" column)
and run page list what each cell trained on: name, digest and row count.

The digest is a hash of the shard set's description (`ShardSet.description`: its `dataset.json`
less long lists, location, shard and row counts), so two cells trained on the same shards share
one dataset entry and a rewritten shard set shows up as a new digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag

from vlscale.tracking.schema import DATASET_CONTEXT_TRAINING, TAG_DATASET_CONTEXT

SOURCE_TYPE = "vlscale_shards"
"""The dataset source type MLflow shows: parquet shards read by vlscale's pipeline."""


def dataset_digest(info: Mapping[str, Any]) -> str:
    """A short content digest of a shard set's description (stable across key order)."""
    canonical = json.dumps(dict(info), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def training_dataset_input(name: str, info: Mapping[str, Any]) -> DatasetInput:
    """The `DatasetInput` of training shards `name` described by `info` (`num_rows`,
    `location`, `num_shards`, ...), tagged with the "training" context."""
    profile = {key: info[key] for key in ("num_rows", "num_shards") if key in info}
    dataset = Dataset(name=name, digest=dataset_digest(info), source_type=SOURCE_TYPE,
                      source=json.dumps({"location": str(info.get("location", ""))}),
                      schema=json.dumps({"num_rows": info.get("num_rows")}),
                      profile=json.dumps(profile))
    return DatasetInput(dataset, tags=[InputTag(TAG_DATASET_CONTEXT, DATASET_CONTEXT_TRAINING)])


def log_training_dataset(client: MlflowClient, run_id: str, name: str,
                         info: Mapping[str, Any]) -> None:
    """Register the training shards as the run's dataset input (a run reopened by a retry
    logs the same entry again, which MLflow keeps once)."""
    client.log_inputs(run_id, datasets=[training_dataset_input(name, info)])

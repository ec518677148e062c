"""cluster.yaml cannot be launched here: check that Ray's own schema accepts it and that every
vlscale command and flag it names exists."""

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from vlscale.cli import build_parser

CLUSTER_YAML = Path(__file__).resolve().parents[1] / "cluster.yaml"


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_matches_ray_autoscaler_schema(cluster):
    import jsonschema
    import ray

    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(cluster, schema)


def test_head_on_cpu_and_gpu_workers_scale(cluster):
    types = cluster["available_node_types"]
    head = types[cluster["head_node_type"]]
    assert head["resources"].get("CPU") == 0, "training must stay off the head node"
    workers = [t for name, t in types.items() if name != cluster["head_node_type"]]
    assert workers and all(0 <= t["min_workers"] <= t["max_workers"] for t in workers)
    assert re.match(r"^(p|g)\d", workers[0]["node_config"]["InstanceType"]), "GPU instance type"


def test_setup_installs_the_project_and_starts_mlflow_on_postgres(cluster):
    setup = " ".join(cluster["setup_commands"])
    assert "pip install" in setup and "~/vlscale" in setup
    assert cluster["file_mounts"]["~/vlscale"] == "."
    head = " ".join(cluster["head_setup_commands"])
    assert "postgresql" in head and "--backend-store-uri postgresql://" in head
    assert "--artifacts-destination s3://" in head


def test_every_vlscale_command_named_exists(cluster):
    parser = build_parser()
    commands = [c for key in ("setup_commands", "head_setup_commands", "worker_setup_commands")
                for c in cluster.get(key, []) if "bin/vlscale " in c]
    assert commands, "cluster.yaml should start the tracking server with `vlscale server`"
    for command in commands:
        words = shlex.split(command.split("bin/vlscale ", 1)[1].split(">", 1)[0])
        parser.parse_args(words)  # raises SystemExit on an unknown command or flag


def test_the_server_uri_resolves_to_an_installed_driver(cluster):
    """SQLAlchemy picks the driver from the URI's scheme (2.1: psycopg 3 for postgresql://); the
    driver must come with vlscale, not from a pip line in cluster.yaml that can name another."""
    import tomllib

    from sqlalchemy.engine import make_url

    head = " ".join(cluster["head_setup_commands"])
    uri = re.search(r"--backend-store-uri (\S+)", head).group(1)
    make_url(uri).get_dialect().import_dbapi()  # ModuleNotFoundError when the driver is absent
    pyproject = tomllib.loads((CLUSTER_YAML.parent / "pyproject.toml").read_text())
    requires = " ".join(pyproject["project"]["optional-dependencies"]["cluster"])
    assert "psycopg[binary]" in requires and "psycopg2" not in head
    setup = " ".join(cluster["setup_commands"])
    assert re.search(r"pip install .*vlscale\[cluster\]", setup), \
        "every node installs vlscale with its cluster extra"

"""`vlscale data import --address` on a real simulated 2-node Ray cluster
(`ray.cluster_utils.Cluster`, in its own process so that it does not collide with the session's
embedded Ray): the tasks run on both nodes and write what the one-process import writes; a
relative OUT is refused in one line, writing nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vlscale.testing.import_sources import write_webdataset_source

from helpers.cli import assert_one_line_error
from helpers.clusters import run_cli_on_cluster


@pytest.mark.slow
@pytest.mark.timeout(500)
def test_an_import_on_two_nodes(tmp_path):
    source = write_webdataset_source(tmp_path / "src", shards=4, rows_per_shard=10,
                                     image_size=16, bad_every=4)  # 4 tars: 4 tasks
    env = {**os.environ, "VLSCALE_HOME": str(tmp_path / "home"), "RAY_AUTH_MODE": "disabled"}
    argvs = [["data", "import", str(source), str(tmp_path / "cluster")],
             ["data", "import", str(source), "relative-out"]]
    imported, refused = run_cli_on_cluster(2, argvs, env, cwd=tmp_path, timeout_s=450)
    assert imported.returncode == 0, imported.stderr
    assert "30 rows in 4 shard(s)" in imported.stdout
    subprocess.run([sys.executable, "-m", "vlscale.cli", "data", "import", str(source),
                    str(tmp_path / "single"), "--workers", "1"], check=True, env=env,
                   capture_output=True)
    for name in ("00000.parquet", "00003.parquet"):
        assert (tmp_path / "cluster" / name).read_bytes() == \
            (tmp_path / "single" / name).read_bytes()
    assert_one_line_error(refused, "2 nodes", "relative-out", "absolute paths")
    assert not (tmp_path / "relative-out").exists()

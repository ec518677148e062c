"""A real local S3-compatible server for tests: moto in server mode on 127.0.0.1, as Ray's own
storage tests use, with one bucket and the environment pyarrow's S3FileSystem (and boto3) read.

pyarrow (the AWS SDK underneath) reads AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL for the endpoint,
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION for the rest; Ray workers started
by the test process (or a CLI subprocess) inherit them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.ports import free_port
from helpers.processes import stop_group

BUCKET = "vlscale-test"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str
    env: dict[str, str]

    def uri(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under `prefix`, read with boto3 (independently of the code under
        test, which goes through pyarrow)."""
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, **_credentials(self.env))
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                   Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def read(self, key: str) -> bytes:
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, **_credentials(self.env))
        return client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


def _credentials(env: dict[str, str]) -> dict[str, str]:
    return {"aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
            "region_name": env["AWS_DEFAULT_REGION"]}


def start_s3(log: Path, timeout_s: float = 30.0) -> tuple[subprocess.Popen, S3Server]:
    """Start `moto.server` on a free loopback port, wait until it answers, create the bucket."""
    if importlib.util.find_spec("moto") is None:
        pytest.skip("moto is not installed: pip install 'moto[server]' (the test extra)")
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                    "-p", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=2).close()
            break
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                stop_group(process)
                pytest.fail(f"moto server did not start:\n{log.read_text()}")
            time.sleep(0.2)
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL_S3": endpoint,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    boto3.client("s3", endpoint_url=endpoint, **_credentials(env)).create_bucket(Bucket=BUCKET)
    return process, S3Server(endpoint, BUCKET, env)


@contextlib.contextmanager
def serve_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """A moto S3 server with one empty bucket; its environment set for this process (and what it
    starts); stopped on exit. Tests wrap it in a fixture."""
    process, server = start_s3(tmp_path / "moto.log")
    for name, value in server.env.items():
        monkeypatch.setenv(name, value)
    try:
        yield server
    finally:
        stop_group(process)

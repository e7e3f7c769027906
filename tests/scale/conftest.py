"""Fixtures for the scale-out tests: a real S3 endpoint and a real PostgreSQL, on 127.0.0.1,
started and stopped by :mod:`scoreloop.scale_stack` (the same code as ``scoreloop demo --scale``).

- ``s3_server`` (session): ``moto_server`` in its own process.
- ``s3_state``: ``state`` plus a fresh bucket, with the one object-store block configured
  (``SCORELOOP_OBJECT_STORE``, ``SCORELOOP_S3_ENDPOINT_URL``) and test credentials in the
  environment, as a deployment would set them. ``AWS_ENDPOINT_URL`` is deliberately NOT set: the
  endpoint must reach every client through scoreloop's settings.
- ``pg_server`` (session): a throwaway PostgreSQL cluster; ``pg_url``: a fresh database on it.
- ``redis_server`` (session): Debian's ``redis-server`` on a loopback port (the Celery broker).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from support.servers import PostgresServer, S3Server, S3State, available

from scoreloop.scale_stack import RedisServer, postgres_cluster, redis_broker, s3_endpoint


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with available(), s3_endpoint() as server:
        yield server


@pytest.fixture
def s3_state(state: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3State:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "scoreloop-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "scoreloop-test-secret")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"scoreloop-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    store = f"s3://{bucket}/prod"
    monkeypatch.setenv("SCORELOOP_OBJECT_STORE", store)
    monkeypatch.setenv("SCORELOOP_S3_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("SCORELOOP_S3_REGION", "us-east-1")
    return S3State(state, s3_server.endpoint, bucket, store)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with available(), postgres_cluster() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    return pg_server.create_database(f"dagster_{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with available(), redis_broker() as server:
        yield server

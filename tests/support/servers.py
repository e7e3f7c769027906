"""The scale-out tests' servers: the one implementation in :mod:`scoreloop.scale_stack`.

The fixtures enter its context managers (moto's S3 and PostgreSQL on 127.0.0.1, stopped by PID
at the end) inside :func:`available`: a missing server binary
(:class:`~scoreloop.scale_stack.StackUnavailable`) becomes :func:`unavailable`, a skip with the
reason printed (``-ra``) on a developer machine, a failure under ``CI=true`` (`.ci/run`
installs them, so CI never skips).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from scoreloop.scale_stack import PostgresServer, S3Server, StackUnavailable


def unavailable(reason: str) -> None:
    """Skip (saying why) off CI; fail on CI, where `.ci/run` must have installed the server."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must install it: see `make scale-deps`)")
    pytest.skip(reason)


@contextmanager
def available() -> Iterator[None]:
    """Around a server's start: a missing binary becomes :func:`unavailable`."""
    try:
        yield
    except StackUnavailable as exc:
        unavailable(str(exc))


@dataclass(frozen=True)
class S3State:
    root: Path
    endpoint: str
    bucket: str
    store: str

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")


__all__ = ["PostgresServer", "S3Server", "S3State", "available", "unavailable"]

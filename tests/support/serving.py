"""Helpers for the serving tests: tiny real models, real scores frames, real server processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import polars as pl

from pipelines.model_bundle import load_bundle, save_bundle
from pipelines.score import score_frame
from pipelines.spec import DatasetSpec
from support.scoring import bundle_metadata, fit_model

TOKEN = "test-admin-token-0123456789abcdef"
SCORELOOP = Path(sys.executable).parent / "scoreloop"


def fit_bundle(
    rows: pl.DataFrame, spec: DatasetSpec, directory: Path, *, version: str, seed: int
) -> Path:
    """Fit a 30-iteration CatBoost model on ``rows`` and save it as a model bundle."""
    metadata = bundle_metadata(
        spec,
        version=version,
        data_version=f"data-{seed}",
        trained_at=datetime(2026, 1, seed, tzinfo=UTC),
        metrics={"roc_auc": 0.8 + seed / 100},
    )
    save_bundle(fit_model(rows, spec, seed=seed), metadata, directory)
    (directory / "card.md").write_text(f"# employment {version}\n\nA test model, seed {seed}.\n")
    return directory


def scores_frame(
    bundle_dir: Path, rows: pl.DataFrame, spec: DatasetSpec, *, batch_id: str = "2015-01"
) -> pl.DataFrame:
    """The scores-table rows batch scoring would write for ``rows`` (one per entity)."""
    scored = score_frame(load_bundle(bundle_dir), rows, spec, thread_count=2)
    return scored.with_columns(
        pl.lit(batch_id).alias("batch_id"),
        pl.lit(datetime(2026, 2, 1, tzinfo=UTC)).alias("scored_at"),
        pl.lit("md5-test").alias("data_version"),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    env_overrides: dict[str, str], port: int, *extra: str, log: Path
) -> subprocess.Popen[bytes]:
    """Start ``scoreloop serve`` on 127.0.0.1:port (caller terminates it by PID)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCORELOOP_")}
    env.update(env_overrides)
    handle = log.open("wb")
    return subprocess.Popen(
        [str(SCORELOOP), "serve", "--host", "127.0.0.1", "--port", str(port), *extra],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it was ready")
        try:
            if httpx.get(f"{base}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{base}/readyz not ready after {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

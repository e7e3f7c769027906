"""Smoke-test a built image: run it on a free loopback port and ask it what a user would.

Checks, in order: the container runs as a non-root uid; ``/readyz`` is ready with the mounted
snapshot; the image's HEALTHCHECK passes; ``/model`` reports the expected version; a known
entity's ``GET /scores/{id}`` and ``POST /predict`` (its feature record) both agree with the batch
score of that version. The container is removed afterwards, whatever happened.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from pipelines.ingest import VALIDATED
from pipelines.scores_table import SCORES
from pipelines.settings import Settings, get_settings
from pipelines.spec import load_spec
from pipelines.tables import read_table, table_uri
from scoreloop.release.build import MODEL_VERSION_LABEL
from scoreloop.release.engine import container_engine
from scoreloop.release.errors import ReleaseError
from scoreloop.release.service import start_service, wait_ready

#: Batch and on-demand scores come from the same model and features: they agree to float noise.
SCORE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SmokeCase:
    """A known entity: its batch score under the version being released, and its record."""

    entity_id: int | str
    score: float
    record: dict[str, Any]


@dataclass(frozen=True)
class SmokeResult:
    image: str
    model_version: str
    uid: int
    ready_s: float
    healthcheck: bool
    entity_id: int | str
    batch_score: float
    lookup_score: float
    predict_score: float
    seconds: float


def image_model_version(image: str) -> str:
    """The model version an image was built for (its ``ai.scoreloop.model.version`` label)."""
    info = container_engine().inspect_image(image)
    labels = info.get("Config", {}).get("Labels") or info.get("Labels") or {}
    version = labels.get(MODEL_VERSION_LABEL)
    if not version or version == "unknown":
        raise ReleaseError(
            f"image {image} has no {MODEL_VERSION_LABEL} label: build it with "
            "scoreloop.release.build.build_image"
        )
    return str(version)


def smoke_case_from_tables(model_version: str, settings: Settings | None = None) -> SmokeCase:
    """One entity scored by ``model_version`` in the scores table, with its validated record."""
    settings = settings or get_settings()
    spec = load_spec(settings.spec_path)
    try:
        scores = read_table(table_uri(settings.tables, SCORES))
    except FileNotFoundError as exc:
        raise ReleaseError(f"{exc}: score a batch with {model_version} first") from exc
    scored = scores.filter(pl.col("model_version") == model_version).head(1)
    if scored.is_empty():
        raise ReleaseError(
            f"no rows of {model_version} in {table_uri(settings.tables, SCORES)}: rescore with "
            "it first (`scoreloop rescore`)"
        )
    row = scored.row(0, named=True)
    validated = read_table(table_uri(settings.tables, VALIDATED), batch_id=row["batch_id"])
    records = validated.filter(pl.col(spec.id.name) == row["entity_id"]).head(1)
    if records.is_empty():
        raise ReleaseError(
            f"entity {row['entity_id']} of batch {row['batch_id']} is not in the validated table"
        )
    record = records.row(0, named=True)
    return SmokeCase(
        entity_id=row["entity_id"],
        score=float(row["score"]),
        record={name: record[name] for name in spec.feature_names},
    )


def _check_score(what: str, got: float, case: SmokeCase) -> None:
    if abs(got - case.score) > SCORE_TOLERANCE:
        raise ReleaseError(
            f"smoke: {what} for entity {case.entity_id} gave {got!r} but the batch score of the "
            f"release is {case.score!r}: the image scores differently from batch scoring "
            "(features, model file or snapshot mismatch); do not roll it out"
        )


def smoke_test(
    image: str,
    snapshot_dir: Path,
    case: SmokeCase,
    *,
    expected_version: str | None = None,
    ready_timeout: float = 60.0,
) -> SmokeResult:
    """Run ``image`` against ``snapshot_dir`` on 127.0.0.1 and check it (see the module doc).

    Args:
        image: the image to test (built by ``build_image``).
        snapshot_dir: the snapshots folder to mount read-only at /snapshots.
        case: a known entity and its batch score (``smoke_case_from_tables`` finds one).
        expected_version: the model version that must be served (default: the image's label).
        ready_timeout: seconds to wait for ``/readyz``.

    Raises:
        ReleaseError: naming the failed check (root user, not ready with the reason the
            service gave, failed HEALTHCHECK, wrong version, a score that disagrees).
    """
    started = time.perf_counter()
    engine = container_engine()
    expected_version = expected_version or image_model_version(image)
    name = f"scoreloop-smoke-{uuid.uuid4().hex[:8]}"
    try:
        container = start_service(engine, image, name, snapshot_dir)
        uid_text = engine.run(["exec", name, "id", "-u"], what=f"smoke: `id -u` in {name}").stdout
        uid = int(uid_text.strip())
        if uid == 0:
            raise ReleaseError(
                f"smoke: {image} runs as root (uid 0): the Dockerfile must end with a USER line"
            )
        readiness = wait_ready(engine, container, timeout=ready_timeout)
        health = engine.run(["healthcheck", "run", name], what="healthcheck", check=False)
        if engine.name == "podman" and health.returncode != 0:
            raise ReleaseError(
                f"smoke: the HEALTHCHECK of {image} failed ({health.stdout.strip()} "
                f"{health.stderr.strip()}): /healthz must answer inside the container"
            )
        with httpx.Client(base_url=container.url, timeout=10.0) as http:
            model = http.get("/model").json()
            if model.get("version") != expected_version:
                raise ReleaseError(
                    f"smoke: /model of {image} reports {model.get('version')!r}, expected "
                    f"{expected_version!r}: the mounted snapshot serves another version; "
                    "publish the release's snapshot first"
                )
            lookup = http.get(f"/scores/{case.entity_id}")
            if lookup.status_code != 200:
                raise ReleaseError(
                    f"smoke: GET /scores/{case.entity_id} answered {lookup.status_code} "
                    f"({lookup.text[:200]}): the known entity must be in the snapshot"
                )
            lookup_score = float(lookup.json()["score"])
            _check_score("GET /scores", lookup_score, case)
            predicted = http.post("/predict", json=case.record)
            if predicted.status_code != 200:
                raise ReleaseError(
                    f"smoke: POST /predict answered {predicted.status_code}: {predicted.text[:300]}"
                )
            predict_score = float(predicted.json()["score"])
            _check_score("POST /predict", predict_score, case)
    finally:
        engine.remove(name)
    return SmokeResult(
        image=image,
        model_version=expected_version,
        uid=uid,
        ready_s=round(readiness.seconds, 2),
        healthcheck=health.returncode == 0,
        entity_id=case.entity_id,
        batch_score=case.score,
        lookup_score=lookup_score,
        predict_score=predict_score,
        seconds=round(time.perf_counter() - started, 2),
    )

"""The model behind the served scores."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from serving.deps import SnapshotDep
from serving.schemas import ErrorOut, HoldoutOut, ModelOut, SplitOut

router = APIRouter(tags=["model"])


def card_summary(text: str, limit: int = 600) -> str | None:
    """First paragraph of the model card that is not a heading."""
    for block in text.split("\n\n"):
        lines = [line for line in block.strip().splitlines() if not line.startswith("#")]
        paragraph = " ".join(line.strip() for line in lines).strip()
        if paragraph:
            return paragraph[:limit]
    return None


def _splits(summary: dict[str, Any] | None) -> dict[str, SplitOut]:
    out = {}
    for name, info in (summary or {}).items():
        batches = list(info.get("batches") or [])
        out[name] = SplitOut(
            rows=info.get("rows"),
            positive_rate=info.get("positive_rate"),
            first_batch=str(batches[0]) if batches else None,
            last_batch=str(batches[-1]) if batches else None,
            batches=len(batches),
        )
    return out


@router.get("/model", response_model=ModelOut, responses={503: {"model": ErrorOut}})
def model(snapshot: SnapshotDep) -> ModelOut:
    """The champion version being served: its holdout metrics beside the models it was judged
    against, validation metrics, parameters, training data, the model card and how far its SHAP
    and LIME explanations agree on a holdout sample."""
    metadata = snapshot.loaded.bundle.metadata
    manifest = snapshot.manifest
    card = snapshot.loaded.card  # read at load: the folder may have changed since
    holdout = snapshot.loaded.holdout
    extra = metadata.model_extra or {}
    return ModelOut(
        name=manifest.model_name,
        version=manifest.model_version,
        snapshot_id=manifest.snapshot_id,
        snapshot_created_at=manifest.created_at,
        entities=manifest.row_count,
        spec_name=snapshot.loaded.spec.name,
        threshold=metadata.threshold,
        threshold_policy=metadata.threshold_policy,
        features=metadata.features,
        categorical=metadata.categorical,
        trained_at=metadata.trained_at,
        data_version=metadata.data_version,
        git_commit=metadata.git_commit,
        metrics=metadata.metrics,
        holdout=HoldoutOut.model_validate(holdout.model_dump()) if holdout else None,
        params=metadata.params,
        training_set=_splits(extra.get("training_set")),
        card=card,
        card_summary=card_summary(card) if card is not None else None,
        explanation_agreement=extra.get("explanation_agreement"),
    )

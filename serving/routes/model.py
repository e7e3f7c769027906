"""The model behind the served scores."""

from __future__ import annotations

from fastapi import APIRouter

from serving.deps import SnapshotDep
from serving.schemas import ErrorOut, ModelOut

router = APIRouter(tags=["model"])


def card_summary(text: str, limit: int = 600) -> str | None:
    """First paragraph of the model card that is not a heading."""
    for block in text.split("\n\n"):
        lines = [line for line in block.strip().splitlines() if not line.startswith("#")]
        paragraph = " ".join(line.strip() for line in lines).strip()
        if paragraph:
            return paragraph[:limit]
    return None


@router.get("/model", response_model=ModelOut, responses={503: {"model": ErrorOut}})
def model(snapshot: SnapshotDep) -> ModelOut:
    """The champion version being served, its card summary, its evaluation metrics and how far
    its SHAP and LIME explanations agree on a holdout sample."""
    metadata = snapshot.loaded.bundle.metadata
    manifest = snapshot.manifest
    card = snapshot.loaded.card  # read at load: the folder may have changed since
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
        card_summary=card_summary(card) if card is not None else None,
        explanation_agreement=(metadata.model_extra or {}).get("explanation_agreement"),
    )

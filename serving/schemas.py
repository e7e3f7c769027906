"""Request and response bodies of the lookup service (what /docs shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

#: Most ids one POST /scores/lookup may ask for.
MAX_LOOKUP_IDS = 1000
#: Longest string entity id (path or lookup body).
MAX_ID_LENGTH = 256


class Reason(BaseModel):
    feature: str
    value: str
    contribution: float = Field(description="SHAP contribution in log-odds (+ = towards positive).")


class ScoreOut(BaseModel):
    """The latest score of one entity."""

    model_config = ConfigDict(protected_namespaces=())

    entity_id: int | str
    batch_id: str
    score: float = Field(description="Probability of the positive class.")
    decision: bool = Field(description="score >= threshold")
    threshold: float
    model_name: str
    model_version: str
    expected_value: float | None
    scored_at: datetime
    data_version: str
    reasons: list[Reason]


class LookupIntIn(BaseModel):
    ids: list[int] = Field(min_length=1, max_length=MAX_LOOKUP_IDS)


class LookupStrIn(BaseModel):
    ids: list[Annotated[str, Field(max_length=MAX_ID_LENGTH)]] = Field(
        min_length=1, max_length=MAX_LOOKUP_IDS
    )


class LookupOut(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    snapshot_id: str
    model_version: str
    found: list[ScoreOut]
    missing: list[int | str]


class PredictOut(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    entity_id: int | str | None
    score: float
    decision: bool
    threshold: float
    model_name: str
    model_version: str
    snapshot_id: str
    expected_value: float
    reasons: list[Reason]


class FieldErrorOut(BaseModel):
    field: str
    rule: str
    value: str | None


class PredictErrorOut(BaseModel):
    detail: str
    errors: list[FieldErrorOut]


class ErrorOut(BaseModel):
    detail: str
    entity_id: int | str | None = None
    snapshot_id: str | None = None


class ExplanationAgreementOut(BaseModel):
    """How far SHAP and LIME agree on a sample of the model's holdout (from its metadata)."""

    rows: int
    top_k: int = Field(description="The reasons each score carries.")
    top_k_overlap: float = Field(description="Mean share of SHAP's top-k also in LIME's top-k.")
    rank_correlation: float | None = Field(
        description="Mean Spearman correlation of |SHAP| and |LIME| over all features."
    )
    split: str | None = None
    lime_samples: int | None = None
    seed: int | None = None


class MetricsOut(BaseModel):
    """One model's metrics on a set of rows (the AUCs are None when the rows hold one class)."""

    rows: int
    positive_rate: float | None = None
    roc_auc: float | None = None
    pr_auc: float | None = None
    log_loss: float | None = None
    brier: float | None = None
    f1: float | None = Field(default=None, description="At the model's threshold.")
    precision: float | None = None
    recall: float | None = None
    threshold: float | None = None
    tp: int | None = None
    fp: int | None = None
    tn: int | None = None
    fn: int | None = None


class ComparedModelOut(BaseModel):
    role: str = Field(description="champion (of the day the version was judged) or baseline")
    version: str | None
    metrics: MetricsOut


class HoldoutOut(BaseModel):
    """The served version on the out-of-time holdout, as the gate judged it."""

    rows: int
    metrics: MetricsOut
    compared_with: list[ComparedModelOut]
    slices: dict[str, dict[str, MetricsOut]] = Field(
        description="Metrics per slice value, by slice column."
    )


class SplitOut(BaseModel):
    rows: int | None = None
    positive_rate: float | None = None
    first_batch: str | None = None
    last_batch: str | None = None
    batches: int = 0


class ModelOut(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    name: str
    version: str
    snapshot_id: str
    snapshot_created_at: datetime
    entities: int
    spec_name: str
    threshold: float
    threshold_policy: str
    features: list[str]
    categorical: list[str]
    trained_at: datetime
    data_version: str
    git_commit: str | None
    metrics: dict[str, float] = Field(
        description="Validation metrics (the early-stopping split), as training recorded them."
    )
    holdout: HoldoutOut | None = Field(
        default=None,
        description="Holdout metrics beside the models it was judged against (None when the "
        "version's evaluation was not recorded).",
    )
    params: dict[str, Any] = Field(description="Training parameters.")
    training_set: dict[str, SplitOut] = Field(
        description="Rows, positive rate and batch span of each split (train, validation, holdout)."
    )
    card: str | None = Field(description="The model card (markdown), whole.")
    card_summary: str | None = Field(
        description="First paragraph of the card (kept for older clients; prefer the fields)."
    )
    explanation_agreement: ExplanationAgreementOut | None = Field(
        default=None, description="SHAP vs LIME on a holdout sample (None for older models)."
    )


class HealthOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    status: str
    snapshot_id: str | None = None
    model_version: str | None = None
    last_error: str | None = None


class ReloadOut(BaseModel):
    result: str
    snapshot_id: str | None
    serving: str | None
    error: str | None = None
    seconds: float


class Attribution(BaseModel):
    feature: str
    value: str = Field(description="The entity's value, as text ('' when missing).")
    attribution: float = Field(
        description="SHAP: contribution in log-odds; LIME: the surrogate's weight in probability."
    )


class ExplainOut(BaseModel):
    """One served score explained, every feature with its attribution, largest first."""

    model_config = ConfigDict(protected_namespaces=())

    entity_id: int | str
    method: str = Field(description="shap or lime")
    model_version: str
    batch_id: str
    score: float = Field(description="The model's probability for the entity's features.")
    snapshot_id: str
    seed: int = Field(description="LIME's random seed (same seed, same answer).")
    attributions: list[Attribution]

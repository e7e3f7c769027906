"""A model version on disk: the CatBoost file plus its metadata, loaded with clear errors.

Layout of a model directory::

    model.cbm        CatBoost native model
    metadata.json    ModelMetadata (features, threshold, params, data version, metrics, ...)
    card.md          the model card (written by the training step)
    holdout.json     HoldoutEvaluation: the version's metrics on the out-of-time holdout, from
                     the evaluation recorded at its registry commit (written when a registered
                     version is fetched; absent in a bundle that was never registered)

Training writes bundles; scoring, the registry and the lookup service read them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.errors import ScoreloopError

if TYPE_CHECKING:  # catboost takes ~1 s to import: only loading a model needs it
    from catboost import CatBoostClassifier

MODEL_FILE = "model.cbm"
METADATA_FILE = "metadata.json"
CARD_FILE = "card.md"
HOLDOUT_FILE = "holdout.json"

_Model = TypeVar("_Model", bound=BaseModel)


class ModelLoadError(ScoreloopError, RuntimeError):
    """A model directory is missing, incomplete or corrupt."""


#: The model class that means "positive": training encodes the target as 1 = positive label.
POSITIVE_CLASS = 1

Label = int | str | bool


class ClassMapping(BaseModel):
    """How training encoded the target as the model's classes (0/1), recorded in the bundle.

    Training fits on ``label = (target == positive_label)`` (pipelines.training_set), so the model
    knows classes 0 and 1 whatever the target's values ("yes"/"no", booleans, 0/1). The scorer
    reads the probability of class :attr:`positive_class` and nothing else. Bundles written
    before this was recorded carry the default (class 1, labels unknown): the same encoding.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str | None = None
    positive_label: Label | None = None
    negative_label: Label | None = None
    positive_class: int = POSITIVE_CLASS
    negative_class: int = 1 - POSITIVE_CLASS


class ModelMetadata(BaseModel):
    """Everything needed to use and audit a trained model."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str
    version: str | None = None
    spec_name: str
    features: list[str]
    categorical: list[str]
    threshold: float
    threshold_policy: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    data_version: str = ""
    git_commit: str | None = None
    trained_at: datetime
    training_seconds: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    reference_profile: dict[str, Any] = Field(default_factory=dict)
    classes: ClassMapping = Field(default_factory=ClassMapping)


class HoldoutMetrics(BaseModel):
    """One model's metrics on the holdout (``pipelines.metrics.score_metrics``; the AUCs are
    None when the rows hold one class)."""

    model_config = ConfigDict(extra="ignore")

    rows: int
    positive_rate: float | None = None
    roc_auc: float | None = None
    pr_auc: float | None = None
    log_loss: float | None = None
    brier: float | None = None
    f1: float | None = None
    precision: float | None = None
    recall: float | None = None
    threshold: float | None = None
    tp: int | None = None
    fp: int | None = None
    tn: int | None = None
    fn: int | None = None


class ComparedModel(BaseModel):
    """Another model judged on the same holdout rows (the champion of the day, the baseline)."""

    role: str
    version: str | None = None
    metrics: HoldoutMetrics


class HoldoutEvaluation(BaseModel):
    """A version's out-of-time holdout evaluation, as the gate saw it when it was judged."""

    model_config = ConfigDict(extra="forbid")

    rows: int
    metrics: HoldoutMetrics
    compared_with: list[ComparedModel] = Field(default_factory=list)
    #: ROC AUC and rows per slice value, by slice column.
    slices: dict[str, dict[str, HoldoutMetrics]] = Field(default_factory=dict)


def holdout_evaluation(evaluation: dict[str, Any], role: str = "challenger") -> HoldoutEvaluation:
    """The part of an evaluation (``pipelines.evaluate.evaluate_models``) about ``role``."""
    models = evaluation["models"]
    if role not in models:
        raise ModelLoadError(f"the evaluation holds no {role!r} model (it has {sorted(models)})")
    own = models[role]
    return HoldoutEvaluation(
        rows=int(evaluation["holdout_rows"]),
        metrics=HoldoutMetrics.model_validate(own["overall"]),
        compared_with=[
            ComparedModel(
                role=other,
                version=data.get("version"),
                metrics=HoldoutMetrics.model_validate(data["overall"]),
            )
            for other, data in models.items()
            if other != role
        ],
        slices={
            column: {value: HoldoutMetrics.model_validate(m) for value, m in values.items()}
            for column, values in (own.get("slices") or {}).items()
        },
    )


def load_holdout(directory: Path) -> HoldoutEvaluation | None:
    """The bundle's holdout.json, None when it has none; a corrupt one raises ModelLoadError."""
    path = Path(directory) / HOLDOUT_FILE
    if not path.exists():
        return None
    return read_json_model(path, HoldoutEvaluation, ModelLoadError, "holdout evaluation")


@dataclass(frozen=True)
class ModelBundle:
    """A loaded model and its metadata."""

    model: CatBoostClassifier
    metadata: ModelMetadata
    directory: Path


def save_bundle(model: CatBoostClassifier, metadata: ModelMetadata, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    model.save_model(str(directory / MODEL_FILE))
    (directory / METADATA_FILE).write_text(metadata.model_dump_json(indent=2))
    return directory


def read_json_model(path: Path, model: type[_Model], error: type[Exception], what: str) -> _Model:
    """Read a JSON file into ``model``; a missing or corrupt file raises ``error`` naming it."""
    try:
        return model.model_validate(json.loads(path.read_text()))
    except FileNotFoundError as exc:
        raise error(f"{what} not found: {path}") from exc
    except (json.JSONDecodeError, ValidationError, UnicodeDecodeError) as exc:
        raise error(f"{what} {path} is corrupt: {exc}") from exc


def load_metadata(directory: Path) -> ModelMetadata:
    return read_json_model(
        Path(directory) / METADATA_FILE, ModelMetadata, ModelLoadError, "model metadata"
    )


def load_bundle(directory: Path) -> ModelBundle:
    """Load a model directory; errors name the file and the cause."""
    directory = Path(directory)
    metadata = load_metadata(directory)
    path = directory / MODEL_FILE
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    from catboost import CatBoostClassifier, CatBoostError

    model = CatBoostClassifier()
    try:
        model.load_model(str(path))
    except CatBoostError as exc:
        raise ModelLoadError(f"model file {path} is corrupt: {exc}") from exc
    if list(model.feature_names_ or []) != metadata.features:
        raise ModelLoadError(
            f"model file {path} has features {model.feature_names_}, metadata says "
            f"{metadata.features}"
        )
    return ModelBundle(model=model, metadata=metadata, directory=directory)

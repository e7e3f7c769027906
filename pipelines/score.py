"""The one scorer: features -> model -> probability of the positive class -> decision -> reasons.

Batch scoring (:mod:`pipelines.scores_table`), the lookup service's ``POST /predict`` and
evaluation all score through this module, so a record gets the same score everywhere:

1. ``prepare_features`` (:mod:`pipelines.features`) turns rows into the model's input;
2. the model's ``predict_proba``, column of the positive class chosen by ONE rule,
   :func:`positive_column`, from the class mapping recorded in the model bundle
   (:class:`pipelines.model_bundle.ClassMapping`: training encodes the target as 0/1 whatever
   its values, so the spec's label is never looked up among the model's classes);
3. ``decision = score >= threshold`` (the bundle's threshold);
4. reasons: the ``top_k`` SHAP contributions (:mod:`pipelines.explain`), signed towards the
   positive class.

No table IO and no registry here: the service imports this module.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl
from catboost import CatBoostClassifier

from pipelines.errors import ScoreloopError
from pipelines.explain import DEFAULT_TOP_K, REASONS_DTYPE, reason_codes, shap_values
from pipelines.features import check_model_features, prepare_features
from pipelines.model_bundle import ClassMapping, ModelBundle
from pipelines.spec import DatasetSpec

#: Columns of :func:`score_frame`'s result, in order.
SCORED_COLUMNS = (
    "entity_id",
    "score",
    "decision",
    "threshold",
    "model_name",
    "model_version",
    "reasons",
    "expected_value",
)


class ScoringError(ScoreloopError, RuntimeError):
    """Rows cannot be scored with this model; the message says why and how to fix it."""


def _same_label(a: object, b: object) -> bool:
    # As text: a YAML spec and a JSON bundle may spell 1, True and "1" differently, and
    # True == 1 in Python, which must not make a boolean target match an integer one.
    return str(a) == str(b)


def check_bundle(bundle: ModelBundle, spec: DatasetSpec) -> None:
    """Raise before any row is scored when ``bundle`` does not fit ``spec``.

    Checks the feature list and categoricals, and that the model's positive class stands for the
    spec's positive label (when the bundle recorded it).

    Raises:
        FeatureMismatchError: the model was trained on other features than the spec's.
        ScoringError: the model was trained with another target or positive label.
    """
    check_model_features(bundle.metadata.features, bundle.metadata.categorical, spec)
    classes = bundle.metadata.classes
    if classes.target is not None and classes.target != spec.target.name:
        raise ScoringError(
            f"model {bundle.directory} was trained on target {classes.target!r}, spec "
            f"{spec.name!r} has target {spec.target.name!r}: use the model's own spec"
        )
    if classes.positive_label is not None and not _same_label(
        classes.positive_label, spec.positive_label
    ):
        raise ScoringError(
            f"model {bundle.directory} was trained with positive label "
            f"{classes.positive_label!r}, spec {spec.name!r} says {spec.positive_label!r}: its "
            "scores would mean another class; retrain with this spec or use the model's spec"
        )


def positive_column(model: CatBoostClassifier, classes: ClassMapping) -> int:
    """The ``predict_proba`` column of the positive class: the one rule every scorer uses.

    Raises:
        ScoringError: the model does not predict the class its mapping calls positive.
    """
    known = [str(c) for c in (model.classes_ if model.classes_ is not None else [])]
    wanted = str(classes.positive_class)
    if wanted not in known or len(known) != 2:
        raise ScoringError(
            f"model predicts classes {known}, but its bundle records class {wanted} as the "
            f"positive label {classes.positive_label!r}: scoreloop scores binary models trained "
            "by `scoreloop train` (target encoded as 0/1); retrain it"
        )
    return known.index(wanted)


def predict_positive(
    model: CatBoostClassifier,
    features: pl.DataFrame,
    classes: ClassMapping,
    *,
    thread_count: int = -1,
) -> npt.NDArray[np.float64]:
    """P(positive class) of prepared ``features`` (the output of ``prepare_features``)."""
    column = positive_column(model, classes)
    if features.height == 0:
        return np.empty(0, dtype=np.float64)
    names = list(model.feature_names_ or [])
    if names and names != features.columns:
        features = features.select(names)
    proba = np.asarray(model.predict_proba(features, thread_count=thread_count))
    return np.asarray(proba[:, column], dtype=np.float64)


def positive_probability(
    model: CatBoostClassifier,
    frame: pl.DataFrame,
    spec: DatasetSpec,
    *,
    classes: ClassMapping | None = None,
    thread_count: int = -1,
) -> npt.NDArray[np.float64]:
    """P(positive class) for every row of ``frame``: the probability-only entry point.

    Used where no reasons are needed (threshold choice, evaluation). ``classes`` defaults to the
    encoding training writes (class 1 = positive), which is what a freshly fitted model has.
    """
    features = prepare_features(frame, spec)
    return predict_positive(model, features, classes or ClassMapping(), thread_count=thread_count)


def score_frame(
    bundle: ModelBundle,
    frame: pl.DataFrame,
    spec: DatasetSpec,
    *,
    top_k: int = DEFAULT_TOP_K,
    thread_count: int = -1,
    model_version: str | None = None,
    with_reasons: bool = True,
) -> pl.DataFrame:
    """Score rows that hold the spec's id and feature columns (no table IO).

    Args:
        bundle: the model and its metadata (threshold, class mapping, name).
        frame: rows with the spec's id column and feature columns.
        top_k: reasons per row.
        thread_count: CatBoost threads for predict and SHAP (-1 = all cores).
        model_version: the version written into the result (default: the bundle's).
        with_reasons: without reasons, ``reasons`` is empty and ``expected_value`` null (such
            a frame is not fit for the scores table).

    Returns:
        :data:`SCORED_COLUMNS`: ``score`` is the probability of the positive class, reasons
        are SHAP contributions in log-odds towards the positive class.
    """
    version = model_version if model_version is not None else bundle.metadata.version
    if version is None:
        raise ScoringError(
            f"model {bundle.directory} has no version in its metadata and none was given"
        )
    features = prepare_features(frame, spec)
    model = bundle.model
    classes = bundle.metadata.classes
    proba = predict_positive(model, features, classes, thread_count=thread_count)
    threshold = float(bundle.metadata.threshold)
    if with_reasons:
        explanation = shap_values(
            model, features, bundle.metadata.categorical, thread_count=thread_count
        )
        # CatBoost's SHAP values explain the log-odds of its second class.
        sign = 1.0 if positive_column(model, classes) == 1 else -1.0
        reasons = pl.lit(reason_codes(features, sign * explanation.contributions, top_k))
        expected = pl.lit(sign * explanation.expected_value, dtype=pl.Float64)
    else:
        reasons = pl.lit([], dtype=REASONS_DTYPE).alias("reasons")
        expected = pl.lit(None, dtype=pl.Float64)
    score = pl.Series("score", proba, dtype=pl.Float64)
    return pl.DataFrame(
        {
            "entity_id": frame[spec.id.name],
            "score": score,
            "decision": score >= threshold,
        }
    ).with_columns(
        pl.lit(threshold, dtype=pl.Float64).alias("threshold"),
        pl.lit(bundle.metadata.name, dtype=pl.String).alias("model_name"),
        pl.lit(version, dtype=pl.String).alias("model_version"),
        reasons,
        expected.alias("expected_value"),
    )


def class_mapping(spec: DatasetSpec) -> ClassMapping:
    """The class mapping training records for ``spec`` (class 1 = the spec's positive label)."""
    return ClassMapping(
        target=spec.target.name,
        positive_label=spec.positive_label,
        negative_label=spec.negative_label,
    )

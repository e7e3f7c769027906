"""Retraining: training set -> challenger -> evaluation (gate check) -> champion.

Each asset runs one step of ``pipelines.workspace`` in the deployment repo: the step runs its
``dvc.yaml`` stage through DVC, commits ``dvc.lock`` and pushes the outputs, so the DVC hash of the
output is the asset's data version. ``evaluation`` carries the blocking ``gate`` check: a refused
challenger is registered and its decision recorded, but ``champion`` does not run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from assets.metadata import bullet_list, png_markdown
from assets.resources import RESOURCES, ScoreloopResource
from pipelines.evaluate import EvaluationError
from pipelines.gate import GateParams, decide
from pipelines.model_bundle import ModelLoadError
from pipelines.params import load_params
from pipelines.registry import RegistryError
from pipelines.settings import Settings
from pipelines.train import TrainingError
from pipelines.training_set import TrainingSetError
from pipelines.workspace import (
    WorkspaceError,
    step_evaluate,
    step_promote,
    step_train,
    step_training_set,
)

GROUP = "retraining"
EXPECTED = (
    EvaluationError,
    ModelLoadError,
    RegistryError,
    TrainingError,
    TrainingSetError,
    WorkspaceError,
)


def _failure(exc: Exception) -> dg.Failure:
    return dg.Failure(description=f"{type(exc).__name__}: {exc}")


def _run_step(
    step: Callable[[Settings], dict[str, Any]], scoreloop: ScoreloopResource
) -> dict[str, Any]:
    """Run one workspace step; an expected error fails the asset with its message."""
    try:
        return step(scoreloop.settings())
    except EXPECTED as exc:
        raise _failure(exc) from exc


@dg.asset(
    group_name=GROUP,
    deps=[dg.AssetKey("validated_batch"), dg.AssetKey("labels")],
    description="Validated rows joined with labels for the newest accepted batches, split by "
    "event time (DVC-versioned parquet in the deployment repo).",
)
def training_set(scoreloop: ScoreloopResource) -> dg.MaterializeResult:  # type: ignore[type-arg]
    result = _run_step(step_training_set, scoreloop)
    splits = result["splits"]
    return dg.MaterializeResult(
        data_version=dg.DataVersion(result["data_version"]),
        metadata={
            "dvc_md5": result["data_version"],
            "path": dg.MetadataValue.path(result["path"]),
            "dagster/row_count": result["rows"],
            **{f"{name}_rows": info["rows"] for name, info in splits.items()},
            **{f"{name}_batches": ", ".join(info["batches"]) for name, info in splits.items()},
            "selection": dg.MetadataValue.json(result["selection"]),
        },
    )


@dg.asset(
    group_name=GROUP,
    deps=[training_set],
    description="CatBoost challenger trained on the train split, early-stopped on validation.",
)
def challenger(scoreloop: ScoreloopResource) -> dg.MaterializeResult:  # type: ignore[type-arg]
    result = _run_step(step_train, scoreloop)
    metadata = result["metadata"]
    return dg.MaterializeResult(
        data_version=dg.DataVersion(result["data_version"]),
        metadata={
            "version": metadata.version or "",
            "dvc_md5": result["data_version"],
            "model_dir": dg.MetadataValue.path(result["model_dir"]),
            "threshold": dg.MetadataValue.float(metadata.threshold),
            "threshold_policy": metadata.threshold_policy,
            "training_data_version": metadata.data_version,
            "training_seconds": dg.MetadataValue.float(float(metadata.training_seconds or 0.0)),
            "best_iteration": int(metadata.params.get("best_iteration", 0)),
            **{k: dg.MetadataValue.float(v) for k, v in metadata.metrics.items()},
            "card": dg.MetadataValue.md(result["card"]),
        },
    )


def _evaluation_metadata(result: dict[str, Any]) -> dict[str, Any]:
    evaluation = result["evaluation"]
    metadata: dict[str, Any] = {
        "holdout_rows": evaluation["holdout_rows"],
        "dvc_md5": result["data_version"],
    }
    for role, data in evaluation["models"].items():
        metadata[f"{role}_version"] = data.get("version") or ""
        for metric in ("roc_auc", "pr_auc", "log_loss", "brier"):
            value = data["overall"].get(metric)
            if value is not None:
                metadata[f"{role}_{metric}"] = dg.MetadataValue.float(float(value))
    for name, path in result["plots"].items():
        metadata[f"plot_{Path(name).stem}"] = png_markdown(Path(path))
    return metadata


@dg.asset(
    group_name=GROUP,
    deps=[challenger],
    description="Challenger vs champion vs baseline on the same out-of-time holdout.",
    check_specs=[
        dg.AssetCheckSpec(
            "gate",
            asset="evaluation",
            blocking=True,
            description="Promotion gate: floor, improvement over champion, no slice regression.",
        )
    ],
)
def evaluation(scoreloop: ScoreloopResource) -> dg.MaterializeResult:  # type: ignore[type-arg]
    settings = scoreloop.settings()
    try:
        result = step_evaluate(settings)
        decision = decide(
            result["evaluation"], GateParams.from_params(load_params(settings.params_path))
        )
        record: dict[str, Any] = decision.to_dict()
        if not decision.promote:
            # A refused challenger is still registered and its decision recorded.
            record = step_promote(settings)["decision"]
    except EXPECTED as exc:
        raise _failure(exc) from exc
    return dg.MaterializeResult(
        data_version=dg.DataVersion(result["data_version"]),
        metadata=_evaluation_metadata(result),
        check_results=[
            dg.AssetCheckResult(
                check_name="gate",
                passed=bool(decision.promote),
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "decision": record["decision"],
                    "reasons": bullet_list(record["reasons"]),
                    "primary_metric": decision.primary_metric,
                    "challenger_value": decision.challenger_value,
                    "champion_value": decision.champion_value,
                    "champion_version": decision.champion_version or "",
                    "checks": dg.MetadataValue.json(record["checks"]),
                },
            )
        ],
    )


@dg.asset(
    group_name=GROUP,
    deps=[evaluation],
    description="The champion (GTO prod stage): the challenger, promoted once it passed the gate.",
)
def champion(scoreloop: ScoreloopResource) -> dg.MaterializeResult:  # type: ignore[type-arg]
    result = _run_step(step_promote, scoreloop)
    ref = result["champion"]
    if ref is None:
        raise dg.Failure(
            description="the gate refused the challenger: "
            + "; ".join(result["decision"]["reasons"])
        )
    return dg.MaterializeResult(
        data_version=dg.DataVersion(f"{ref.name}@{ref.version}"),
        metadata={
            "version": ref.version,
            "model_dir": dg.MetadataValue.path(str(ref.model_dir)),
            "decision_file": dg.MetadataValue.path(result["decision_file"]),
            "reasons": bullet_list(result["decision"]["reasons"]),
            "card": dg.MetadataValue.md(result["card"]),
        },
    )


retraining_job = dg.define_asset_job(
    "retraining", selection=dg.AssetSelection.groups(GROUP), description="Retrain and judge."
)

defs = dg.Definitions(
    assets=[training_set, challenger, evaluation, champion],
    jobs=[retraining_job],
    resources=RESOURCES,
)

"""Retraining: training set -> challenger -> evaluation (gate check) -> champion.

Each asset runs one step of :mod:`pipelines.promote` in the deployment repo: the step runs its
``dvc.yaml`` stage through DVC, commits ``dvc.lock`` and pushes the outputs, so the DVC hash of the
output is the asset's data version. ``evaluation`` is the judge step: its ``decision`` metadata
and its ``gate`` check report the decision the step recorded (a refused challenger is registered
and its decision logged). ``champion`` concludes that recorded decision: it materialises only
when the challenger was promoted. A refusal is an expected outcome, not a failure: the run
succeeds, the ``gate`` check fails with WARN severity, ``evaluation`` says "refused", and
``champion`` records an observation ("v0.0.2 refused, v0.0.1 stays champion") without a new
materialisation (``output_required=False``).
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg

from assets.metadata import (
    bullet_list,
    comparison_table,
    confusion_table,
    number,
    png_markdown,
    table,
)
from assets.resources import RESOURCES, ScoreloopResource
from pipelines import promote
from pipelines.errors import ScoreloopError
from pipelines.gate import GateDecision
from pipelines.settings import Settings

GROUP = "retraining"
R = TypeVar("R")


def _run_step(step: Callable[[Settings], R], scoreloop: ScoreloopResource) -> R:
    """Run one retraining step; an expected error fails the asset with its message."""
    try:
        return step(scoreloop.settings())
    except ScoreloopError as exc:
        raise dg.Failure(description=f"{type(exc).__name__}: {exc}") from exc


@dg.asset(
    group_name=GROUP,
    deps=[dg.AssetKey("validated_batch"), dg.AssetKey("labels")],
    description="Validated rows joined with labels for the newest accepted batches, split by "
    "event time (DVC-versioned parquet in the deployment repo).",
)
def training_set(scoreloop: ScoreloopResource) -> dg.MaterializeResult:  # type: ignore[type-arg]
    result = _run_step(promote.prepare_training_set, scoreloop)
    splits = result.splits
    return dg.MaterializeResult(
        data_version=dg.DataVersion(result.data_version),
        metadata={
            "dvc_md5": result.data_version,
            "path": dg.MetadataValue.path(str(result.path)),
            "dagster/row_count": result.rows,
            **{f"{name}_rows": info["rows"] for name, info in splits.items()},
            **{f"{name}_batches": ", ".join(info["batches"]) for name, info in splits.items()},
            "selection": dg.MetadataValue.json(result.selection.to_json()),
        },
    )


@dg.asset(
    group_name=GROUP,
    deps=[training_set],
    description="CatBoost challenger trained on the train split, early-stopped on validation.",
)
def challenger(scoreloop: ScoreloopResource) -> dg.MaterializeResult:  # type: ignore[type-arg]
    result = _run_step(promote.train, scoreloop)
    metadata = result.metadata
    return dg.MaterializeResult(
        data_version=dg.DataVersion(result.data_version),
        metadata={
            "version": metadata.version or "",
            "dvc_md5": result.data_version,
            "model_dir": dg.MetadataValue.path(str(result.model_dir)),
            "threshold": number(metadata.threshold),
            "threshold_policy": metadata.threshold_policy,
            "training_data_version": metadata.data_version,
            "training_seconds": number(float(metadata.training_seconds or 0.0)),
            "best_iteration": int(metadata.params.get("best_iteration", 0)),
            **{k: number(v) for k, v in metadata.metrics.items()},
            "card": dg.MetadataValue.md(result.card),
        },
    )


def decision_word(promoted: bool) -> str:
    """The gate's decision as shown in Dagster metadata: ``promote`` or ``refused``."""
    return "promote" if promoted else "refused"


def outcome_line(version: str, promoted: bool, champion_version: str | None) -> str:
    """One line a person reads first: what the gate did and who is champion now."""
    if promoted:
        return f"{version} promoted (champion was {champion_version or 'none'})"
    return f"{version} refused, {champion_version or 'no model'} stays champion"


#: The evaluation's PNGs as metadata entries, in the order they are listed in the UI.
PLOT_ENTRIES = {
    "roc.png": "plot_roc",
    "pr.png": "plot_pr",
    "calibration.png": "plot_calibration",
    "confusion.png": "plot_confusion",
    "threshold.png": "plot_threshold",
    "slices.png": "plot_slices",
}


def _evaluation_metadata(judgement: promote.Judgement) -> dict[str, Any]:
    evaluation = judgement.evaluation
    decision = judgement.decision
    metadata: dict[str, Any] = {
        "decision": decision_word(decision.promote),
        "outcome": outcome_line(judgement.version, decision.promote, decision.champion_version),
        "comparison": comparison_table(evaluation),
        "confusion_matrix": confusion_table(evaluation),
        "holdout_rows": evaluation["holdout_rows"],
        "dvc_md5": judgement.data_version,
    }
    # The primary metric as numbers too: Dagster's "Plots" tab draws them over materialisations.
    metric = decision.primary_metric
    for role in ("challenger", "champion"):
        value = evaluation["models"].get(role, {}).get("overall", {}).get(metric)
        if value is not None:
            metadata[f"{role}_{metric}"] = number(value)
    if judgement.shadow is not None:
        metadata["shadow"] = shadow_table(judgement.shadow)
    for name, path in judgement.plots.items():
        if path.exists():
            metadata[PLOT_ENTRIES.get(name, f"plot_{Path(name).stem}")] = png_markdown(path)
    return metadata


#: The shadow comparison's figures as shown in the UI, in order.
SHADOW_ROWS = {
    "batch_id": "batch",
    "rows": "rows",
    "score_psi": "score PSI (challenger vs champion)",
    "decision_agreement": "decision agreement",
    "mean_score_delta": "mean score delta (challenger - champion)",
    "challenger_decision_rate": "challenger decision rate",
    "champion_decision_rate": "champion decision rate",
}


def shadow_table(shadow: dict[str, Any]) -> dg.MetadataValue:
    """The challenger shadow-scored beside the champion on the newest batch (evidence only: the
    gate does not read it)."""
    return table(
        ["shadow on the newest batch", "value"],
        [
            (label, value)
            for key, label in SHADOW_ROWS.items()
            if (value := shadow.get(key)) is not None
        ],
    )


def gate_checks_table(decision: GateDecision) -> dg.MetadataValue:
    """The gate's rules as a table: rule, passed, detail."""
    return table(
        ["check", "passed", "detail"], [(c.name, c.passed, c.detail) for c in decision.checks]
    )


@dg.asset(
    group_name=GROUP,
    deps=[challenger],
    description="Challenger vs champion vs baseline on the same out-of-time holdout.",
    check_specs=[
        dg.AssetCheckSpec(
            "gate",
            asset="evaluation",
            description="Promotion gate: floor, improvement over champion, no slice regression. "
            "A refusal is a WARN (an expected outcome): `champion` reads the recorded decision "
            "and is not materialised.",
        )
    ],
)
def evaluation(scoreloop: ScoreloopResource) -> dg.MaterializeResult:  # type: ignore[type-arg]
    judgement = _run_step(promote.judge, scoreloop)
    decision = judgement.decision
    return dg.MaterializeResult(
        data_version=dg.DataVersion(judgement.data_version),
        metadata=_evaluation_metadata(judgement),
        check_results=[
            dg.AssetCheckResult(
                check_name="gate",
                passed=decision.promote,
                severity=dg.AssetCheckSeverity.WARN,
                description=outcome_line(
                    judgement.version, decision.promote, decision.champion_version
                ),
                metadata={
                    "decision": decision_word(decision.promote),
                    "reasons": bullet_list(decision.reasons),
                    "primary_metric": decision.primary_metric,
                    "challenger_value": number(decision.challenger_value, "none"),
                    "champion_value": number(decision.champion_value, "no champion"),
                    "champion_version": decision.champion_version or "",
                    "checks": gate_checks_table(decision),
                    **(
                        {"shadow": shadow_table(judgement.shadow)}
                        if judgement.shadow is not None
                        else {}
                    ),
                },
            )
        ],
    )


@dg.asset(
    group_name=GROUP,
    deps=[evaluation],
    output_required=False,
    description="The champion (GTO prod stage): the challenger, promoted once it passed the gate. "
    "A refused challenger leaves it untouched (an observation says so, no materialisation).",
)
def champion(
    context: dg.AssetExecutionContext, scoreloop: ScoreloopResource
) -> Iterator[dg.MaterializeResult[None]]:
    result = _run_step(promote.promote, scoreloop)
    ref = result.champion
    decision = result.decision
    if ref is None:
        line = outcome_line(result.version, False, decision.champion_version)
        context.log.warning(f"{line}: " + "; ".join(decision.reasons))
        context.log_event(
            dg.AssetObservation(
                asset_key=context.asset_key,
                description=line,
                metadata={
                    "decision": decision_word(False),
                    "outcome": line,
                    "refused_version": result.version,
                    "champion_version": decision.champion_version or "",
                    "reasons": bullet_list(decision.reasons),
                    "decision_file": dg.MetadataValue.path(str(result.decision_file)),
                },
            )
        )
        return
    yield dg.MaterializeResult(
        data_version=dg.DataVersion(f"{ref.name}@{ref.version}"),
        metadata={
            "version": ref.version,
            "decision": decision_word(True),
            "outcome": outcome_line(ref.version, True, decision.champion_version),
            "model_dir": dg.MetadataValue.path(str(ref.model_dir)),
            "decision_file": dg.MetadataValue.path(str(result.decision_file)),
            "reasons": bullet_list(result.decision.reasons),
            "card": dg.MetadataValue.md(result.card),
            **({"registry_push": ref.push.describe()} if ref.push else {}),
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

"""The model card: one markdown page per model version (``card.md`` in the model directory)."""

from __future__ import annotations

from typing import Any

from pipelines.model_bundle import ModelMetadata

CARD_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "f1", "precision", "recall")


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def render_card(
    metadata: ModelMetadata,
    *,
    evaluation: dict[str, Any] | None = None,
    decision: dict[str, Any] | None = None,
) -> str:
    """Markdown card: what the model is, what it was trained on, how good it is, and the gate."""
    extra = metadata.model_extra or {}
    lines = [
        f"# Model card: {metadata.name} {metadata.version or '(unregistered)'}",
        "",
        "## Model",
        f"- Type: CatBoost binary classifier (native categoricals) for dataset "
        f"`{metadata.spec_name}`",
        f"- Trained at: {metadata.trained_at.isoformat()} in "
        f"{_fmt(metadata.training_seconds)} s; code commit `{metadata.git_commit or 'unknown'}`",
        f"- Decision threshold: {metadata.threshold:.4f} (policy `{metadata.threshold_policy}`)",
        f"- Features ({len(metadata.features)}): {', '.join(metadata.features)}",
        f"- Categorical: {', '.join(metadata.categorical) or 'none'}",
        "- Parameters: " + ", ".join(f"{k}={v}" for k, v in sorted(metadata.params.items())),
        "",
        "## Training data",
        f"- Data version (DVC md5 of the training set): `{metadata.data_version or 'unknown'}`",
    ]
    splits = extra.get("training_set") or {}
    for name, info in splits.items():
        batches = info.get("batches", [])
        span = f"{batches[0]} .. {batches[-1]}" if batches else "none"
        lines.append(
            f"- {name}: {info.get('rows')} rows, positive rate {_fmt(info.get('positive_rate'))}, "
            f"batches {span}"
        )
    if metadata.metrics:
        lines += ["", "## Validation metrics (early-stopping split)"]
        lines += [f"- {k}: {_fmt(v)}" for k, v in sorted(metadata.metrics.items())]
    explained = extra.get("explanation_agreement")
    if explained:
        lines += [
            "",
            f"## Explanations: SHAP vs LIME ({explained.get('rows')} {explained.get('split', '')} "
            "rows)",
            f"- Top-{explained.get('top_k')} overlap: {_fmt(explained.get('top_k_overlap'))} "
            "(mean share of SHAP's top features that LIME also ranks in its top; the reasons "
            "served with each score are SHAP's)",
            f"- Rank correlation: {_fmt(explained.get('rank_correlation'))} (mean Spearman "
            "correlation of |SHAP| and |LIME| over all features)",
            f"- LIME: {explained.get('lime_samples')} perturbations from the reference profile, "
            f"seed {explained.get('seed')} (`GET /explain/{{id}}?method=lime`, "
            "`scoreloop explain ID --method lime`)",
        ]
    if evaluation:
        models = evaluation.get("models", {})
        roles = list(models)
        lines += [
            "",
            f"## Holdout evaluation ({evaluation.get('holdout_rows')} rows, out of time)",
            "",
            "| metric | "
            + " | ".join(f"{r} {models[r].get('version') or ''}" for r in roles)
            + " |",
            "|---|" + "---|" * len(roles),
        ]
        for metric in CARD_METRICS:
            lines.append(
                f"| {metric} | "
                + " | ".join(_fmt(models[r]["overall"].get(metric)) for r in roles)
                + " |"
            )
        challenger = models.get("challenger")
        if challenger:
            lines += ["", "### Slices (challenger ROC AUC, rows)"]
            for column, values in challenger["slices"].items():
                cells = ", ".join(
                    f"{v}: {_fmt(s.get('roc_auc'))} ({s['rows']})" for v, s in values.items()
                )
                lines.append(f"- {column}: {cells}")
    if decision:
        lines += [
            "",
            f"## Gate decision: {decision.get('decision', '?')}",
            *[f"- {reason}" for reason in decision.get("reasons", [])],
        ]
    lines += [
        "",
        "## Intended use and limits",
        "- Scores entities of the same population and feature definitions as the dataset spec.",
        "- Watch drift against the reference profile stored in metadata.json; retrain when "
        "realised performance drops.",
        "",
    ]
    return "\n".join(lines)

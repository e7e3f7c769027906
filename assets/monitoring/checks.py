"""The monitoring assets' checks: both non-blocking (WARN), each built from a typed result."""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from pipelines.monitor import DriftResult, EstimateResult, PerformanceResult

DRIFT = dg.AssetKey("drift")
PERFORMANCE = dg.AssetKey("performance")
NO_FEATURE_DRIFT = "no_feature_drift"
AUC_WITHIN_TOLERANCE = "auc_within_tolerance"
ESTIMATED = dg.AssetKey("estimated_performance")
ESTIMATED_AUC_WITHIN_TOLERANCE = "estimated_auc_within_tolerance"

SPECS = {
    DRIFT: dg.AssetCheckSpec(
        NO_FEATURE_DRIFT,
        asset=DRIFT,
        blocking=False,
        description="Every feature's PSI, unseen share and the score PSI are within the "
        "monitoring thresholds of params.yaml (warning only).",
    ),
    PERFORMANCE: dg.AssetCheckSpec(
        AUC_WITHIN_TOLERANCE,
        asset=PERFORMANCE,
        blocking=False,
        description="Realised ROC AUC >= the champion's reference AUC - "
        "monitoring.auc_tolerance (warning only).",
    ),
    ESTIMATED: dg.AssetCheckSpec(
        ESTIMATED_AUC_WITHIN_TOLERANCE,
        asset=ESTIMATED,
        blocking=False,
        description="Estimated (CBPE) ROC AUC >= the champion's reference AUC - "
        "monitoring.auc_tolerance (warning only; before labels land).",
    ),
}


def _warning(
    key: dg.AssetKey, passed: bool, description: str, metadata: Mapping[str, Any]
) -> dg.AssetCheckResult:
    """The result of ``key``'s check: a failure is a warning, never blocks the asset."""
    return dg.AssetCheckResult(
        check_name=SPECS[key].name,
        asset_key=key,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata=metadata,
    )


def not_measured(key: dg.AssetKey, why: str) -> dg.AssetCheckResult:
    """The check's result when nothing was measured (the asset is not materialised)."""
    return _warning(key, True, f"not measured: {why}", {"measured": False})


def no_feature_drift(result: DriftResult) -> dg.AssetCheckResult:
    drifted = result.report.drifted
    return _warning(
        DRIFT,
        result.passed,
        result.summary,
        {
            "drifted": dg.MetadataValue.json(drifted.drop("computed_at").to_dicts()),
            "psi_threshold": dg.MetadataValue.float(result.psi_threshold),
        },
    )


def auc_within_tolerance(result: PerformanceResult) -> dg.AssetCheckResult:
    return _warning(PERFORMANCE, result.passed, result.summary, {})


def estimated_auc_within_tolerance(result: EstimateResult, tolerance: float) -> dg.AssetCheckResult:
    estimated, reference = result.estimated_auc, result.reference_auc
    passed = estimated is None or reference is None or estimated >= reference - tolerance
    return _warning(ESTIMATED, passed, result.summary, {"tolerance": tolerance})

"""The promotion gate: a pure function from an evaluation to a decision with its reasons.

Promote when there is no champion, or when the challenger

* beats the champion on the primary metric by at least ``min_delta``,
* meets the absolute floor on the primary metric, and
* loses no more than ``slice_tolerance`` on the primary metric in any slice value with at least
  ``slice_min_rows`` holdout rows.

Without a champion the floor still applies: a model below it is never served.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipelines.evaluate import HIGHER_IS_BETTER
from pipelines.params import Params

Metric = Literal["roc_auc", "pr_auc", "log_loss", "brier"]


class GateParams(BaseModel):
    """``gate`` section of params.yaml."""

    model_config = ConfigDict(extra="forbid")

    primary_metric: Metric = "roc_auc"
    min_delta: float = Field(0.0, description="Required improvement over the champion.")
    absolute_floor: float = Field(0.75, description="The challenger must reach this value.")
    slice_tolerance: float = Field(0.02, ge=0, description="Allowed loss in any slice value.")
    slice_min_rows: int = Field(200, ge=1, description="Smaller slice values are not judged.")

    @classmethod
    def from_params(cls, params: Params) -> GateParams:
        return cls.model_validate(params.section("gate"))


@dataclass
class GateCheck:
    """One rule of the gate, with the numbers it was judged on."""

    name: str
    passed: bool
    detail: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class GateDecision:
    """The gate's verdict: promote or not, every check, and a one-line reason per failure."""

    promote: bool
    primary_metric: str
    challenger_version: str | None
    champion_version: str | None
    challenger_value: float | None
    champion_value: float | None
    checks: list[GateCheck]
    forced: bool = False
    force_reason: str = ""

    @property
    def reasons(self) -> list[str]:
        if self.promote and not self.forced:
            return [c.detail for c in self.checks]
        failed = [c.detail for c in self.checks if not c.passed]
        if self.forced:
            return [f"forced: {self.force_reason}", *failed]
        return failed

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = self.reasons
        data["decision"] = "promote" if self.promote else "reject"
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateDecision:
        """The decision :meth:`to_dict` wrote (its derived ``reasons``/``decision`` are dropped)."""
        fields = {k: v for k, v in data.items() if k not in ("reasons", "decision", "checks")}
        return cls(**fields, checks=[GateCheck(**check) for check in data["checks"]])


def _better(metric: str, a: float, b: float) -> float:
    """How much ``a`` is better than ``b`` (positive = better), whatever the metric's direction."""
    return a - b if HIGHER_IS_BETTER[metric] else b - a


def decide(evaluation: dict[str, Any], params: GateParams) -> GateDecision:
    """Judge the challenger of an evaluation (see :func:`pipelines.evaluate.evaluate_models`)."""
    metric = params.primary_metric
    models = evaluation.get("models", {})
    if "challenger" not in models:
        raise ValueError("the evaluation has no challenger")
    challenger = models["challenger"]
    champion = models.get("champion")
    value = challenger["overall"].get(metric)
    checks: list[GateCheck] = []

    if value is None:
        checks.append(GateCheck("floor", False, f"challenger {metric} is undefined on holdout"))
    else:
        ok = _better(metric, value, params.absolute_floor) >= 0
        checks.append(
            GateCheck(
                "floor",
                ok,
                f"challenger {metric} {value:.4f} {'meets' if ok else 'is below'} the floor "
                f"{params.absolute_floor:.4f}",
                {"challenger": value, "floor": params.absolute_floor},
            )
        )

    champion_value = None
    if champion is None:
        checks.append(GateCheck("champion", True, "no champion yet: nothing to beat"))
    else:
        champion_value = champion["overall"].get(metric)
        if value is None or champion_value is None:
            checks.append(GateCheck("improvement", False, f"{metric} undefined, cannot compare"))
        else:
            delta = _better(metric, value, champion_value)
            ok = delta >= params.min_delta
            checks.append(
                GateCheck(
                    "improvement",
                    ok,
                    f"challenger {metric} {value:.4f} vs champion {champion_value:.4f}: "
                    f"{'+' if delta >= 0 else ''}{delta:.4f} "
                    f"({'>=' if ok else '<'} min_delta {params.min_delta:.4f})",
                    {"challenger": value, "champion": champion_value, "delta": delta},
                )
            )
        worst: tuple[float, str] | None = None
        judged = 0
        for column, values in challenger["slices"].items():
            for slice_value, stats in values.items():
                theirs = champion["slices"].get(column, {}).get(slice_value)
                if theirs is None or stats["rows"] < params.slice_min_rows:
                    continue
                ours_v, theirs_v = stats.get(metric), theirs.get(metric)
                if ours_v is None or theirs_v is None:
                    continue
                judged += 1
                delta = _better(metric, ours_v, theirs_v)
                if worst is None or delta < worst[0]:
                    worst = (delta, f"{column}={slice_value}")
        if worst is None:
            checks.append(
                GateCheck(
                    "slices", True, f"no slice value has >= {params.slice_min_rows} holdout rows"
                )
            )
        else:
            ok = worst[0] >= -params.slice_tolerance
            checks.append(
                GateCheck(
                    "slices",
                    ok,
                    f"worst slice {worst[1]}: {metric} {worst[0]:+.4f} vs champion "
                    f"({'within' if ok else 'beyond'} tolerance {params.slice_tolerance:.4f}, "
                    f"{judged} slice values judged)",
                    {"worst_slice": worst[1], "delta": worst[0], "judged": judged},
                )
            )
    return GateDecision(
        promote=all(c.passed for c in checks),
        primary_metric=metric,
        challenger_version=challenger.get("version"),
        champion_version=None if champion is None else champion.get("version"),
        challenger_value=value,
        champion_value=champion_value,
        checks=checks,
    )


def force(decision: GateDecision, reason: str) -> GateDecision:
    """Override a refusal by hand; the reason is mandatory and recorded."""
    if not reason.strip():
        raise ValueError("a forced promotion needs a reason (--reason TEXT)")
    decision.promote = True
    decision.forced = True
    decision.force_reason = reason.strip()
    return decision

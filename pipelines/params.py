"""params.yaml: the knobs of the pipeline and of the DVC chain, typed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field


class ValidationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_reject_rate: float = Field(0.05, ge=0.0, le=1.0)


class SimulateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = 7
    batches_per_period: int = Field(12, ge=1)
    label_lag: int = Field(2, ge=0)


class Params(BaseModel):
    """All sections of params.yaml; sections added by later steps are kept as raw dicts."""

    model_config = ConfigDict(extra="allow")
    validation: ValidationParams = ValidationParams()
    simulate: SimulateParams = SimulateParams()

    def section(self, name: str) -> dict[str, Any]:
        extra = self.model_extra or {}
        value = extra.get(name, {})
        return dict(value) if isinstance(value, dict) else {}


def load_params(path: Path) -> Params:
    """Read params.yaml; a missing file gives the defaults."""
    if not Path(path).exists():
        return Params()
    raw = yaml.safe_load(Path(path).read_text()) or {}
    return Params.model_validate(raw)

"""The dataset spec: one YAML file that says what a table looks like.

Everything downstream (pandera schema, features, drift reference, slices) is derived from it, so a
new binary-classification table plugs in by writing (or inferring) one spec and nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.errors import ScoreloopError
from pipelines.naming import registered_name
from pipelines.reading import SourceSpec

DType = Literal["int", "float", "string", "bool"]

POLARS_DTYPES: dict[str, pl.DataType] = {
    "int": pl.Int64(),
    "float": pl.Float64(),
    "string": pl.String(),
    "bool": pl.Boolean(),
}

#: How a time column's values are grouped into periods when the table is cut into batches.
BatchBy = Literal["year", "month", "week", "day", "rows"]


class SpecError(ScoreloopError, ValueError):
    """A spec file is malformed or does not match the data it describes."""


class ColumnSpec(BaseModel):
    """One feature column."""

    model_config = ConfigDict(extra="forbid")

    name: str
    dtype: DType
    categorical: bool = False
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = Field(
        default=None, description="Allowed values of a categorical column, as strings."
    )
    description: str | None = None

    @model_validator(mode="after")
    def _check(self) -> ColumnSpec:
        if self.categorical and self.dtype == "float":
            raise SpecError(f"column {self.name!r}: a float column cannot be categorical")
        if self.allowed is not None and not self.categorical:
            raise SpecError(f"column {self.name!r}: 'allowed' is only for categorical columns")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise SpecError(f"column {self.name!r}: min {self.min} > max {self.max}")
        return self

    @property
    def polars_dtype(self) -> pl.DataType:
        return POLARS_DTYPES[self.dtype]


class KeySpec(BaseModel):
    """The id, event-time or target column.

    ``generated`` (id only): made by ``dataset infer`` as the row's 0-based position in the source
    file, header excluded, so ``pl.scan_csv(...).with_row_index(name)`` joins scores back.
    ``format`` (time only): strptime format of a text time column in the source; records carry
    the parsed time as ISO text. ``batch_by`` (time only): how the simulator groups times into
    periods; None keeps the original reading (every distinct value is a period).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    dtype: DType
    generated: bool | None = None
    format: str | None = None
    batch_by: BatchBy | None = None

    @property
    def polars_dtype(self) -> pl.DataType:
        return POLARS_DTYPES[self.dtype]


class DatasetSpec(BaseModel):
    """A binary-classification table: id, event time, target, features and slices."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    model_name: str | None = Field(
        default=None, description="Name of the model in the registry (default: the dataset name)."
    )
    source: SourceSpec | None = Field(
        default=None, description="How the source file is read (CSV dialect, missing markers)."
    )
    id: KeySpec
    time: KeySpec
    target: KeySpec
    positive_label: int | str | bool = 1
    negative_label: int | str | bool = 0
    features: list[ColumnSpec]
    slices: list[str] = Field(default_factory=list)
    class_weights: Literal["balanced"] | None = None

    @model_validator(mode="after")
    def _check(self) -> DatasetSpec:
        if self.target.generated or self.target.format or self.target.batch_by:
            raise SpecError("target: generated, format and batch_by are for id and time only")
        names = [c.name for c in self.features]
        if not names:
            raise SpecError("a spec needs at least one feature")
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise SpecError(f"duplicate feature names: {sorted(dupes)}")
        keys = {self.id.name, self.time.name, self.target.name}
        if len(keys) != 3:
            raise SpecError("id, time and target must be three different columns")
        clash = keys & set(names)
        if clash:
            raise SpecError(f"{sorted(clash)} cannot be both a key column and a feature")
        unknown = [s for s in self.slices if s not in names]
        if unknown:
            raise SpecError(f"slice columns {unknown} are not features of the spec")
        return self

    @property
    def registered_name(self) -> str:
        """The model's name in the registry: ``model_name``, else the dataset's name."""
        return registered_name(self.model_name, self.name)

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.features]

    @property
    def categorical_names(self) -> list[str]:
        return [c.name for c in self.features if c.categorical]

    def feature(self, name: str) -> ColumnSpec:
        for column in self.features:
            if column.name == name:
                return column
        raise KeyError(f"{name!r} is not a feature of spec {self.name!r}")

    @property
    def record_columns(self) -> list[str]:
        """Columns of an unlabelled batch record: id, time, features (in spec order)."""
        return [self.id.name, self.time.name, *self.feature_names]

    @property
    def record_schema(self) -> dict[str, pl.DataType]:
        schema = {self.id.name: self.id.polars_dtype, self.time.name: self.time.polars_dtype}
        schema.update({c.name: c.polars_dtype for c in self.features})
        return schema

    @property
    def label_schema(self) -> dict[str, pl.DataType]:
        return {self.id.name: self.id.polars_dtype, self.target.name: self.target.polars_dtype}

    def to_yaml(self) -> str:
        return yaml.safe_dump(
            self.model_dump(mode="json", exclude_none=True),
            sort_keys=False,
            width=100,
        )


def load_spec(path: str | Path) -> DatasetSpec:
    """Load and check a spec file; errors name the file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise SpecError(f"spec file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a spec must be a YAML mapping")
    try:
        return DatasetSpec.model_validate(raw)
    except (ValueError, TypeError) as exc:
        raise SpecError(f"{path}: {exc}") from exc


def save_spec(spec: DatasetSpec, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(spec.to_yaml())
    return path

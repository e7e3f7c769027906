"""The dataset spec: one YAML file that says what a table looks like.

Everything downstream (pandera schema, features, drift reference, slices) is derived from it, so a
new binary-classification table plugs in by writing (or inferring) one spec and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.errors import ScoreloopError

DType = Literal["int", "float", "string", "bool"]

POLARS_DTYPES: dict[str, pl.DataType] = {
    "int": pl.Int64(),
    "float": pl.Float64(),
    "string": pl.String(),
    "bool": pl.Boolean(),
}

#: Above this many distinct values an integer or string column is not drafted as categorical.
MAX_INFERRED_CATEGORIES = 64


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
    """The id, event-time or target column."""

    model_config = ConfigDict(extra="forbid")

    name: str
    dtype: DType

    @property
    def polars_dtype(self) -> pl.DataType:
        return POLARS_DTYPES[self.dtype]


class DatasetSpec(BaseModel):
    """A binary-classification table: id, event time, target, features and slices."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
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
            self.model_dump(mode="json", exclude_none=True), sort_keys=False, width=100
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


def _dtype_of(dtype: pl.DataType, column: str) -> DType:
    if dtype.is_integer():
        return "int"
    if dtype.is_float() or dtype.is_decimal():
        return "float"
    if dtype == pl.Boolean:
        return "bool"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return "string"
    raise SpecError(f"column {column!r} has type {dtype}, which a spec cannot describe")


def read_table(path: str | Path) -> pl.DataFrame:
    """Read a parquet or CSV file whole (used to draft a spec and by the simulator)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        return pl.read_parquet(path)
    if suffix == ".csv":
        return pl.read_csv(path, infer_schema_length=10_000)
    raise SpecError(f"{path}: unsupported format {suffix!r} (use .parquet or .csv)")


def _sorted_categories(values: Iterable[str]) -> list[str]:
    """Numeric codes in numeric order ('2' before '10'), anything else alphabetically."""
    items = list(values)
    if all(v.lstrip("-").isdigit() for v in items):
        return sorted(items, key=int)
    return sorted(items)


def infer_spec(
    df: pl.DataFrame,
    *,
    name: str,
    target: str,
    id_column: str,
    time_column: str | None = None,
    slices: Sequence[str] = (),
) -> DatasetSpec:
    """Draft a spec from a table: types, categorical flags, ranges and allowed sets from the data.

    Without a time column, a ``batch`` column is expected to be added when the table is cut
    into batches; the draft then names ``batch`` (string) as the event-time column.
    """
    for needed in (target, id_column, *([time_column] if time_column else [])):
        if needed not in df.columns:
            raise SpecError(f"column {needed!r} is not in the table (columns: {df.columns})")
    if df[target].drop_nulls().n_unique() != 2:
        raise SpecError(
            f"target {target!r} must have exactly two classes, found "
            f"{df[target].drop_nulls().unique().to_list()[:10]}"
        )
    keys = {target, id_column, *([time_column] if time_column else [])}
    features: list[ColumnSpec] = []
    for column in df.columns:
        if column in keys:
            continue
        series = df[column]
        dtype = _dtype_of(series.dtype, column)
        nullable = series.null_count() > 0
        non_null = series.drop_nulls()
        n_unique = non_null.n_unique()
        categorical = dtype in {"string", "bool"} or (
            dtype == "int" and n_unique <= MAX_INFERRED_CATEGORIES
        )
        if dtype == "string" and n_unique > MAX_INFERRED_CATEGORIES:
            categorical = True  # free text is still a category to CatBoost; no allowed set
            allowed = None
        elif categorical:
            # the same text a value gets when validation casts it to String ("true", not "True")
            allowed = _sorted_categories(non_null.cast(pl.String).unique().to_list())
        else:
            allowed = None
        lo = hi = None
        if not categorical and len(non_null):
            lo, hi = float(non_null.min()), float(non_null.max())  # type: ignore[arg-type]
        features.append(
            ColumnSpec(
                name=column,
                dtype="string" if categorical else dtype,
                categorical=categorical,
                nullable=nullable,
                min=lo,
                max=hi,
                allowed=allowed,
            )
        )
    target_dtype = _dtype_of(df[target].dtype, target)
    negative, positive = sorted(df[target].drop_nulls().unique().to_list())
    return DatasetSpec(
        name=name,
        id=KeySpec(name=id_column, dtype=_dtype_of(df[id_column].dtype, id_column)),
        time=KeySpec(
            name=time_column or "batch",
            dtype=_dtype_of(df[time_column].dtype, time_column) if time_column else "string",
        ),
        target=KeySpec(name=target, dtype=target_dtype),
        positive_label=positive,
        negative_label=negative,
        features=features,
        slices=list(slices),
    )

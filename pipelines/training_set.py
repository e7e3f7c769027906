"""The training set: validated rows joined with their labels, split by event time.

Only batches accepted on both sides (records and labels, :func:`pipelines.ingest.accepted_batches`)
are used, and only the newest ``split.window_batches`` of them (none newer than ``split.until``
when that is set: ``until: "2015-12"`` trains as of the end of 2015). Batch ids sort in event-time
order (``2015-01`` < ``2015-02`` ...): the oldest batches of the window train the model, the next
``validation_batches`` drive early stopping and the threshold, and the newest ``holdout_batches``
are held out for the comparison with the champion (an out-of-time holdout).

A :class:`Selection` pins exactly what was read (batch ids and Delta table versions), so the same
selection rebuilds the same file; that is what the ``training_set`` DVC stage depends on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.errors import ScoreloopError
from pipelines.ingest import LABELS, VALIDATED, accepted_batches, labels_schema, validated_schema
from pipelines.params import Params
from pipelines.spec import DatasetSpec
from pipelines.tables import read_table, table_uri, table_version

SPLIT_COLUMN = "split"
LABEL_COLUMN = "label"
BATCH_COLUMN = "batch_id"
SPLITS = ("train", "validation", "holdout")


class TrainingSetError(ScoreloopError, ValueError):
    """The training set cannot be built (too few rows, one class, missing columns, ...)."""


class SplitParams(BaseModel):
    """``split`` section of params.yaml."""

    model_config = ConfigDict(extra="forbid")

    window_batches: int = Field(12, ge=3, description="Newest labelled batches used at all.")
    validation_batches: int = Field(1, ge=1)
    holdout_batches: int = Field(2, ge=1)
    min_rows: int = Field(200, ge=1, description="Minimum labelled rows in every split.")
    until: str | None = Field(
        None,
        description="Newest batch id the window may include (inclusive), to train as of a past "
        "batch; None = the newest labelled batch.",
    )

    @model_validator(mode="after")
    def _check(self) -> SplitParams:
        if self.validation_batches + self.holdout_batches >= self.window_batches:
            raise ValueError(
                f"split: window_batches ({self.window_batches}) must be larger than "
                f"validation_batches + holdout_batches "
                f"({self.validation_batches + self.holdout_batches})"
            )
        return self

    @classmethod
    def from_params(cls, params: Params) -> SplitParams:
        return cls.model_validate(params.section("split"))


@dataclass(frozen=True)
class Selection:
    """Which batches (at which table versions) a training set is built from."""

    train: list[str]
    validation: list[str]
    holdout: list[str]
    validated_version: int
    labels_version: int

    @property
    def batches(self) -> list[str]:
        return [*self.train, *self.validation, *self.holdout]

    def split_of(self) -> dict[str, str]:
        return {
            **dict.fromkeys(self.train, "train"),
            **dict.fromkeys(self.validation, "validation"),
            **dict.fromkeys(self.holdout, "holdout"),
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Selection:
        try:
            return cls(
                train=list(data["train"]),
                validation=list(data["validation"]),
                holdout=list(data["holdout"]),
                validated_version=int(data["validated_version"]),
                labels_version=int(data["labels_version"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TrainingSetError(f"malformed selection {data!r}: {exc}") from exc

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> Selection:
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except FileNotFoundError as exc:
            raise TrainingSetError(f"selection file not found: {path}") from exc
        except json.JSONDecodeError as exc:
            raise TrainingSetError(f"selection file {path} is not JSON: {exc}") from exc


def select_batches(table_root: str, split: SplitParams) -> Selection:
    """Pick the newest labelled, accepted batches and cut them into train/validation/holdout."""
    records_uri = table_uri(table_root, VALIDATED)
    labels_uri = table_uri(table_root, LABELS)
    validated_version = table_version(records_uri)
    labels_version = table_version(labels_uri)
    if validated_version is None or labels_version is None:
        raise TrainingSetError(
            f"no validated batches or no labels under {table_root}: ingest batches and their "
            f"labels first"
        )
    try:
        records = set(accepted_batches(table_root, "records"))
        labelled = set(accepted_batches(table_root, "labels"))
    except FileNotFoundError as exc:
        raise TrainingSetError(f"no ingest log under {table_root}: {exc}") from exc
    candidates = records & labelled
    if split.until is not None:
        candidates = {b for b in candidates if b <= split.until}
    usable = sorted(candidates)[-split.window_batches :]
    needed = split.validation_batches + split.holdout_batches + 1
    if len(usable) < needed:
        until = f" up to split.until {split.until!r}" if split.until is not None else ""
        raise TrainingSetError(
            f"only {len(usable)} batch(es){until} are accepted with accepted labels under "
            f"{table_root} ({usable}); the split needs at least {needed} (1 train + "
            f"{split.validation_batches} validation + {split.holdout_batches} holdout)"
        )
    n_train = len(usable) - split.validation_batches - split.holdout_batches
    return Selection(
        train=usable[:n_train],
        validation=usable[n_train : n_train + split.validation_batches],
        holdout=usable[n_train + split.validation_batches :],
        validated_version=validated_version,
        labels_version=labels_version,
    )


def build_training_set(
    selection: Selection, spec: DatasetSpec, table_root: str, split: SplitParams
) -> pl.DataFrame:
    """Join validated rows with labels for the selected batches, at the pinned table versions.

    Columns: id, batch_id, time, spec features, target, ``label`` (1 = positive class) and
    ``split``. Rows are sorted by (batch_id, id), so the same selection gives the same file.
    """
    batches = selection.batches
    records = read_table(
        table_uri(table_root, VALIDATED),
        schema=validated_schema(spec),
        version=selection.validated_version,
    )
    missing = [c for c in spec.record_columns if c not in records.columns]
    if missing:
        raise TrainingSetError(
            f"feature column(s) {missing} of spec {spec.name!r} are missing from the validated "
            f"table under {table_root} (columns: {records.columns})"
        )
    labels = read_table(
        table_uri(table_root, LABELS),
        schema=labels_schema(spec),
        version=selection.labels_version,
    )
    if spec.target.name not in labels.columns:
        raise TrainingSetError(f"target {spec.target.name!r} is missing from the labels table")
    key = [spec.id.name, BATCH_COLUMN]
    records = records.filter(pl.col(BATCH_COLUMN).is_in(batches)).select(
        [*spec.record_columns, BATCH_COLUMN]
    )
    labels = labels.filter(pl.col(BATCH_COLUMN).is_in(batches)).select([*key, spec.target.name])
    split_of = selection.split_of()
    positive = pl.lit(spec.positive_label).cast(labels.schema[spec.target.name])
    frame = (
        records.join(labels, on=key, how="inner")
        .with_columns(
            (pl.col(spec.target.name) == positive).cast(pl.Int8).alias(LABEL_COLUMN),
            pl.col(BATCH_COLUMN)
            .replace_strict(split_of, return_dtype=pl.String)
            .alias(SPLIT_COLUMN),
        )
        .sort(BATCH_COLUMN, spec.id.name)
        .select(
            spec.id.name,
            BATCH_COLUMN,
            spec.time.name,
            *spec.feature_names,
            spec.target.name,
            LABEL_COLUMN,
            SPLIT_COLUMN,
        )
    )
    check_training_set(frame, split)
    return frame


def check_training_set(frame: pl.DataFrame, split: SplitParams) -> None:
    """Every split has enough rows and both classes; otherwise a clear error."""
    for name in SPLITS:
        part = frame.filter(pl.col(SPLIT_COLUMN) == name)
        if part.height < split.min_rows:
            raise TrainingSetError(
                f"too few labelled rows in the {name} split: {part.height} < split.min_rows "
                f"{split.min_rows} (batches {sorted(part[BATCH_COLUMN].unique().to_list())}); "
                f"wait for more labels or lower split.min_rows in params.yaml"
            )
        classes = part[LABEL_COLUMN].n_unique()
        if classes < 2:
            value = part[LABEL_COLUMN][0]
            raise TrainingSetError(
                f"the {name} split has a single class (every label is {value}) in "
                f"{part.height} rows: a binary classifier needs both classes"
            )


def write_training_set(frame: pl.DataFrame, path: Path) -> Path:
    """Write the parquet file atomically (a failed run leaves no half file behind)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.write_parquet(tmp, compression="zstd", statistics=False)
    tmp.replace(path)
    return path


def read_training_set(path: Path, spec: DatasetSpec) -> pl.DataFrame:
    """Read a training set file and check it carries what training needs."""
    try:
        frame = pl.read_parquet(path)
    except FileNotFoundError as exc:
        raise TrainingSetError(f"training set not found: {path}") from exc
    except Exception as exc:
        raise TrainingSetError(f"training set {path} cannot be read: {exc}") from exc
    needed = [*spec.feature_names, LABEL_COLUMN, SPLIT_COLUMN]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise TrainingSetError(f"training set {path} lacks column(s) {missing}")
    return frame


def split_frame(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    return frame.filter(pl.col(SPLIT_COLUMN) == name)


def summary(frame: pl.DataFrame) -> dict[str, Any]:
    """Rows, positives and batches per split (for metadata and the model card)."""
    out: dict[str, Any] = {}
    for name in SPLITS:
        part = split_frame(frame, name)
        out[name] = {
            "rows": part.height,
            "positive_rate": round(float(part[LABEL_COLUMN].to_numpy().mean()), 4)
            if part.height
            else None,
            "batches": sorted(part[BATCH_COLUMN].unique().to_list()),
        }
    return out

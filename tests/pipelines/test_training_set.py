"""Training set: batch selection, event-time split, deterministic file, clear errors."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from support.retraining import build_tables

from pipelines.settings import BUNDLED_SPEC
from pipelines.spec import ColumnSpec, DatasetSpec, load_spec
from pipelines.training_set import (
    LABEL_COLUMN,
    SPLIT_COLUMN,
    Selection,
    SplitParams,
    TrainingSetError,
    build_training_set,
    read_training_set,
    select_batches,
    write_training_set,
)

SPLIT = SplitParams(window_batches=6, validation_batches=1, holdout_batches=2, min_rows=100)


@pytest.fixture(scope="module")
def tables(acs: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> str:
    """8 batches of 500 rows (2015-01..2015-04, 2016-01..2016-04), all labelled."""
    spec = load_spec(BUNDLED_SPEC)
    return build_tables(acs, spec, tmp_path_factory.mktemp("tables"), rows_per_year=2000)


def test_selection_takes_newest_window_in_event_time_order(tables: str) -> None:
    selection = select_batches(tables, SPLIT)
    assert selection.train == ["2015-03", "2015-04", "2016-01"]
    assert selection.validation == ["2016-02"]
    assert selection.holdout == ["2016-03", "2016-04"]
    assert selection.validated_version >= 0 and selection.labels_version >= 0


def test_training_set_joins_labels_and_splits(tables: str, spec: DatasetSpec) -> None:
    selection = select_batches(tables, SPLIT)
    frame = build_training_set(selection, spec, tables, SPLIT)
    assert frame.height == 6 * 500
    assert frame[spec.id.name].n_unique() == frame.height
    counts = dict(frame.group_by(SPLIT_COLUMN).len().iter_rows())
    assert counts == {"train": 1500, "validation": 500, "holdout": 1000}
    # The newest batches are the holdout: out-of-time evaluation.
    holdout = frame.filter(pl.col(SPLIT_COLUMN) == "holdout")["batch_id"].unique().sort()
    assert holdout.to_list() == ["2016-03", "2016-04"]
    assert set(frame[LABEL_COLUMN].unique().to_list()) == {0, 1}
    assert (frame[LABEL_COLUMN] == frame[spec.target.name]).all()


def test_same_selection_gives_byte_identical_file(
    tables: str, spec: DatasetSpec, tmp_path: Path
) -> None:
    selection = select_batches(tables, SPLIT)
    saved = Selection.load(selection.save(tmp_path / "selection.json"))
    assert saved == selection
    a = write_training_set(build_training_set(selection, spec, tables, SPLIT), tmp_path / "a.pq")
    b = write_training_set(build_training_set(saved, spec, tables, SPLIT), tmp_path / "b.pq")
    assert a.read_bytes() == b.read_bytes()
    assert read_training_set(a, spec).height == 3000


def test_too_few_rows_is_a_clear_error(tables: str, spec: DatasetSpec) -> None:
    split = SPLIT.model_copy(update={"min_rows": 5000})
    with pytest.raises(TrainingSetError, match="too few labelled rows in the train split"):
        build_training_set(select_batches(tables, split), spec, tables, split)


def test_too_few_batches_is_a_clear_error(tables: str) -> None:
    split = SplitParams(window_batches=12, validation_batches=4, holdout_batches=5, min_rows=1)
    with pytest.raises(TrainingSetError, match="the split needs at least 10"):
        select_batches(tables, split)


def test_missing_feature_is_a_clear_error(tables: str, spec: DatasetSpec) -> None:
    spec.features.append(ColumnSpec(name="WKHP", dtype="float"))
    with pytest.raises(TrainingSetError, match=r"feature column\(s\) \['WKHP'\]"):
        build_training_set(select_batches(tables, SPLIT), spec, tables, SPLIT)


def test_single_class_is_a_clear_error(
    acs: pl.DataFrame, spec: DatasetSpec, tmp_path: Path
) -> None:
    root = build_tables(
        acs,
        spec,
        tmp_path,
        rows_per_year=600,
        batches_per_period=3,
        transform=lambda df: df.with_columns(
            pl.lit(1).cast(df["employed"].dtype).alias("employed")
        ),
    )
    split = SplitParams(window_batches=6, validation_batches=1, holdout_batches=1, min_rows=10)
    with pytest.raises(TrainingSetError, match="single class"):
        build_training_set(select_batches(root, split), spec, root, split)


def test_no_tables_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TrainingSetError, match="ingest batches and their labels first"):
        select_batches(str(tmp_path / "nothing"), SPLIT)


def test_window_must_exceed_validation_plus_holdout() -> None:
    with pytest.raises(ValueError, match="window_batches"):
        SplitParams(window_batches=3, validation_batches=1, holdout_batches=2)


def test_until_caps_the_window_at_a_batch(tables: str) -> None:
    selection = select_batches(tables, SPLIT.model_copy(update={"until": "2016-01"}))
    assert selection.train == ["2015-01", "2015-02"]
    assert selection.validation == ["2015-03"]
    assert selection.holdout == ["2015-04", "2016-01"]
    with pytest.raises(TrainingSetError, match=r"up to split\.until '2015-03'"):
        select_batches(tables, SPLIT.model_copy(update={"until": "2015-03"}))

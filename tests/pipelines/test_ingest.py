"""Ingesting landed files: tables, ingest log, idempotency, and the bad-input corpus.

The corpus (tests/data/bad_inputs/README.md) is generated at test time by the simulator from the
bundled data, one faulty batch per case; each case has its documented outcome (docs/data.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from pipelines.ingest import (
    INGEST_LOG,
    LABELS,
    LOG_SCHEMA,
    QUARANTINE,
    VALIDATED,
    IngestResult,
    accepted_batches,
    ingest_file,
    labels_schema,
    log_uri,
    parse_landing_name,
    validated_schema,
)
from pipelines.simulate import simulate
from pipelines.spec import DatasetSpec
from pipelines.tables import read_table, table_uri, table_version
from pipelines.validate import QUARANTINE_SCHEMA, BatchReadError

MAX_REJECT_RATE = 0.05


def tables(root: str) -> dict[str, str]:
    return {name: table_uri(root, name) for name in (VALIDATED, QUARANTINE, LABELS, INGEST_LOG)}


def read(root: str, name: str) -> pl.DataFrame:
    schemas = {QUARANTINE: QUARANTINE_SCHEMA, INGEST_LOG: LOG_SCHEMA}
    uri = log_uri(root, "records") if name == INGEST_LOG else table_uri(root, name)
    return read_table(uri, schema=schemas.get(name))


def ingest(path: Path, spec: DatasetSpec, root: str) -> IngestResult:
    return ingest_file(path, spec, root, max_reject_rate=MAX_REJECT_RATE)


def test_landing_names() -> None:
    assert parse_landing_name(Path("batch_2015-01.parquet")) == ("records", "2015-01")
    assert parse_landing_name(Path("labels_batch-03.csv")) == ("labels", "batch-03")
    for ignored in (".tmp-batch_2015-01.parquet", "batch_.parquet", "notes.txt", "batch_x.json"):
        assert parse_landing_name(Path(ignored)) is None


def test_accepted_refused_failed_and_idempotent(
    tmp_path: Path, acs_path: Path, spec: DatasetSpec
) -> None:
    landing = tmp_path / "landing"
    root = str(tmp_path / "tables")
    sim = simulate(
        spec,
        acs_path,
        landing,
        limit=3,
        faults={"2015-02": ["wrong_types"], "2015-03": ["truncated_file"]},
    )
    first = ingest(landing / "batch_2015-01.parquet", spec, root)
    assert first.status == "accepted" and first.validation.accepted == sim.rows["2015-01"]
    validated = read(root, VALIDATED)
    assert validated.schema == pl.Schema(validated_schema(spec))
    assert set(validated["data_version"]) == {first.data_version}

    # same file again: one copy, not two
    ingest(landing / "batch_2015-01.parquet", spec, root)
    assert read(root, VALIDATED).height == sim.rows["2015-01"]
    assert read(root, QUARANTINE).is_empty()

    # refused: every row to quarantine, nothing validated
    refused = ingest(landing / "batch_2015-02.csv", spec, root)
    assert refused.status == "refused"
    ingest(landing / "batch_2015-02.csv", spec, root)  # again: still one copy in quarantine
    q = read(root, QUARANTINE).filter(pl.col("batch_id") == "2015-02")
    assert q.height == sim.rows["2015-02"] and q["row"].n_unique() == q.height
    assert read(root, VALIDATED).filter(pl.col("batch_id") == "2015-02").is_empty()
    checks = q.select(pl.col("reasons").list.eval(pl.element().struct.field("check")))
    flat = set(checks.explode("reasons")["reasons"])
    assert flat == {"dtype(Float64)", "batch_refused"}

    # unreadable: logged as failed, no other table touched
    versions = {name: table_version(uri) for name, uri in tables(root).items()}
    with pytest.raises(BatchReadError, match="cannot be read as parquet") as info:
        ingest(landing / "batch_2015-03.parquet", spec, root)
    assert info.value.path == landing / "batch_2015-03.parquet"
    for name in (VALIDATED, QUARANTINE, LABELS):
        assert table_version(tables(root)[name]) == versions[name]
    log = read(root, INGEST_LOG).sort("batch_id")
    assert log["batch_id"].to_list() == ["2015-01", "2015-02", "2015-03"]
    assert log["status"].to_list() == ["accepted", "refused", "failed"]
    failed = log.row(2, named=True)
    assert "cannot be read as parquet" in failed["error"] and failed["data_version"] is None
    assert accepted_batches(root) == ["2015-01"]

    # a re-landed good file for a refused batch replaces the refusal
    fixed = simulate(spec, acs_path, tmp_path / "fixed", limit=2)
    ingest(fixed.records_files[1], spec, root)
    assert accepted_batches(root) == ["2015-01", "2015-02"]
    assert read(root, QUARANTINE).filter(pl.col("batch_id") == "2015-02").is_empty()
    assert read(root, VALIDATED).height == sim.rows["2015-01"] + sim.rows["2015-02"]


def test_labels_land_in_their_own_tables(tmp_path: Path, acs_path: Path, spec: DatasetSpec) -> None:
    landing = tmp_path / "landing"
    root = str(tmp_path / "tables")
    simulate(spec, acs_path, landing, limit=1)
    result = ingest(landing / "labels_2015-01.parquet", spec, root)
    assert result.kind == "labels" and result.status == "accepted"
    labels = read_table(table_uri(root, LABELS))
    assert labels.schema == pl.Schema(labels_schema(spec))
    assert accepted_batches(root, "labels") == ["2015-01"]
    assert accepted_batches(root, "records") == []
    bad = tmp_path / "labels_2015-02.csv"
    bad.write_text("id,employed\n1,yes\n2,1\n")
    rejected = ingest_file(bad, spec, root, max_reject_rate=1.0)
    assert rejected.validation.rejected == 1
    q = read_table(table_uri(root, f"{LABELS}_{QUARANTINE}"))
    assert q["reasons"][0][0]["check"] == "dtype(Int64)" and q["kind"][0] == "labels"


def test_a_file_with_an_unexpected_name_is_refused(tmp_path: Path, spec: DatasetSpec) -> None:
    path = tmp_path / "whatever.parquet"
    path.write_bytes(b"x")
    with pytest.raises(BatchReadError, match="name must look like"):
        ingest(path, spec, str(tmp_path / "tables"))


# ---------------------------------------------------------------------------------------------
# The bad-input corpus: each case, its documented outcome (docs/data.md, "Outcomes").


@dataclass(frozen=True)
class Case:
    faults: tuple[str, ...]
    outcome: str  # accepted | refused | failed
    checks: frozenset[str] = frozenset()  # checks the quarantined rows' reasons come from
    cause: str = ""  # for failed: part of the BatchReadError cause


CORPUS: dict[str, Case] = {
    "clean": Case((), "accepted"),
    "corrupt_rows": Case(
        ("corrupt_rows",),
        "accepted",
        frozenset({"min(0)", "max(95)", "finite", "not_nullable"}),
    ),
    "nan_inf": Case(
        ("nan_inf",), "accepted", frozenset({"finite", "max(95)", "min(0)", "not_nullable"})
    ),
    "missing_column": Case(("missing_column",), "failed", cause="missing column(s)"),
    "wrong_types": Case(("wrong_types",), "refused", frozenset({"dtype(Float64)"})),
    "unseen_categories": Case(("unseen_categories",), "accepted", frozenset({"allowed_values"})),
    "duplicate_ids": Case(("duplicate_ids",), "accepted", frozenset({"field_uniqueness"})),
    "nulls": Case(("nulls",), "accepted", frozenset({"not_nullable"})),
    "empty_file": Case(("empty_file",), "failed", cause="file is empty (0 bytes)"),
    "truncated_file": Case(("truncated_file",), "failed", cause="cannot be read as parquet"),
    "not_parquet": Case(("not_parquet",), "failed", cause="cannot be read as parquet"),
    "bad_encoding": Case(("bad_encoding",), "failed", cause="invalid utf-8"),
    "extra_columns": Case(("extra_columns",), "accepted"),
    "long_strings": Case(("long_strings",), "accepted", frozenset({"allowed_values"})),
    "wrong_id_type": Case(("wrong_id_type",), "accepted", frozenset({"dtype(Int64)"})),
    "float_ids": Case((), "accepted", frozenset({"dtype(Int64)"})),
    "header_only": Case((), "failed", cause="header but no rows"),
    "mixed_faults": Case(
        ("nulls", "unseen_categories", "duplicate_ids"),
        "refused",
        frozenset({"not_nullable", "allowed_values", "field_uniqueness"}),
    ),
}


@pytest.fixture(scope="module")
def corpus(
    tmp_path_factory: pytest.TempPathFactory, acs_path: Path
) -> tuple[DatasetSpec, dict[str, Path], dict[str, Path], Path]:
    """Land one batch per case (and a clean twin of each) and ingest-ready paths by case."""
    from pipelines.settings import BUNDLED_SPEC
    from pipelines.spec import load_spec

    spec = load_spec(BUNDLED_SPEC)
    base = tmp_path_factory.mktemp("corpus")
    cases = list(CORPUS)
    planned = [f"2015-{m:02d}" for m in range(1, 13)] + [f"2016-{m:02d}" for m in range(1, 13)]
    batch_of = dict(zip(cases, planned, strict=False))
    faults = {batch_of[name]: list(case.faults) for name, case in CORPUS.items() if case.faults}
    kwargs = {"seed": 3, "limit": len(cases)}
    bad = simulate(spec, acs_path, base / "bad", faults=faults, **kwargs)  # type: ignore[arg-type]
    clean = simulate(spec, acs_path, base / "clean", **kwargs)  # type: ignore[arg-type]
    by_batch = {p.stem.removeprefix("batch_"): p for p in bad.records_files}
    files = {name: by_batch[batch_of[name]] for name in cases}
    twins = {name: base / "clean" / f"batch_{batch_of[name]}.parquet" for name in cases}
    # the two cases the simulator has no fault for are made from their clean twin
    float_ids = pl.read_parquet(twins["float_ids"]).with_columns(
        pl.when(pl.int_range(pl.len()) % 50 == 0)
        .then(pl.col("id") + 0.5)
        .otherwise(pl.col("id").cast(pl.Float64))
        .alias("id")
    )
    float_ids.write_parquet(files["float_ids"])
    header = ",".join(spec.record_columns) + "\n"
    files["header_only"].unlink()
    files["header_only"] = files["header_only"].with_suffix(".csv")
    files["header_only"].write_text(header)
    assert clean.batches == bad.batches
    return spec, files, twins, base / "tables"


def changed_rows(faulty: pl.DataFrame, clean: pl.DataFrame, columns: list[str]) -> set[int]:
    """1-based rows whose spec columns differ between the faulty file and its clean twin."""

    def common(column: str) -> pl.DataType:
        both = (faulty.schema[column], clean.schema[column])
        return pl.Float64() if all(d.is_numeric() for d in both) else pl.String()

    a = faulty.select(pl.col(c).cast(common(c)) for c in columns).with_row_index("row", offset=1)
    b = clean.select(pl.col(c).cast(common(c)) for c in columns).with_row_index("row", offset=1)
    diff = a.join(b, on="row", suffix="_clean").filter(
        pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}_clean")) for c in columns])
    )
    return set(diff["row"].to_list())


@pytest.mark.parametrize("name", list(CORPUS))
def test_bad_input_corpus(
    name: str, corpus: tuple[DatasetSpec, dict[str, Path], dict[str, Path], Path]
) -> None:
    spec, files, twins, tables_root = corpus
    case = CORPUS[name]
    root = str(tables_root / name)
    path = files[name]
    if case.outcome == "failed":
        with pytest.raises(BatchReadError) as info:
            ingest(path, spec, root)
        assert info.value.path == path and case.cause in info.value.cause
        assert table_version(table_uri(root, VALIDATED)) is None
        assert table_version(table_uri(root, QUARANTINE)) is None
        assert read(root, INGEST_LOG)["status"].to_list() == ["failed"]
        return
    result = ingest(path, spec, root)
    v = result.validation
    assert v.status == case.outcome
    # nothing is lost: every row is either validated or quarantined, once
    validated, quarantine = read(root, VALIDATED), read(root, QUARANTINE)
    assert validated.height + quarantine.height == v.rows
    assert quarantine["row"].n_unique() == quarantine.height
    reasons = quarantine.select(
        "row", pl.col("reasons").list.eval(pl.element().struct.field("check")).alias("checks")
    )
    found = set(reasons.explode("checks")["checks"]) - {"batch_refused"}
    assert found == set(case.checks)
    assert set(quarantine["source_file"]) <= {str(path)}
    if name == "extra_columns":
        assert v.ignored_columns == ["unexpected_note", "unexpected_score"]
        assert read(root, INGEST_LOG)["ignored_columns"][0].to_list() == v.ignored_columns
    # the good part of the batch is intact: rows the fault did not touch are all accepted
    raw = pl.read_csv(path, infer_schema=False) if path.suffix == ".csv" else pl.read_parquet(path)
    twin = pl.read_parquet(twins[name])
    touched = changed_rows(raw, twin, spec.record_columns)
    rejected = set(
        reasons.filter(pl.col("checks").list.set_difference(["batch_refused"]).list.len() > 0)[
            "row"
        ].to_list()
    )
    if "duplicate_ids" in case.faults:
        # the first occurrence of a repeated id is rejected too (which row is the original?)
        dup_ids = set(raw["id"].filter(raw["id"].is_duplicated()).to_list())
        twins_of_dups = {i + 1 for i, x in enumerate(raw["id"].to_list()) if x in dup_ids}
        assert rejected == touched | twins_of_dups
    else:
        assert rejected == touched
    if v.status == "accepted":
        kept = [r - 1 for r in range(1, v.rows + 1) if r not in rejected]
        assert validated.sort("id")["id"].equals(twin["id"].gather(kept).sort())
    else:
        assert validated.is_empty()
        assert v.rejected / v.rows > MAX_REJECT_RATE

"""The hostile ingest corpus (``corpus/``, expected outcomes in ``corpus_cases.json``): every
file in a landing folder gets an outcome, odd names included, and huge values are stored clipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from pipelines.ingest import QUARANTINE, parse_landing_name
from pipelines.landing import ingest_log_entry
from pipelines.settings import Settings
from pipelines.tables import read_table, table_uri
from pipelines.validate import MAX_REASON_VALUE, QUARANTINE_SCHEMA
from scoreloop.cli import app

CORPUS = Path(__file__).parent / "corpus"
CASES = Path(__file__).parent / "corpus_cases.json"


def _cases() -> dict[str, dict[str, object]]:
    cases = json.loads(CASES.read_text())
    cases.pop("_about")
    return dict(cases)


def test_every_corpus_file_has_its_expected_outcome(settings: Settings) -> None:
    cases = _cases()
    on_disk = {p.name for p in CORPUS.iterdir()}
    assert on_disk == set(cases), "every corpus file needs an expected outcome in corpus_cases.json"
    assert len(cases) >= 10

    run = CliRunner().invoke(app, ["ingest", str(CORPUS)], env={"COLUMNS": "400"})
    output = " ".join(run.output.split())
    failed = [name for name, case in cases.items() if case["status"] == "failed"]
    assert run.exit_code == len(failed), run.output
    assert "Traceback" not in run.output
    assert f"{len(failed)} file(s) failed" in output

    quarantine = read_table(table_uri(settings.tables, QUARANTINE), schema=QUARANTINE_SCHEMA)
    labels_quarantine = read_table(
        table_uri(settings.tables, f"labels_{QUARANTINE}"), schema=QUARANTINE_SCHEMA
    )
    for name, case in cases.items():
        assert name in output, f"{name} has no row in the report"
        says = case.get("says")
        if says is not None and case["status"] == "failed":
            assert str(says) in output, f"{name}: {says!r} not reported"
        parsed = parse_landing_name(Path(name))
        if parsed is None:
            assert case["status"] == "failed"  # an odd name: reported, never ingested
            continue
        kind, batch_id = parsed
        entry = ingest_log_entry(settings.tables, kind, batch_id)
        assert entry is not None and entry["status"] == case["status"], (name, entry)
        if case["status"] == "failed":
            assert str(says) in entry["error"]
            continue
        assert entry["accepted"] == case["accepted"], name
        rows = (quarantine if kind == "records" else labels_quarantine).filter(
            pl.col("batch_id") == batch_id
        )
        assert rows.height == case["quarantined"], name
        if says is not None:
            checks = rows["reasons"].explode().struct.field("check").to_list()
            assert any(str(says) in check for check in checks), (name, checks)


def test_huge_values_are_stored_clipped_in_quarantine(settings: Settings) -> None:
    run = CliRunner().invoke(app, ["ingest", str(CORPUS / "batch_hugestring.parquet")])
    assert run.exit_code == 0, run.output
    quarantine = read_table(table_uri(settings.tables, QUARANTINE), schema=QUARANTINE_SCHEMA)
    [record] = quarantine["record"].to_list()
    assert len(record) < 20 * MAX_REASON_VALUE  # the 2,000,000-character value is not stored
    value = json.loads(record)["SCHL"]
    assert value == "x" * MAX_REASON_VALUE + "... (2000000 characters)"
    [reason] = quarantine["reasons"][0].to_list()
    assert reason["value"] == value  # clipped the same way as the reason


def test_duplicate_ids_across_batches_are_flagged(settings: Settings) -> None:
    first = CliRunner().invoke(app, ["ingest", str(CORPUS / "batch_ok.parquet")])
    assert first.exit_code == 0 and "also in other batches" not in first.output
    second = CliRunner().invoke(
        app, ["ingest", str(CORPUS / "batch_crossdup.parquet")], env={"COLUMNS": "300"}
    )
    assert second.exit_code == 0, second.output
    assert "(20 id(s) also in other batches)" in second.output

"""Bring your own data, the whole loop: four differently shaped tables, each from a file as found
through ``dataset infer`` -> ``simulate`` -> ``ingest`` -> ``train`` (gate, promote) -> ``rescore``
(score + snapshot) -> a served lookup and a ``/predict`` that gives the same score.

Nothing is prepared by hand between the steps: only the two files ``infer`` writes are used, with
the CatBoost iterations turned down for speed.
"""

from __future__ import annotations

import warnings
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml
from starlette.exceptions import StarletteDeprecationWarning
from typer.testing import CliRunner

from pipelines.ingest import VALIDATED
from pipelines.registry import decisions, resolve_champion
from pipelines.settings import get_settings
from pipelines.spec import DatasetSpec, load_spec
from pipelines.tables import read_table, table_uri
from scoreloop.cli import app
from serving.config import ServingSettings
from serving.main import create_app

# Starlette asks for httpx2 in its TestClient; httpx (in the lock) works (as tests/serving does).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

pytestmark = pytest.mark.slow


def _signal(rng: np.random.Generator, *parts: np.ndarray, noise: float = 1.0) -> np.ndarray:
    return np.sum(parts, axis=0) + rng.normal(0, noise, len(parts[0]))


def credit_without_id(path: Path, rows: int = 2400) -> Path:
    """String target ("yes"/"no"), no id column, no time column (parquet)."""
    rng = np.random.default_rng(11)
    income = rng.lognormal(10.5, 0.5, rows)
    utilisation = rng.random(rows)
    purpose = rng.choice(["car", "home", "education", "travel"], rows)
    risk = _signal(rng, 2.5 * utilisation, -0.8 * np.log(income / 40_000), (purpose == "travel"))
    pl.DataFrame(
        {
            "income": income.round(2),
            "utilisation": utilisation.round(4),
            "purpose": purpose,
            "defaulted": np.where(risk > np.quantile(risk, 0.8), "yes", "no"),
        }
    ).write_parquet(path)
    return path


def bookings_with_timestamps(path: Path, rows: int = 6000) -> Path:
    """Timestamp strings like "01/13/13 07:45" over a year; target "Y"/"N" (CSV)."""
    rng = np.random.default_rng(12)
    start = datetime(2013, 1, 1)
    minutes = np.sort(rng.integers(0, 364 * 24 * 60, rows))
    when = [(start + timedelta(minutes=int(m))).strftime("%m/%d/%y %H:%M") for m in minutes]
    lead = rng.integers(0, 200, rows)
    guests = rng.integers(1, 5, rows)
    channel = rng.choice(["web", "phone", "agent"], rows)
    risk = _signal(rng, lead / 60, 0.5 * (channel == "agent"), noise=0.8)
    pl.DataFrame(
        {
            "booking": [f"B{i:05d}" for i in range(rows)],
            "booked_at": when,
            "lead_days": lead,
            "guests": guests,
            "channel": channel,
            "cancelled": np.where(risk > np.quantile(risk, 0.7), "Y", "N"),
        }
    ).write_csv(path)
    return path


def census_without_header(path: Path, rows: int = 3000) -> Path:
    """A header-less ", "-separated CSV with "?" for missing values (like UCI adult.data)."""
    rng = np.random.default_rng(13)
    age = rng.integers(17, 90, rows)
    hours = rng.normal(40, 8, rows).round(1)
    work = rng.choice(["Private", "State-gov", "Self-emp", "?"], rows, p=[0.6, 0.2, 0.15, 0.05])
    risk = _signal(rng, (age - 40) / 15, (hours - 40) / 10, 0.5 * (work == "Self-emp"))
    lines = []
    for i in range(rows):
        hours_text = "?" if i % 50 == 7 else f"{hours[i]}"
        label = ">50K" if risk[i] > np.quantile(risk, 0.75) else "<=50K"
        lines.append(f"{age[i]}, {work[i]}, {hours_text}, {label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def rare_weak_loans(path: Path, rows: int = 8000) -> Path:
    """A rare positive class (2 of 1/2, about 6 %) with a weak signal: achievable AUC < 0.75.

    Dates are a polars Date column over two years (parquet).
    """
    rng = np.random.default_rng(14)
    days = np.sort(rng.integers(0, 730, rows))
    amount = rng.lognormal(9, 0.7, rows)
    term = rng.choice([36, 60], rows)
    grade = rng.choice(["A", "B", "C", "D"], rows)
    risk = _signal(rng, 0.35 * (term == 60), 0.25 * (grade == "D"), noise=1.0)
    pl.DataFrame(
        {
            "loan_id": np.arange(10_000, 10_000 + rows),
            "issued": [date(2016, 1, 1) + timedelta(days=int(d)) for d in days],
            "amount": amount.round(2),
            "term": term,
            "grade": grade,
            "status": np.where(risk > np.quantile(risk, 0.94), 2, 1),
        }
    ).write_parquet(path)
    return path


def _run(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"scoreloop {' '.join(args)}:\n{result.output}"
    return result.output


def run_loop(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *infer_args: str
) -> tuple[DatasetSpec, str, dict[str, Any]]:
    """infer -> simulate -> ingest -> train (gate, promote); returns the spec, infer's report and
    the promotion decision."""
    spec_path, params_path = tmp_path / "ds.spec.yaml", tmp_path / "ds.params.yaml"
    report = _run(
        [
            *("dataset", "infer", str(source), *infer_args),
            *("--out", str(spec_path), "--params-out", str(params_path)),
        ]
    )
    params = yaml.safe_load(params_path.read_text())
    params["training"].update(iterations=40, depth=4, baseline_iterations=10)
    params_path.write_text(yaml.safe_dump(params))
    monkeypatch.setenv("SCORELOOP_SPEC_PATH", str(spec_path))
    monkeypatch.setenv("SCORELOOP_PARAMS_PATH", str(params_path))
    settings = get_settings()
    _run(["simulate", "--source", str(source)])
    _run(["ingest", str(settings.landing)])
    _run(["train"])
    assert resolve_champion(settings) is not None, "the first model was not promoted"
    return load_spec(spec_path), report, decisions(settings)[-1]


def serve() -> TestClient:
    """Score every batch with the champion, publish the snapshot, start the lookup service."""
    _run(["rescore"])
    return TestClient(create_app(ServingSettings(reload_interval_s=0, dev_mode=True)))


def assert_served_equals_predicted(spec: DatasetSpec, client: TestClient) -> None:
    """A scored entity's served score equals /predict on the same (validated) record."""
    validated = read_table(table_uri(get_settings().tables, VALIDATED))
    for row in validated.head(3).iter_rows(named=True):
        record = {name: row[name] for name in spec.record_columns}
        served = client.get(f"/scores/{record[spec.id.name]}")
        assert served.status_code == 200, served.text
        assert served.json()["model_name"] == spec.registered_name
        predicted = client.post("/predict", json=record)
        assert predicted.status_code == 200, predicted.text
        assert predicted.json()["score"] == pytest.approx(served.json()["score"], abs=1e-9)


def test_string_target_without_id(
    state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = credit_without_id(tmp_path / "credit.parquet")
    spec, report, decision = run_loop(source, tmp_path, monkeypatch, "--target", "defaulted")
    assert (spec.id.name, spec.id.generated) == ("row_id", True)
    assert (spec.positive_label, spec.negative_label) == ("yes", "no")
    assert "positive class: 'yes' (the rarer class, 20.0% of labelled rows)" in report
    assert decision["decision"] == "promote"
    with serve() as client:
        assert_served_equals_predicted(spec, client)
        # The made id is the row's position in the source: scores join back to it.
        first = client.get("/scores/0").json()
        assert first["entity_id"] == 0


def test_timestamp_strings(state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = bookings_with_timestamps(tmp_path / "bookings.csv")
    spec, report, _ = run_loop(
        source,
        tmp_path,
        monkeypatch,
        *("--target", "cancelled", "--id", "booking", "--time", "booked_at"),
    )
    assert (spec.time.format, spec.time.batch_by) == ("%m/%d/%y %H:%M", "week")
    assert "time format '%m/%d/%y %H:%M'" in report
    ids = sorted(p.stem.removeprefix("batch_") for p in get_settings().landing.glob("batch_*"))
    assert ids[:2] == ["2013-W01", "2013-W02"] and len(ids) == 53  # weeks, in time order
    assert ids[-1] == "2014-W01"  # 2013-12-30 is in ISO week 1 of 2014: ids still sort in time
    with serve() as client:
        assert_served_equals_predicted(spec, client)


def test_headerless_comma_space_csv_with_question_marks(
    state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = census_without_header(tmp_path / "adult.data")
    spec, _, _ = run_loop(source, tmp_path, monkeypatch, "--target", "column_4")
    assert spec.source is not None and not spec.source.header
    assert "?" in spec.source.missing_values
    age, work, hours = (spec.feature(f"column_{i}") for i in (1, 2, 3))
    assert (age.dtype, age.categorical) == ("int", False)  # " 39" trimmed: numeric
    assert work.allowed == ["Private", "Self-emp", "State-gov"] and work.nullable  # "?" is null
    assert hours.dtype == "float" and hours.nullable
    assert spec.positive_label == ">50K"
    with serve() as client:
        assert_served_equals_predicted(spec, client)


def test_rare_positive_with_low_achievable_auc(
    state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = rare_weak_loans(tmp_path / "loans.parquet")
    spec, report, decision = run_loop(
        source,
        tmp_path,
        monkeypatch,
        *("--target", "status", "--id", "loan_id", "--time", "issued"),
    )
    assert (spec.positive_label, spec.negative_label) == (2, 1)
    assert spec.time.batch_by == "month"
    assert "absolute_floor 0.55" in report
    # The default floor (0.75) would have refused this first model; the sized one lets it serve.
    assert decision["decision"] == "promote"
    assert 0.55 <= decision["challenger_value"] < 0.75
    with serve() as client:
        assert_served_equals_predicted(spec, client)

"""Metadata a person reads in the Dagster UI: rounded numbers, tables shown in place."""

from __future__ import annotations

import math

import dagster as dg
import numpy as np
import pytest

from assets.metadata import (
    comparison_table,
    confusion_table,
    histogram_table,
    number,
    rounded,
    table,
)
from pipelines.evaluate import ModelScores, evaluate_scores


def test_numbers_are_rounded_to_four_significant_digits() -> None:
    assert rounded(0.09996510816468947) == 0.09997
    assert rounded(0.812345678) == 0.8123
    assert rounded(123.456789) == 123.5
    assert rounded(0.0) == 0.0 and math.isnan(rounded(math.nan))
    value = number(0.09996510816468947)
    assert isinstance(value, dg.FloatMetadataValue) and value.value == 0.09997
    assert number(None) == "unknown" and number(None, "labels not landed yet") != "unknown"
    assert number(math.nan) == "unknown"


def _records(value: dg.MetadataValue) -> list[dict[str, object]]:
    assert isinstance(value, dg.TableMetadataValue)
    return [r.data for r in value.records]


def _evaluation(roles: list[str]) -> dict[str, object]:
    rng = np.random.default_rng(1)
    labels = (rng.uniform(size=400) < 0.5).astype(np.int64)
    models = [
        ModelScores(
            role,
            {"challenger": "v0.0.2", "champion": "v0.0.1"}.get(role),
            0.5,
            np.clip(labels * 0.3 + rng.uniform(size=400) * (0.7 + 0.1 * i), 0, 1),
        )
        for i, role in enumerate(roles)
    ]
    return evaluate_scores(labels, {"G": np.array(["a", "b"] * 200)}, models)


def test_evaluation_is_one_comparison_table_metric_by_model() -> None:
    evaluation = _evaluation(["challenger", "champion", "baseline"])
    value = comparison_table(evaluation)
    assert isinstance(value, dg.TableMetadataValue)
    assert [c.name for c in value.schema.columns] == [
        "metric",
        "challenger",
        "champion",
        "baseline",
        "delta vs champion",
    ]
    rows = {r["metric"]: r for r in _records(value)}
    assert list(rows) == [
        "version",
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
        "precision",
        "recall",
        "f1",
        "threshold",
        "positive_rate",
        "rows",
    ]
    assert rows["version"]["challenger"] == "v0.0.2" and rows["version"]["baseline"] == "-"
    models = evaluation["models"]
    challenger = models["challenger"]["overall"]["roc_auc"]
    champion = models["champion"]["overall"]["roc_auc"]
    assert rows["roc_auc"]["challenger"] == f"{rounded(challenger):g}"
    assert float(str(rows["roc_auc"]["delta vs champion"])) == pytest.approx(
        challenger - champion, abs=1e-3
    )
    assert str(rows["roc_auc"]["delta vs champion"])[0] in "+-"
    assert rows["rows"]["champion"] == "400"
    # every number printed with at most 4 significant digits
    for row in rows.values():
        for key, cell in row.items():
            if key != "metric" and isinstance(cell, str) and cell[:1].isdigit() and "." in cell:
                assert len(cell.split(".")[1]) <= 5, cell


def test_without_a_champion_the_delta_is_against_the_baseline() -> None:
    value = comparison_table(_evaluation(["challenger", "baseline"]))
    assert [c.name for c in value.schema.columns] == [
        "metric",
        "challenger",
        "baseline",
        "delta vs baseline",
    ]


def test_confusion_table_has_a_row_per_model_with_counts() -> None:
    rows = _records(confusion_table(_evaluation(["challenger", "champion"])))
    assert [r["model"] for r in rows] == ["challenger v0.0.2", "champion v0.0.1"]
    assert all(sum(int(r[k]) for k in ("tp", "fp", "fn", "tn")) == 400 for r in rows)


def test_score_histogram_is_a_table_with_shares_and_bars() -> None:
    rows = _records(histogram_table({"0.0-0.1": 30, "0.1-0.2": 10, "0.2-0.3": 0}))
    assert rows[0] == {"score": "0.0-0.1", "rows": 30, "share": "75.0%", "bar": "█" * 30}
    assert rows[1]["bar"] == "█" * 10 and rows[2]["bar"] == ""


def test_table_columns_get_their_types() -> None:
    value = table(["name", "n", "ok", "x"], [["a", 1, True, 0.123456], ["b", 2, False, None]])
    assert [c.type for c in value.schema.columns] == [
        "string",
        "int",
        "bool",
        "string",
    ]
    assert _records(value)[0]["x"] == "0.1235" and _records(value)[1]["x"] == ""

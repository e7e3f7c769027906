"""The plots people open in Dagster: series told apart, legends off the data, counts in labels.

Everything runs on synthetic scores through the real evaluation function
(:func:`pipelines.evaluate.evaluate_scores`), so no model is trained here; the figures are
inspected as matplotlib objects, not as pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml

from pipelines.evaluate import ModelScores, evaluate_scores, threshold_curve
from pipelines.metrics import auc_interval
from pipelines.plots import (
    EVALUATION_FILES,
    ROLE_STYLES,
    auc_history_figure,
    calibration_figure,
    confusion_figure,
    drift_grid,
    drift_heatmap_figure,
    drift_history_figure,
    evaluation_pngs,
    pr_figure,
    roc_figure,
    slice_rows,
    slices_figure,
    threshold_figure,
)

PROJECT = Path(__file__).resolve().parents[2]
ROWS = 3000


def _scores(rng: np.random.Generator, labels: np.ndarray, noise: float) -> np.ndarray:
    return 1 / (1 + np.exp(-(labels * 2 - 1) * 1.5 + rng.normal(0, noise, labels.size)))


@pytest.fixture(scope="module")
def evaluation() -> dict[str, Any]:
    """Challenger and champion nearly identical (their curves overlap), a weak baseline; one
    slice value holds only positives (no AUC), one is small with a perfect AUC."""
    rng = np.random.default_rng(7)
    labels = (rng.uniform(size=ROWS) < 0.4).astype(np.int64)
    labels[:40] = 1
    group = rng.choice(["a", "b", "c", "d"], size=ROWS, p=[0.6, 0.3, 0.05, 0.05]).astype(object)
    group[(labels == 1) & (group == "c")] = "a"  # G=c: negatives only
    pure = np.where(labels == 1, "pos", "neg").astype(object)
    pure[:40] = "only_pos"
    challenger = _scores(rng, labels, 1.0)
    d = group == "d"  # a small slice the challenger separates perfectly (AUC 1.0)
    challenger[d] = np.where(labels[d] == 1, 0.99, 0.01)
    champion = np.clip(challenger + rng.normal(0, 0.01, ROWS), 0, 1)
    baseline = _scores(rng, labels, 2.5)
    return evaluate_scores(
        labels,
        {"G": group, "P": pure},
        [
            ModelScores("challenger", "v0.0.2", 0.45, challenger),
            ModelScores("champion", "v0.0.1", 0.5, champion),
            ModelScores("baseline", None, 0.5, baseline),
        ],
    )


def _model_lines(fig: Any) -> list[Any]:
    ax = fig.axes[0]
    return [line for line in ax.get_lines() if line.get_label().split()[0] in ROLE_STYLES]


def _legend_outside(fig: Any, ax: Any) -> bool:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend()
    assert legend is not None
    return bool(legend.get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1)


@pytest.mark.parametrize("draw", [roc_figure, pr_figure, calibration_figure])
def test_models_are_told_apart_and_the_legend_is_off_the_curves(
    evaluation: dict[str, Any], draw: Any
) -> None:
    fig = draw(evaluation)
    lines = _model_lines(fig)
    assert [line.get_label().split()[0] for line in lines] == [
        "challenger",
        "champion",
        "baseline",
    ]
    looks = {(line.get_color(), line.get_linestyle(), line.get_marker()) for line in lines}
    assert len({c for c, _, _ in looks}) == len({s for _, s, _ in looks}) == 3
    assert len({m for _, _, m in looks}) == 3
    # the challenger is drawn over the champion it overlaps, the champion's line is wider
    by_role = {line.get_label().split()[0]: line for line in lines}
    assert by_role["challenger"].get_zorder() > by_role["champion"].get_zorder()
    assert by_role["champion"].get_linewidth() > by_role["challenger"].get_linewidth()
    assert _legend_outside(fig, fig.axes[0])


def test_roc_and_pr_legends_carry_the_auc(evaluation: dict[str, Any]) -> None:
    models = evaluation["models"]
    roc = [line.get_label() for line in _model_lines(roc_figure(evaluation))]
    pr = [line.get_label() for line in _model_lines(pr_figure(evaluation))]
    challenger = models["challenger"]["overall"]
    assert roc[0] == f"challenger v0.0.2 (AUC {challenger['roc_auc']:.4f})"
    assert pr[0] == f"challenger v0.0.2 (PR AUC {challenger['pr_auc']:.4f})"
    assert roc[1].startswith("champion v0.0.1 (AUC ") and roc[2].startswith("baseline (AUC ")


def test_confusion_matrix_shows_each_models_counts_at_its_threshold(
    evaluation: dict[str, Any],
) -> None:
    fig = confusion_figure(evaluation)
    assert len(fig.axes) == 3
    for ax, (role, data) in zip(fig.axes, evaluation["models"].items(), strict=True):
        o = data["overall"]
        counts = [int(t.get_text().split("\n")[0].replace(",", "")) for t in ax.texts]
        assert counts == [o["tn"], o["fp"], o["fn"], o["tp"]]
        assert sum(counts) == ROWS
        assert f"threshold {o['threshold']:.3f}" in ax.get_title() and role in ax.get_title()


def test_threshold_plot_marks_the_chosen_threshold(evaluation: dict[str, Any]) -> None:
    fig = threshold_figure(evaluation)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == [
        "precision",
        "recall",
        "reject rate (score < threshold)",
        "chosen threshold 0.450",
    ]
    assert list(ax.get_lines()[-1].get_xdata()) == [0.45, 0.45]
    assert len({line.get_color() for line in ax.get_lines()[:3]}) == 3
    assert _legend_outside(fig, ax)


def test_threshold_curve_matches_counting_by_hand() -> None:
    rng = np.random.default_rng(3)
    scores = rng.uniform(size=500)
    labels = (rng.uniform(size=500) < scores).astype(np.int64)
    curve = {round(p["threshold"], 2): p for p in threshold_curve(labels, scores)}
    assert len(curve) == 99
    for t in (0.1, 0.37, 0.5, 0.93):
        flagged = scores >= t
        point = curve[t]
        assert point["reject_rate"] == pytest.approx(1 - flagged.mean(), abs=1e-6)
        assert point["recall"] == pytest.approx(labels[flagged].sum() / labels.sum(), abs=1e-6)
        assert point["precision"] == pytest.approx(labels[flagged].mean(), abs=1e-6)


def test_slice_plot_has_counts_intervals_no_clipping_and_no_gap(
    evaluation: dict[str, Any],
) -> None:
    fig = slices_figure(evaluation)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    slices = evaluation["models"]["challenger"]["slices"]
    expected = [
        f"G={v} (n={m['rows']:,})" for v, m in slices["G"].items() if m["roc_auc"] is not None
    ]
    assert labels[: len(expected)] == expected
    # single-class slice values have no AUC: listed in the title, not an empty row
    assert not any(label.startswith(("P=pos", "P=neg", "P=only_pos")) for label in labels)
    assert f"not drawn (one class only): G=c (n={slices['G']['c']['rows']:,})" in ax.get_title()
    assert "P=neg (n=" in ax.get_title()
    assert ax.get_ylim() == (len(labels) - 0.5, -0.5)  # rows fill the axes, no empty band
    # the top of every interval is inside the axes: nothing is cut at 1.0
    shown, _ = slice_rows(evaluation)
    assert max(r.auc["challenger"][0] for r in shown) == 1.0  # G=d
    assert ax.get_xlim()[1] > 1.0
    assert len(ax.containers) == 3  # one errorbar series per model
    markers = {c.lines[0].get_marker() for c in ax.containers}
    assert len(markers) == 3
    assert _legend_outside(fig, ax)


def test_auc_interval_holds_the_auc_and_narrows_with_rows() -> None:
    low, high = auc_interval(0.8, 50, 50)
    assert low < 0.8 < high
    wide = high - low
    low, high = auc_interval(0.8, 5000, 5000)
    assert high - low < wide / 5
    assert auc_interval(1.0, 10, 10) == (1.0, 1.0)
    assert auc_interval(0.9, 0, 10) == (0.0, 1.0)


def test_evaluation_pngs_are_dvc_outputs_and_reproducible(
    evaluation: dict[str, Any], tmp_path: Path
) -> None:
    paths = evaluation_pngs(evaluation, tmp_path / "a")
    assert sorted(p.name for p in paths.values()) == sorted(EVALUATION_FILES)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths.values())
    again = evaluation_pngs(evaluation, tmp_path / "b")
    assert all(again[k].read_bytes() == paths[k].read_bytes() for k in paths)
    stage = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]["evaluate"]
    outs = {next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]}
    assert {f"evaluation/plots/{name}" for name in EVALUATION_FILES} <= outs


def _drift_frame() -> pl.DataFrame:
    rows = []
    for b in range(6):
        for f in ("AGEP", "SCHL", "MAR", "score"):
            value = 0.05 * b if f == "AGEP" else 0.01
            rows.append(
                {
                    "batch_id": f"2016-0{b}",
                    "feature": f,
                    "metric": "score_psi" if f == "score" else "psi",
                    "value": value,
                    "drifted": value > 0.2,
                }
            )
    rows.append(  # another metric of the same feature: not on the PSI heatmap
        {"batch_id": "2016-00", "feature": "SCHL", "metric": "chi2", "value": 0.9, "drifted": True}
    )
    return pl.DataFrame(rows).filter(
        ~((pl.col("feature") == "MAR") & (pl.col("batch_id") == "2016-03"))
    )


def test_drift_heatmap_is_features_by_batches() -> None:
    grid = drift_grid(_drift_frame(), ["psi", "score_psi"], last="score")
    assert grid.features == ["AGEP", "MAR", "SCHL", "score"]
    assert grid.batches == [f"2016-0{b}" for b in range(6)]
    assert grid.values.shape == (4, 6)
    assert np.isnan(grid.values[1, 3])  # MAR not measured in 2016-03: an empty cell, not 0
    assert grid.drifted.sum() == 1 and grid.drifted[0, 5]  # AGEP 0.25 in the last batch
    assert grid.values[2, 0] == pytest.approx(0.01)  # SCHL's chi2 row is not PSI
    fig = drift_heatmap_figure(grid, threshold=0.2)
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (4, 6)
    assert [t.get_text() for t in ax.get_yticklabels()] == grid.features
    assert [t.get_text() for t in ax.get_xticklabels()] == grid.batches
    assert len(ax.patches) == 1  # the drifted cell is framed
    assert sum(1 for t in ax.texts if t.get_text()) == 23  # a value per measured cell


def test_drift_and_auc_history_legends_do_not_cover_the_data() -> None:
    fig = drift_history_figure(_drift_frame(), threshold=0.2, metrics=["psi", "score_psi"])
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if not line.get_label().startswith("threshold")]
    assert len(lines) == 4
    assert len({(line.get_color(), line.get_marker()) for line in lines}) == 4
    assert _legend_outside(fig, ax)
    perf = pl.DataFrame({"batch_id": ["a", "b", "c"], "roc_auc": [0.8, 0.82, 0.79]})
    fig = auc_history_figure(perf, reference_auc=0.81, tolerance=0.03)
    assert _legend_outside(fig, fig.axes[0])

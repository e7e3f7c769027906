"""The benchmark record: parsing, one file per run, the regression check, the README table.

The last test runs the CI benchmark of a copy of the project whose scorer sleeps in every call and
checks it against the CI figures committed in benchmarks/results/ci/: the check must fail.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_record() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_record", ROOT / "benchmarks" / "record.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


record = _load_record()


def _run(tmp: Path, date: str, figures: dict[str, tuple[float, str, float]]) -> Path:
    bench = [
        {"script": "s.py", "name": n, "value": v, "op": op, "target": t, "line": ""}
        for n, (v, op, t) in figures.items()
    ]
    run = {
        "profile": "full",
        "commit": f"{date.replace('-', '')}0000",
        "date": f"{date}T00:00:00+00:00",
        "machine": {"cpus": 2, "load_average": [1.0, 1.0, 1.0]},
        "sizes": {},
        "scripts": ["s.py"],
        "bench": bench,
    }
    return record.write_record(run, tmp)


BASE = {
    "scoring_vs_predict": (0.97, ">=", 0.95),
    "validation_vs_polars": (1.2, "<=", 1.5),
    "scoring_peak_rss_gb": (0.8, "<", 1.0),
}


def test_bench_lines_are_parsed_with_their_goal() -> None:
    output = "noise\nbench a_vs_b: 0.97 (goal >= 0.95)\nbench rps: 12000 (info)\nbench c: 1e-3\n"
    found = record.parse_bench_lines(output, "x.py")
    assert [(f["name"], f["value"], f["op"], f["target"]) for f in found] == [
        ("a_vs_b", 0.97, ">=", 0.95),
        ("rps", 12000.0, None, None),
        ("c", 0.001, None, None),
    ]


def test_each_run_is_one_file_and_runs_read_back_in_date_order(tmp_path: Path) -> None:
    _run(tmp_path, "2026-12-02", BASE)
    _run(tmp_path, "2026-12-01", BASE)
    runs = record.records(tmp_path, "full")
    assert len(list((tmp_path / "full").glob("*.json"))) == 2
    assert [r["date"][:10] for r in runs] == ["2026-12-01", "2026-12-02"]


@pytest.mark.parametrize(
    ("name", "after", "fails"),
    [
        ("scoring_vs_predict", 0.70, True),  # throughput ratio fell 28% (tolerance 10%)
        ("scoring_vs_predict", 1.10, False),  # improvement
        ("scoring_vs_predict", 0.92, False),  # within tolerance
        ("validation_vs_polars", 1.9, True),  # rose 58%, 27% past its goal (lower is better)
        ("validation_vs_polars", 1.0, False),  # improvement
        ("scoring_peak_rss_gb", 3.0, False),  # not a ratio: recorded, never compared
    ],
)
def test_check_fails_only_a_ratio_that_moved_the_bad_way(
    tmp_path: Path, name: str, after: float, fails: bool
) -> None:
    _run(tmp_path, "2026-12-01", BASE)
    _run(tmp_path, "2026-12-02", {**BASE, name: (after, *BASE[name][1:])})
    assert record.check("full", tmp_path) == (1 if fails else 0)


def test_check_against_a_baseline_folder(tmp_path: Path) -> None:
    _run(tmp_path / "baseline", "2026-12-01", BASE)
    _run(tmp_path / "new", "2026-12-02", {**BASE, "scoring_vs_predict": (0.5, ">=", 0.95)})
    assert record.check("full", tmp_path / "new", tmp_path / "baseline") == 1
    assert record.check("full", tmp_path / "baseline", tmp_path / "baseline") == 0


def test_check_without_a_run_fails(tmp_path: Path) -> None:
    assert record.check("full", tmp_path) == 1


def test_readme_table_is_the_latest_full_record() -> None:
    section = record.readme_section((ROOT / "README.md").read_text())
    assert section == record.readme_table(), "README out of date: run `make bench-readme`"
    runs = record.records(record.RESULTS, "full")
    if not runs:  # before the first full-size run the table says so (and nothing else)
        assert "No full-size run recorded yet" in section
        return
    latest: dict[str, Any] = runs[-1]
    for figure in latest["bench"]:
        assert f"`{figure['name']}` | {figure['value']:g} |" in section


def test_ci_has_a_committed_baseline_for_every_checked_ratio() -> None:
    runs = record.records(record.RESULTS, "ci")
    assert runs, "no CI baseline under benchmarks/results/ci: run the ci profile and commit it"
    names = {f["name"] for f in runs[-1]["bench"]}
    assert set(record.TOLERANCES["ci"]) <= names


@pytest.mark.slow
def test_a_slowed_down_scorer_fails_the_ci_benchmark_check(tmp_path: Path) -> None:
    copy = tmp_path / "project"
    for part in ("pipelines", "benchmarks", "data"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "params.yaml", copy / "params.yaml")
    shutil.rmtree(copy / "benchmarks" / "results")
    score = copy / "pipelines" / "score.py"
    source = score.read_text()
    marker = "    features = prepare_features(frame, spec)\n    model = bundle.model\n"
    assert marker in source, "score_frame changed shape: update the injection point"
    score.write_text(source.replace(marker, "    __import__('time').sleep(0.25)\n" + marker))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SCORELOOP_")},
        "PYTHONPATH": str(copy),
        "SCORELOOP_STATE_ROOT": str(tmp_path / "state"),
        # the ratios are what the check compares; the peak-RSS run only needs to happen
        "SCORELOOP_BENCH_RSS_ROWS": "20000",
    }
    out = tmp_path / "results"
    subprocess.run(
        [
            sys.executable,
            "benchmarks/record.py",
            "run",
            "--profile",
            "ci",
            "--out",
            str(out),
            "benchmarks/scoring.py",
        ],
        cwd=copy,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    slowed = record.records(out, "ci")[-1]
    assert {f["name"] for f in slowed["bench"]} >= {"scoring_vs_predict", "reasons_vs_shap"}
    assert record.check("ci", out, record.RESULTS) == 1


@pytest.mark.parametrize(
    ("before", "after", "fails"),
    [
        (1.53, 1.07, False),  # fell 30% but still meets its goal (0.95): noise past the goal
        (1.53, 0.90, False),  # a baseline past its goal counts as the goal: 5% under it
        (1.53, 0.60, True),  # 37% under the goal
        (0.79, 0.50, True),  # already under the goal, and fell further
    ],
)
def test_a_ratio_within_its_goal_never_fails(
    tmp_path: Path, before: float, after: float, fails: bool
) -> None:
    _run(tmp_path, "2026-12-01", {"reasons_vs_shap": (before, ">=", 0.95)})
    _run(tmp_path, "2026-12-02", {"reasons_vs_shap": (after, ">=", 0.95)})
    assert record.check("full", tmp_path) == (1 if fails else 0)

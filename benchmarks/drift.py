"""Drift report speed and decisions: scoreloop's drift vs Evidently's DataDriftPreset.

1M rows (``SCORELOOP_BENCH_ROWS``) x the 16 features of the bundled ACS data, resampled with a
fixed seed: a reference frame and a current frame drawn from the same data. Our side (in this
process) is ``pipelines.drift.compute_drift`` (PSI + the per-feature statistic of
``pipelines.drift_stats``, ``auto`` = Evidently's rule) from the reference profile precomputed
as training does (``profile_frame``, not timed: training writes it once). Evidently 0.7.23 (and
NannyML's univariate drift, if it installs beside it) run in their own venv under
``.scoreloop/bench-venvs/evidently`` (Evidently needs pandas<3, so it is not a project
dependency), as a subprocess reading the same parquet files and reporting its seconds and peak
RSS as JSON. Both sides time the report on frames already in memory (reading excluded).

    bench drift_vs_evidently: <Evidently seconds / ours> (goal >= 40)
    bench drift_vs_nannyml: <NannyML seconds / ours> (info)

Decisions: on a shifted copy (AGEP +10 years, 30% of SCHL set to 21, 30% of MAR set to 5) each
side's drifted features are printed with the share of features both call drifted and the share
on which they agree. If Evidently cannot install, the script says why and prints n/a (exit 0).

    .venv/bin/python benchmarks/drift.py
    # quick: SCORELOOP_BENCH_ROWS=100000 .venv/bin/python benchmarks/drift.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROWS = int(os.environ.get("SCORELOOP_BENCH_ROWS", "1000000"))
SEED = 20240601
ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".scoreloop" / "bench-venvs" / "evidently"
#: Evidently 0.7.23 does not declare pandas<3 but does not import with pandas 3
#: (``infer_dtype_from_object``), so the pin goes with it.
EVIDENTLY = ["evidently==0.7.23", "pandas<3"]
NANNYML = ["nannyml", "pandas<3"]

# Runs inside the Evidently venv: argv = reference.parquet current.parquet numeric,cols cat,cols
WORKER = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
from pathlib import Path
import pandas as pd

def peak_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None

ref_path, cur_path, side, numeric, categorical = sys.argv[1:6]
numeric = [c for c in numeric.split(",") if c]
categorical = [c for c in categorical.split(",") if c]
ref = pd.read_parquet(ref_path)
cur = pd.read_parquet(cur_path)
out = {"side": side}
if side == "evidently":
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    start = time.perf_counter()
    ref_ds = Dataset.from_pandas(ref, data_definition=definition)
    cur_ds = Dataset.from_pandas(cur, data_definition=definition)
    snapshot = Report([DataDriftPreset()]).run(cur_ds, ref_ds)
    result = snapshot.dict()
    out["seconds"] = time.perf_counter() - start
    drifted = {}
    for metric in result["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            value = metric["value"]
            threshold = config.get("threshold")
            method = config.get("method", "")
            p_value = "p_value" in method.lower().replace("-", "_")
            drifted[config["column"]] = {
                "method": method,
                "value": value,
                "drifted": bool(value < threshold if p_value else value >= threshold),
            }
    out["drifted"] = drifted
else:
    import nannyml as nml
    start = time.perf_counter()
    calc = nml.UnivariateDriftCalculator(
        column_names=numeric + categorical,
        treat_as_categorical=categorical,
        chunk_number=1,
        continuous_methods=["wasserstein"],
        categorical_methods=["jensen_shannon"],
    )
    calc.fit(ref)
    calc.calculate(cur)
    out["seconds"] = time.perf_counter() - start
out["peak_rss_mb"] = peak_mb()
print(json.dumps(out))
"""


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ensure_venv() -> tuple[Path | None, str, bool]:
    """The venv's python (None: could not install, with why) and whether NannyML is there."""
    python = VENV / "bin" / "python"

    def has(module: str) -> bool:
        probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
        return probe.returncode == 0

    if not python.exists():
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(VENV)], capture_output=True, text=True
        )
        if made.returncode != 0:
            return None, f"python -m venv failed: {made.stderr.strip()[-300:]}", False
    if not has("evidently"):
        pip = subprocess.run(
            [python, "-m", "pip", "install", "-q", *EVIDENTLY], capture_output=True, text=True
        )
        if pip.returncode != 0 or not has("evidently"):
            return (
                None,
                f"pip install {' '.join(EVIDENTLY)} failed: {pip.stderr.strip()[-300:]}",
                False,
            )
    if not has("nannyml"):
        subprocess.run([python, "-m", "pip", "install", "-q", *NANNYML], capture_output=True)
        if not has("evidently"):  # nannyml must not break evidently
            subprocess.run(
                [python, "-m", "pip", "install", "-q", *EVIDENTLY], capture_output=True, text=True
            )
    return python, "", has("nannyml")


def frames(rows: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, Any]:
    from pipelines.settings import get_settings
    from pipelines.spec import load_spec

    settings = get_settings()
    spec = load_spec(settings.spec_path)
    data = pl.read_parquet(settings.spec_path.parent / "employment_MA.parquet")
    ref = data.sample(rows, with_replacement=True, seed=SEED)
    cur = data.sample(rows, with_replacement=True, seed=SEED + 1)
    rng = np.random.default_rng(SEED)
    pick = pl.Series(rng.random(rows) < 0.3)
    shifted = cur.with_columns(
        (pl.col("AGEP") + 10).clip(upper_bound=95).cast(cur.schema["AGEP"]),
        pl.when(pick).then(pl.lit("21")).otherwise(pl.col("SCHL")).alias("SCHL"),
        pl.when(pick).then(pl.lit("5")).otherwise(pl.col("MAR")).alias("MAR"),
    )
    return ref, cur, shifted, spec


def ours(
    cur: pl.DataFrame, profile: dict[str, Any], spec: Any
) -> tuple[float, dict[str, dict[str, Any]]]:
    from pipelines.drift import DATASET_FEATURE, PSI, STAT_METRICS, compute_drift
    from pipelines.monitoring import monitoring_params
    from pipelines.settings import get_settings

    params = monitoring_params(get_settings())
    start = time.perf_counter()
    frame = compute_drift(cur, profile, spec, params, batch_id="bench", model_version="bench")
    seconds = time.perf_counter() - start
    rows = frame.filter(pl.col("feature") != DATASET_FEATURE)
    stat = rows.filter(pl.col("metric").is_in(STAT_METRICS))
    if stat.height == 0:
        stat = rows.filter(pl.col("metric") == PSI)
    return seconds, {
        row["feature"]: {"method": row["metric"], "value": row["value"], "drifted": row["drifted"]}
        for row in stat.iter_rows(named=True)
    }


def run_worker(python: Path, side: str, ref: Path, cur: Path, spec: Any) -> dict[str, Any]:
    numeric = ",".join(c.name for c in spec.features if not c.categorical)
    categorical = ",".join(c.name for c in spec.features if c.categorical)
    done = subprocess.run(
        [python, "-c", WORKER, str(ref), str(cur), side, numeric, categorical],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-500:]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    from pipelines.drift import profile_frame
    from pipelines.features import prepare_features

    python, why, nannyml = ensure_venv()
    ref, cur, shifted, spec = frames(ROWS)
    names = [c.name for c in spec.features]
    start = time.perf_counter()
    profile = profile_frame(ref, spec)
    profile_seconds = time.perf_counter() - start
    ours(cur.head(1000), profile, spec)  # warm-up
    our_seconds, _ = ours(cur, profile, spec)
    _, our_shifted = ours(shifted, profile, spec)
    our_peak = _peak_rss_mb()
    print(f"rows: {ROWS:,} x {len(names)} features")
    print(f"ours: report {our_seconds:.2f}s (reference profile {profile_seconds:.2f}s, once)")
    print(f"ours: peak RSS {our_peak:.0f} MiB (this process, data included)")
    print(f"bench drift_ours_peak_rss_mb: {our_peak:.0f} (info)")
    if python is None:
        print(f"evidently: not available ({why})")
        print("bench drift_vs_evidently: n/a (goal >= 40)")
        return
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        paths = {}
        for name, frame in (("ref", ref), ("cur", cur), ("shifted", shifted)):
            paths[name] = Path(tmp) / f"{name}.parquet"
            prepare_features(frame, spec).select(names).write_parquet(paths[name])
        del ref, cur, shifted
        evidently = run_worker(python, "evidently", paths["ref"], paths["cur"], spec)
        decisions = run_worker(python, "evidently", paths["ref"], paths["shifted"], spec)
        nanny = run_worker(python, "nannyml", paths["ref"], paths["cur"], spec) if nannyml else {}
    if "error" in evidently:
        print(f"evidently: failed: {evidently['error']}")
        print("bench drift_vs_evidently: n/a (goal >= 40)")
    else:
        print(
            f"evidently: report {evidently['seconds']:.2f}s, "
            f"peak RSS {evidently['peak_rss_mb']:.0f} MiB (its process, data included)"
        )
        print(f"bench drift_vs_evidently: {evidently['seconds'] / our_seconds:.1f} (goal >= 40)")
        print(f"bench drift_evidently_peak_rss_mb: {evidently['peak_rss_mb']:.0f} (info)")
    if nanny and "error" not in nanny:
        print(f"nannyml: {nanny['seconds']:.2f}s, peak RSS {nanny['peak_rss_mb']:.0f} MiB")
        print(f"bench drift_vs_nannyml: {nanny['seconds'] / our_seconds:.1f} (info)")
        print(f"bench drift_nannyml_peak_rss_mb: {nanny['peak_rss_mb']:.0f} (info)")
    else:
        why = nanny.get("error", "did not install") if nanny else "did not install"
        print(f"nannyml: not measured ({why})")
    if "drifted" in decisions:
        theirs = {n: bool(v["drifted"]) for n, v in decisions["drifted"].items()}
        mine = {n: bool(v["drifted"]) for n, v in our_shifted.items()}
        both = [n for n in names if mine.get(n) and theirs.get(n)]
        agree = [n for n in names if mine.get(n, False) == theirs.get(n, False)]
        print("shifted copy (AGEP +10, 30% SCHL=21, 30% MAR=5):")
        print(
            "  | feature | ours: method | value | drifted | Evidently: method | value | drifted |"
        )
        for n in names:
            a, b = our_shifted.get(n, {}), decisions["drifted"].get(n, {})
            print(
                f"  | {n} | {a.get('method')} | {a.get('value', float('nan')):.4f} | "
                f"{a.get('drifted')} | {b.get('method')} | {b.get('value', float('nan')):.4f} | "
                f"{b.get('drifted')} |"
            )
        print(f"  ours drifted:      {sorted(n for n in names if mine.get(n))}")
        print(f"  evidently drifted: {sorted(n for n in names if theirs.get(n))}")
        print(
            f"  both drifted: {len(both)}/{len(names)} = {len(both) / len(names):.2f}; "
            f"same decision on {len(agree)}/{len(names)} features"
        )


if __name__ == "__main__":
    main()

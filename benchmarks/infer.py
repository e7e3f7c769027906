"""Drafting cost: ``dataset infer`` (whole file, streamed) vs bare ``pl.scan_csv(...).collect()``.

Both read the same 2M-row CSV (ids, a timestamp text column, floats, a count, a code, two text
categories, a "?" missing marker and a Yes/No target), side by side in one process: a warm-up, then
the median of repeats. Peak RSS of each side is measured in a fresh child process (``--peak``), so
one side's memory does not hide the other's.

    .venv/bin/python benchmarks/infer.py      # SCORELOOP_BENCH_ROWS=200000 for a quick run
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.infer import infer_dataset

ROWS = int(os.environ.get("SCORELOOP_BENCH_ROWS", "2000000"))
REPEATS = int(os.environ.get("SCORELOOP_BENCH_REPEATS", "3"))


def make_csv(path: Path, rows: int) -> Path:
    rng = np.random.default_rng(5)
    start = np.datetime64("2015-01-01T00:00")
    minutes = np.sort(rng.integers(0, 3 * 365 * 24 * 60, rows))
    when = pl.Series((start + minutes.astype("timedelta64[m]")).astype("datetime64[us]"))
    income = rng.lognormal(10, 0.5, rows).round(2).astype(str)
    income[rng.random(rows) < 0.01] = "?"
    pl.DataFrame(
        {
            "customer": np.arange(rows),
            "signed_up": when.dt.strftime("%m/%d/%Y %H:%M"),
            "income": income,
            "visits": rng.poisson(3, rows),
            "region_code": rng.choice([11, 22, 37, 48, 90], rows),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
            "city": rng.choice([f"city{i}" for i in range(40)], rows),
            "tenure": rng.random(rows).round(4),
            "churned": rng.choice(["No", "Yes"], rows, p=[0.85, 0.15]),
        }
    ).write_csv(path)
    return path


def run_infer(path: Path) -> None:
    infer_dataset(path, target="churned", id_column="customer", time_column="signed_up")


def run_polars(path: Path) -> None:
    pl.scan_csv(path).collect()


SIDES: dict[str, Callable[[Path], None]] = {"infer": run_infer, "polars": run_polars}


def median_seconds(work: Callable[[], None]) -> float:
    work()  # warm-up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_rss_kib() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork and
    exec, so a child started by a big parent would report the parent's peak."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1])
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_rss_mb(side: str, path: Path) -> float:
    """Peak RSS of one run of ``side`` in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--peak", side, str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--peak":
        SIDES[sys.argv[2]](Path(sys.argv[3]))
        print(_peak_rss_kib() / 1024)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = make_csv(Path(tmp) / "customers.csv", ROWS)
        size = path.stat().st_size / 2**20
        print(f"{ROWS:,} rows, {size:.0f} MiB CSV, median of {REPEATS} after a warm-up")
        seconds = {side: median_seconds(lambda w=work: w(path)) for side, work in SIDES.items()}
        for side in SIDES:
            print(
                f"  {side:<7} {seconds[side]:7.2f} s   peak RSS {peak_rss_mb(side, path):7.0f} MiB"
            )
        ratio = seconds["infer"] / seconds["polars"]
        print(f"bench infer_vs_polars_read: {ratio:.2f} (goal <= 3)")


if __name__ == "__main__":
    main()

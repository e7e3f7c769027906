"""CLI start-up: wall time of ``scoreloop model list`` and ``scoreloop --help`` vs ``python -c
"import polars"`` (the bare library every scoreloop command stands on), in the same run.

A tiny registry is built first in a temporary state root (two versions of a 3-tree CatBoost
model, the first one champion: real git, DVC and GTO), so ``model list`` reads real tags. Each
command runs as a fresh process, interleaved with the polars import, after one warm-up of each;
the medians of ``SCORELOOP_BENCH_REPEATS`` (default 7) are compared.

    .venv/bin/python benchmarks/cli.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPEATS = int(os.environ.get("SCORELOOP_BENCH_REPEATS", "7"))
BIN = Path(sys.executable).parent
SCORELOOP = str(BIN / "scoreloop")


def build_registry(state_root: Path) -> None:
    """Two registered versions of a tiny model in a fresh deployment repo, v0.0.1 champion."""
    os.environ["SCORELOOP_STATE_ROOT"] = str(state_root)
    from catboost import CatBoostClassifier

    from pipelines.deployment_repo import commit, dvc_add, init, push
    from pipelines.model_bundle import ModelMetadata, save_bundle
    from pipelines.registry import assign_champion, register_version
    from pipelines.settings import get_settings

    settings = get_settings()
    repo = init(settings)
    versions = []
    for iterations in (3, 4):
        model = CatBoostClassifier(iterations=iterations, verbose=0, thread_count=1)
        model.fit([[0.0], [1.0], [0.0], [1.0]], [0, 1, 0, 1])
        meta = ModelMetadata(
            name=settings.model_name,
            spec_name="toy",
            features=["0"],
            categorical=[],
            threshold=0.5,
            trained_at=datetime.now(UTC),
            params={"iterations": iterations},
        )
        save_bundle(model, meta, repo / "model")
        dvc_add(repo, "model")
        commit(repo, f"model with {iterations} trees")
        push(repo)
        versions.append(register_version(settings))
    assign_champion(settings, versions[0])


def wall(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        state.mkdir()
        build_registry(state)
        env = {**os.environ, "SCORELOOP_STATE_ROOT": str(state), "COLUMNS": "160"}
        commands = {
            "model_list": [SCORELOOP, "model", "list"],
            "help": [SCORELOOP, "--help"],
            "polars": [sys.executable, "-c", "import polars"],
        }
        listed = subprocess.run(commands["model_list"], env=env, capture_output=True, text=True)
        assert listed.returncode == 0 and "v0.0.2" in listed.stdout, listed.stdout + listed.stderr
        for command in commands.values():  # warm-up: bytecode and file caches
            wall(command, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(REPEATS):
            for name, command in commands.items():
                times[name].append(wall(command, env))
    median = {name: statistics.median(values) for name, values in times.items()}
    for name, value in median.items():
        print(f"{name}: median {value:.3f} s over {REPEATS} runs")
    bare = median["polars"]
    print(f"bench cli_model_list_vs_polars_import: {median['model_list'] / bare:.2f} (goal <= 3)")
    print(f"bench cli_help_vs_polars_import: {median['help'] / bare:.2f} (goal <= 3)")


if __name__ == "__main__":
    main()

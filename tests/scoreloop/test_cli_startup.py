"""Commands that do not train start fast: they never import the heavy libraries.

``scoreloop --help`` and ``scoreloop model list`` run in a fresh interpreter; the modules they
load are listed afterwards. catboost (~1 s), pandera + pandas (~2 s), scipy, dagster and polars
are imported only inside the commands that need them (``benchmarks/cli.py`` has the timings).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("catboost", "pandera", "pandas", "scipy", "dagster", "polars", "deltalake", "sklearn")

PROBE = """
import json, sys
from scoreloop.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    heavy = [m for m in json.loads(sys.stdin.read()) if m in sys.modules]
    print("HEAVY=" + json.dumps(heavy))
"""


def loaded_heavy(args: list[str], state: Path) -> tuple[list[str], str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        input=json.dumps(HEAVY),
        capture_output=True,
        text=True,
        env={"SCORELOOP_STATE_ROOT": str(state), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        check=False,
    )
    line = [x for x in out.stdout.splitlines() if x.startswith("HEAVY=")]
    assert line, out.stdout + out.stderr
    return json.loads(line[-1][len("HEAVY=") :]), out.stdout


@pytest.mark.parametrize("args", [["--help"], ["model", "--help"], ["model", "list"]])
def test_commands_that_do_not_train_import_no_heavy_library(args: list[str], state: Path) -> None:
    heavy, output = loaded_heavy(args, state)
    assert heavy == [], f"{' '.join(args)} imported {heavy}"
    assert "Usage" in output or "no registered versions" in output
